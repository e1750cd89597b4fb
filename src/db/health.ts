/** The /readyz check of the results store: a round trip, plus the results waiting in the Redis outbox. */
import type { Redis } from 'ioredis';
import { pingStore } from './database.js';
import { outboxKey } from './durable-results.js';
import type { StoreHandle } from './handle.js';

export interface StoreCheck {
  [k: string]: unknown;
  ok: boolean;
  error?: string;
  engine?: string;
  where?: string;
  /** Results computed while the store was away, waiting in Redis to be written. */
  pending?: number;
  ms?: number;
}

export async function checkStore(handle: StoreHandle, redis: Redis, keyPrefix: string, where: string): Promise<StoreCheck> {
  const pending = await redis.llen(outboxKey(keyPrefix)).catch(() => undefined);
  const waiting = pending ? `; ${pending} result(s) wait in Redis and are written when it is back` : '';
  const t0 = Date.now();
  try {
    await handle.use(async (db) => pingStore(db.conn));
    const db = await handle.get();
    return { ok: true, engine: db.conn.engine, where: db.conn.where, ms: Date.now() - t0, ...(pending !== undefined ? { pending } : {}) };
  } catch (err) {
    const why = (err as Error).message.replace(/^results store unavailable: /, '');
    return {
      ok: false,
      where,
      ...(pending !== undefined ? { pending } : {}),
      error: `results store ${where} not reachable (${why})${waiting}`,
    };
  }
}
