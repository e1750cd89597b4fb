/**
 * The database unreachable: results still go through (record() answers 'queued' at once and the row
 * waits in Redis), /readyz's store check says what is wrong and how many wait, and once the database
 * is back the catch-up writes every waiting row exactly once, in order (both engines).
 */
import { Redis } from 'ioredis';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrateToLatest, openStore } from '../../src/db/database.js';
import { DurableResults, outboxKey } from '../../src/db/durable-results.js';
import { StoreHandle } from '../../src/db/handle.js';
import { checkStore } from '../../src/db/health.js';
import { ResultsDb } from '../../src/db/results-db.js';
import { resultRow } from '../../src/db/result-row.js';
import { freePort } from '../helpers/process.js';
import { dropPrefix, logger, REDIS_URL, uniquePrefix } from '../queue/helpers.js';
import { createTestStore, ENGINES, fakeRecord, type TestStore } from './helpers.js';

async function open(url: string): Promise<ResultsDb> {
  const conn = openStore(url, { connectTimeoutMs: 1_000 });
  try {
    await migrateToLatest(conn);
  } catch (err) {
    await conn.close().catch(() => undefined);
    throw err;
  }
  return new ResultsDb(conn);
}

describe.each(ENGINES)('results store away (%s)', (engine) => {
  let ts: TestStore;
  let redis: Redis;
  const prefix = uniquePrefix('outbox');
  beforeAll(async () => {
    ts = await createTestStore(engine);
    redis = new Redis(REDIS_URL);
  });
  afterAll(async () => {
    await dropPrefix(REDIS_URL, prefix);
    redis?.disconnect();
    await ts?.drop();
  });

  it('queues while the database is down, says so, and catches up exactly once when it is back', { timeout: 40_000 }, async () => {
    // Down: PostgreSQL on a port nobody listens on; SQLite under a plain file (its folder cannot be made).
    const blocker = join(mkdtempSync(join(tmpdir(), 'mlsam-outbox-')), 'a-file');
    writeFileSync(blocker, '');
    const badUrl = engine === 'postgres' ? `postgres://postgres@127.0.0.1:${await freePort()}/nothing` : `sqlite:${blocker}/store.sqlite`;
    let up = false;
    const durable = new DurableResults({
      redis,
      keyPrefix: prefix,
      open: () => open(up ? ts.url : badUrl),
      logger,
      catchUpMs: 60_000,
      writeTimeoutMs: 3_000,
    });
    const rows = [0.9, 0.2, 0.55].map((s, i) => resultRow(fakeRecord('1.2.40', `1.2.40.${i + 1}`, s), null));
    for (const r of rows) expect(await durable.record(r)).toBe('queued');
    expect(await redis.llen(outboxKey(prefix))).toBe(3);
    expect(await durable.status()).toMatchObject({ ok: false, pending: 3 });

    const handle = new StoreHandle(() => open(up ? ts.url : badUrl), 0);
    const down = await checkStore(handle, redis, prefix, 'the store');
    expect(down.ok).toBe(false);
    expect(down.error).toMatch(/results store the store not reachable .*3 result\(s\) wait in Redis/);

    up = true;
    expect(await durable.catchUp()).toBe(3);
    expect(await redis.llen(outboxKey(prefix))).toBe(0);
    expect(await durable.catchUp()).toBe(0);
    // A later result goes straight in.
    expect(await durable.record(resultRow(fakeRecord('1.2.40', '1.2.40.4', 0.1), null))).toBe('stored');
    const db = await open(ts.url);
    const stored = await db.latestResults('1.2.40');
    expect(stored.map((r) => [r.series_instance_uid, r.score]).sort()).toEqual([
      ['1.2.40.1', 0.9],
      ['1.2.40.2', 0.2],
      ['1.2.40.3', 0.55],
      ['1.2.40.4', 0.1],
    ]);
    expect(await durable.status()).toMatchObject({ ok: true, pending: 0 });
    expect(await checkStore(handle, redis, prefix, 'the store')).toMatchObject({ ok: true, engine, pending: 0 });
    await handle.close();
    await db.conn.close();
    await durable.stop();
  });
});
