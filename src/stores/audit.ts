import type { Redis } from 'ioredis';
import { z } from 'zod';
import type { Config } from '../config/schema.js';
import type { AssociationObserver, AssociationRecord } from '../dicom/received-instance.js';
import type { Logger } from '../log.js';
import { Keys } from './keys.js';
import { whenReady, withTimeout } from './redis.js';
import { associationIncrements, Stats } from './stats.js';

const recordSchema = z.object({
  id: z.string(),
  callingAeTitle: z.string(),
  calledAeTitle: z.string(),
  callingHost: z.string(),
  startedAt: z.number(),
  endedAt: z.number(),
  instances: z.number(),
  bytes: z.number(),
  echoes: z.number().optional(),
  unscored: z.number().optional(),
  outcome: z.string(),
  failed: z.number().optional(),
  failures: z.array(z.object({ sopInstanceUid: z.string(), status: z.number(), reason: z.string() })).optional(),
  reason: z.string().optional(),
  refused: z.array(z.object({ sopClassUid: z.string(), transferSyntaxUids: z.array(z.string()), reason: z.string() })).optional(),
  refusedMore: z.number().optional(),
});

export interface AssociationAuditOptions {
  config: Config;
  logger: Logger;
  /** Fail-fast connection (createRedis(url, 'command')). */
  redis: Redis;
}

/**
 * Association audit trail in Redis: one sorted set `<prefix>:audit:associations`, members the
 * records as JSON, scored by start time. Every write trims entries older than
 * audit.retentionDays and keeps at most audit.maxEntries (the newest).
 */
export class AssociationAudit implements AssociationObserver {
  private readonly keys: Keys;
  private readonly log: Logger;

  constructor(private readonly opts: AssociationAuditOptions) {
    this.keys = new Keys(opts.config.redis.keyPrefix);
    this.log = opts.logger.child({ component: 'audit' });
  }

  /** AssociationObserver: never throws (a lost audit entry must not disturb the listener). */
  async associationEnded(record: AssociationRecord): Promise<void> {
    try {
      await withTimeout(this.record(record), 3_000, 'audit');
      // Shared counters for /metrics (associations, instances, bytes); fire and forget.
      new Stats(this.opts.redis, this.opts.config.redis.keyPrefix).apply(associationIncrements(record));
    } catch (err) {
      this.log.warn({ err: (err as Error).message, associationId: record.id }, 'could not record association');
    }
  }

  async record(record: AssociationRecord): Promise<void> {
    const { retentionDays, maxEntries } = this.opts.config.audit;
    const key = this.keys.associations();
    const cutoff = Date.now() - retentionDays * 86_400_000;
    const member = JSON.stringify(recordSchema.parse(record));
    await whenReady(this.opts.redis);
    await this.opts.redis
      .multi()
      .zadd(key, record.startedAt, member)
      .zremrangebyscore(key, '-inf', `(${cutoff}`)
      .zremrangebyrank(key, 0, -(maxEntries + 1))
      .exec();
  }

  /** The newest `limit` associations, newest first. */
  async listAssociations(limit = 100): Promise<AssociationRecord[]> {
    await whenReady(this.opts.redis, 3_000);
    const members = await this.opts.redis.zrevrange(this.keys.associations(), 0, Math.max(0, limit - 1));
    const out: AssociationRecord[] = [];
    for (const m of members) {
      const parsed = recordSchema.safeParse(JSON.parse(m));
      if (parsed.success) out.push(parsed.data);
    }
    return out;
  }
}

/** Reads the audit trail with any connection (for the admin dashboard). */
export function listAssociations(redis: Redis, config: Config, logger: Logger, limit = 100): Promise<AssociationRecord[]> {
  return new AssociationAudit({ config, logger, redis }).listAssociations(limit);
}
