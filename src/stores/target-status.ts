/**
 * Per dispatch target (destination or notification, by name): the outcome of its latest attempt
 * and running counts of delivered / failed attempts, for the dashboard's targets page and the
 * per-target metrics. Redis hashes `<prefix>:targets:last` (name → JSON) and
 * `<prefix>:targets:count` ("<name>|sent" / "<name>|failed" → count).
 */
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { parseStored } from '../contracts/result-record.js';
import { whenReady } from './redis.js';

export const targetLastSchema = z.strictObject({
  at: z.string(),
  outcome: z.enum(['sent', 'failed']),
  studyInstanceUid: z.string(),
  seriesInstanceUid: z.string(),
  attempt: z.number().int().min(1),
  /** The error of a failed attempt (no PHI: statuses, hosts, receiver texts). */
  error: z.string().optional(),
  /** True when the job was parked by this attempt (no retry left, or refused for good). */
  parked: z.boolean().optional(),
});
export type TargetLast = z.infer<typeof targetLastSchema>;

export interface TargetStatus {
  last?: TargetLast;
  sent: number;
  failed: number;
}

const READY_MS = 3_000;

export class TargetStatusStore {
  private readonly lastKey: string;
  private readonly countKey: string;

  constructor(
    private readonly redis: Redis,
    prefix: string,
  ) {
    this.lastKey = `${prefix}:targets:last`;
    this.countKey = `${prefix}:targets:count`;
  }

  async record(name: string, last: TargetLast): Promise<void> {
    await whenReady(this.redis, READY_MS);
    const v = targetLastSchema.parse(last);
    await this.redis.multi().hset(this.lastKey, name, JSON.stringify(v)).hincrby(this.countKey, `${name}|${v.outcome}`, 1).exec();
  }

  /** Status of the named targets (those never tried: counts 0, no last). */
  async all(names: readonly string[]): Promise<Map<string, TargetStatus>> {
    await whenReady(this.redis, READY_MS);
    const [last, counts] = await Promise.all([this.redis.hgetall(this.lastKey), this.redis.hgetall(this.countKey)]);
    const out = new Map<string, TargetStatus>();
    for (const n of names) {
      const l = parseStored(targetLastSchema, last[n]);
      out.set(n, { ...(l ? { last: l } : {}), sent: Number(counts[`${n}|sent`] ?? 0), failed: Number(counts[`${n}|failed`] ?? 0) });
    }
    return out;
  }
}
