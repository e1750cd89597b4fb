import type { Redis } from 'ioredis';
import type { ResultRecord } from '../contracts/result-record.js';
import { DurableResults } from '../db/durable-results.js';
import { openResultsDb, storeUrl } from '../db/open.js';
import { storedRow } from '../db/store-row.js';
import { redactDbUrl } from '../db/database.js';
import { closeRedis, createRedis } from '../stores/redis.js';
import type { NodeContext, Role, SummaryLine } from './role.js';

/**
 * The durable results store beside the worker: every finished record is written to the relational
 * store (config.storage.url), through the Redis outbox while the database is away.
 */
export class StoreRole implements Role {
  readonly name = 'results-store';
  private redis: Redis | undefined;
  durable: DurableResults | undefined;
  private pruneTimer: NodeJS.Timeout | undefined;
  private resolveStarted!: (d: DurableResults) => void;
  /** The worker may finish a record before this role has started (it starts right after the worker). */
  private readonly started = new Promise<DurableResults>((resolve) => (this.resolveStarted = resolve));

  constructor(private readonly ctx: NodeContext) {}

  async start(): Promise<void> {
    const { config } = this.ctx;
    const logger = this.ctx.logger.child({ role: this.name });
    this.redis = createRedis(config.redis.url, 'command', logger);
    this.durable = new DurableResults({
      redis: this.redis,
      keyPrefix: config.redis.keyPrefix,
      open: () => openResultsDb(config, logger),
      logger,
      catchUpMs: config.storage.catchUpSeconds * 1000,
    });
    this.durable.start();
    this.resolveStarted(this.durable);
    // storage.retentionDays: results older than that leave the store (checked at start and every 6 h).
    const days = config.storage.retentionDays;
    if (days > 0) {
      const durable = this.durable;
      const prune = (): void => {
        void durable.prune(days).then(
          (n) => n > 0 && logger.info({ deleted: n, retentionDays: days }, 'old results deleted from the results store'),
          (err: Error) => logger.warn({ err: err.message }, 'results store retention pass failed'),
        );
      };
      setTimeout(prune, 60_000).unref();
      this.pruneTimer = setInterval(prune, 6 * 3600_000).unref();
    }
  }

  /** For the pipeline: never throws for a database problem (the row waits in the outbox). */
  async record(record: ResultRecord): Promise<void> {
    const durable = this.durable ?? (await this.started);
    await durable.record(await storedRow(record));
  }

  summary(): SummaryLine[] {
    return [
      ['Results store', `${redactDbUrl(storeUrl(this.ctx.config))} (results, feedback, audit; validation report at /admin/validation)`],
    ];
  }

  async stop(): Promise<void> {
    clearInterval(this.pruneTimer);
    await this.durable?.stop();
    if (this.redis) await closeRedis(this.redis);
  }
}
