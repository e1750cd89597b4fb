/** Opens the store of config.storage.url, migrated, as the typed query layer. */
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import { migrateToLatest, openStore } from './database.js';
import { ResultsDb } from './results-db.js';

export async function openResultsDb(config: Config, logger?: Logger): Promise<ResultsDb> {
  const conn = openStore(config.storage.url, { onPoolError: (err) => logger?.warn({ err: err.message }, 'results store connection lost') });
  try {
    const applied = await migrateToLatest(conn);
    if (applied.length > 0) logger?.info({ store: conn.where, applied }, 'results store migrated');
    return new ResultsDb(conn);
  } catch (err) {
    await conn.close().catch(() => undefined);
    throw err;
  }
}
