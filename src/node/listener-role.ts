import type { Redis } from 'ioredis';
import { DicomListener } from '../dicom/scp/listener.js';
import { AssociationAudit } from '../stores/audit.js';
import { Reconciler } from '../queue/reconciler.js';
import { closeRedis, createRedis, withTimeout } from '../stores/redis.js';
import { SeriesTracker } from '../queue/series-tracker.js';
import type { NodeContext, Role, RoleFactory, SummaryLine } from './role.js';

/** How long open associations get to finish when the listener stops. */
const DRAIN_MS = 10_000;

/**
 * The "listen" role: DICOM listener → spool → series tracker (+ this process's settle worker),
 * association audit, spool reconciler. Logs one "listening" line with host and port when up.
 */
export class ListenerRole implements Role {
  readonly name = 'listener';
  private redis: Redis | undefined;
  private workerRedis: Redis | undefined;
  private tracker: SeriesTracker | undefined;
  private listener: DicomListener | undefined;
  private reconciler: Reconciler | undefined;
  /** Where the listener is bound, once started. */
  address: { host: string; port: number } | undefined;

  constructor(private readonly ctx: NodeContext) {}

  async start(): Promise<void> {
    const { config } = this.ctx;
    const logger = this.ctx.logger.child({ role: this.name });
    // Redis may be down at start: the listener still starts (the spool is the source of truth).
    this.redis = createRedis(config.redis.url, 'command', logger);
    this.workerRedis = createRedis(config.redis.url, 'worker', logger);
    this.tracker = new SeriesTracker({ config, logger, redis: this.redis, workerRedis: this.workerRedis });
    const audit = new AssociationAudit({ config, logger, redis: this.redis });
    this.tracker.startSettleWorker();
    this.listener = new DicomListener({ config, sink: this.tracker, observer: audit, logger });
    this.address = await this.listener.start();
    this.reconciler = new Reconciler({ config, logger, tracker: this.tracker });
    this.reconciler.start();
    logger.info({ host: this.address.host, port: this.address.port, aeTitle: config.dicom.aeTitle, spool: config.spool.dir }, 'listening');
  }

  summary(): SummaryLine[] {
    const { config } = this.ctx;
    if (!this.address) return [];
    const { host, port } = this.address;
    const peer = host === '0.0.0.0' || host === '::' ? '<this host>' : host;
    return [
      [
        'DICOM',
        `AE title ${config.dicom.aeTitle} on ${host}:${port}; send a series with: TCP_NODELAY=1 storescu -aec ${config.dicom.aeTitle} ${peer} ${port} <files>`,
      ],
    ];
  }

  async stop(): Promise<void> {
    const log = this.ctx.logger.child({ role: this.name });
    if (this.listener) {
      await withTimeout(this.listener.stop(), DRAIN_MS, 'listener stop').catch((err: Error) =>
        log.warn({ err: err.message, active: this.listener?.activeAssociations }, 'associations did not finish'),
      );
    }
    await this.reconciler?.stop();
    if (this.tracker) {
      await withTimeout(this.tracker.close(), 5_000, 'tracker close').catch((err: Error) => log.warn({ err: err.message }));
    }
    await Promise.all([this.redis, this.workerRedis].map((r) => (r ? closeRedis(r) : undefined)));
  }
}

export const listenerRole: RoleFactory = (ctx) => new ListenerRole(ctx);
