/**
 * The last C-ECHO result per destination, kept in the hash Keys.destinationEcho() (destination
 * name → JSON DestinationEcho). Written by the dispatch stage's echo scheduler, read by the admin.
 */
import type { Redis } from 'ioredis';
import { z } from 'zod';
import type { Config } from '../config/schema.js';
import { parseStored } from '../contracts/result-record.js';
import { READY_MS } from './dispatch-state.js';
import { Keys } from './keys.js';
import { whenReady } from './redis.js';

export const destinationEchoSchema = z.strictObject({
  destination: z.string(),
  aeTitle: z.string(),
  host: z.string(),
  port: z.number().int(),
  ok: z.boolean(),
  /** C-ECHO-RSP status when one came back. */
  status: z.number().int().optional(),
  error: z.string().optional(),
  ms: z.number().min(0),
  /** ISO time the echo started. */
  at: z.string(),
});
export type DestinationEcho = z.infer<typeof destinationEchoSchema>;

export class DestinationEchoStore {
  private readonly key: string;

  constructor(
    private readonly redis: Redis,
    private readonly config: Config,
  ) {
    this.key = new Keys(config.redis.keyPrefix).destinationEcho();
  }

  /**
   * Stores echo results; a full round (`pruneUnconfigured`) also drops destinations no longer configured.
   * Waits for Redis up to READY_MS; throws when it does not answer (the caller logs it).
   */
  async save(results: readonly DestinationEcho[], pruneUnconfigured: boolean): Promise<void> {
    await whenReady(this.redis, READY_MS);
    const m = this.redis.multi();
    if (results.length) m.hset(this.key, Object.fromEntries(results.map((r) => [r.destination, JSON.stringify(r)])));
    if (pruneUnconfigured) {
      const stale = (await this.redis.hkeys(this.key)).filter((k) => !this.config.destinations.some((d) => d.name === k));
      if (stale.length) m.hdel(this.key, ...stale);
    }
    await m.exec();
  }

  /** The stored C-ECHO results (config order; destinations never echoed are absent). */
  async read(): Promise<DestinationEcho[]> {
    await whenReady(this.redis, READY_MS);
    const raw = await this.redis.hgetall(this.key);
    const out: DestinationEcho[] = [];
    for (const d of this.config.destinations) {
      const r = parseStored(destinationEchoSchema, raw[d.name]);
      if (r) out.push(r);
    }
    return out;
  }
}

/** The stored C-ECHO results (config order; destinations never echoed are absent). */
export async function readDestinationEchoes(redis: Redis, config: Config): Promise<DestinationEcho[]> {
  return new DestinationEchoStore(redis, config).read();
}
