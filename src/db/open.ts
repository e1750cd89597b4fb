/** Opens the store of config.storage.url, migrated, as the typed query layer. */
import { join } from 'node:path';
import type { Config } from '../config/schema.js';
import { resolvePath } from '../config/load.js';
import type { Logger } from '../log.js';
import { migrateToLatest, openStore } from './database.js';
import { ResultsDb } from './results-db.js';

/** config.storage.url, or SQLite beside the spool when it is "" (the spool's readers skip dot folders). */
export function storeUrl(config: Config): string {
  return config.storage.url || `sqlite:${join(resolvePath(config.spool.dir), '.db', 'mlsam.sqlite')}`;
}

export async function openResultsDb(config: Config, logger?: Logger): Promise<ResultsDb> {
  const conn = openStore(storeUrl(config), { onPoolError: (err) => logger?.warn({ err: err.message }, 'results store connection lost') });
  try {
    const applied = await migrateToLatest(conn);
    if (applied.length > 0) logger?.info({ store: conn.where, applied }, 'results store migrated');
    return new ResultsDb(conn);
  } catch (err) {
    await conn.close().catch(() => undefined);
    throw err;
  }
}
