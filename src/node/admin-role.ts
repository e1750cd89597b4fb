import { Queue } from 'bullmq';
import type { FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import { AdminActions, type ResendFn } from '../admin/actions.js';
import { AdminData } from '../admin/data.js';
import { ReadinessChecker, type EchoFn } from '../admin/health.js';
import { Metrics } from '../admin/metrics.js';
import { assertSafeBinding, buildAdminServer } from '../admin/server.js';
import type { Config } from '../config/schema.js';
import { echo } from '../dicom/scu/client.js';
import { DISPATCH_QUEUE, dispatchJobId, dispatchJobSchema, type DispatchJobData, type InferenceJobData } from '../queue/jobs.js';
import { closeRedis, createRedis, throttledWarn } from '../queue/redis.js';
import { SpoolRetention } from '../queue/retention.js';
import { SeriesTracker } from '../queue/series-tracker.js';
import type { NodeContext, Role, RoleFactory } from './role.js';

/** C-ECHO of one configured destination (src/dicom/scu/client.ts). */
export function destinationEcho(config: Config): EchoFn {
  return async (name) => {
    const d = config.destinations.find((x) => x.name === name);
    if (!d) return { ok: false, error: `no destination ${name}` };
    const r = await echo({
      host: d.host,
      port: d.port,
      calledAeTitle: d.aeTitle,
      callingAeTitle: d.callingAeTitle ?? config.dicom.aeTitle,
      timeoutMs: Math.min(config.dispatch.timeoutSeconds, 10) * 1000,
    });
    return { ok: r.ok, ms: r.ms, ...(r.error ? { error: r.error } : r.ok ? {} : { error: `status ${r.status ?? 'none'}` }) };
  };
}

/**
 * Re-send through a dispatch job per destination: the deterministic job id plus `-admin-<ms>` (the
 * original job stays in the history), enqueuedBy "admin", files in the result's order (SR first).
 */
export function queueResend(config: Config, dispatchQueue: Queue<DispatchJobData>): ResendFn {
  return async (record) => {
    const files = [...(record.outputs ?? [])].sort((a, b) => (a.kind === 'sr' ? -1 : b.kind === 'sr' ? 1 : 0)).map((o) => o.path);
    const jobIds: string[] = [];
    for (const d of config.destinations) {
      const jobId = `${dispatchJobId(record.seriesInstanceUid, record.instancesHash, record.model.version, d.name)}-admin-${Date.now()}`;
      const data = dispatchJobSchema.parse({
        studyInstanceUid: record.studyInstanceUid,
        seriesInstanceUid: record.seriesInstanceUid,
        instancesHash: record.instancesHash,
        destination: d.name,
        files,
        enqueuedBy: 'admin',
      } satisfies DispatchJobData);
      await dispatchQueue.add('send', data, {
        jobId,
        attempts: config.dispatch.attempts,
        backoff: { type: 'exponential', delay: config.dispatch.backoffSeconds * 1000 },
        removeOnComplete: { age: 30 * 86_400, count: 10_000 },
        removeOnFail: false,
      });
      jobIds.push(jobId);
    }
    return { jobIds };
  };
}

/**
 * The "admin" role: the HTTP server (dashboard, Bull Board, API, /metrics, /healthz, /readyz) on
 * http.host:http.port, and the spool retention sweep (spool.retentionCron). Logs one
 * "admin listening" line with host and port when up.
 */
export class AdminRole implements Role {
  readonly name = 'admin';
  private redis: Redis | undefined;
  private queueRedis: Redis | undefined;
  private tracker: SeriesTracker | undefined;
  private queues: Queue[] = [];
  private app: FastifyInstance | undefined;
  private retention: SpoolRetention | undefined;
  /** Where the server is bound, once started. */
  address: { host: string; port: number } | undefined;

  constructor(private readonly ctx: NodeContext) {}

  async start(): Promise<void> {
    const { config } = this.ctx;
    const logger = this.ctx.logger.child({ role: this.name });
    assertSafeBinding(config);
    // Fail-fast connection for reads (the pages answer quickly when Redis is down);
    // a patient one for BullMQ queues (Bull Board, job counts, adding jobs).
    this.redis = createRedis(config.redis.url, 'command', logger);
    this.queueRedis = createRedis(config.redis.url, 'worker', logger);
    this.tracker = new SeriesTracker({ config, logger, redis: this.redis });
    const prefix = config.redis.keyPrefix;
    const dispatchQueue = new Queue<DispatchJobData>(DISPATCH_QUEUE, { connection: this.queueRedis, prefix });
    const inferenceQueue = this.tracker.inferenceQueue as Queue<InferenceJobData>;
    this.queues = [dispatchQueue];
    const warn = throttledWarn(logger);
    dispatchQueue.on('error', (err) => warn({ err: err.message, queue: DISPATCH_QUEUE }, 'queue error'));
    const shown = [inferenceQueue as Queue, dispatchQueue as Queue];
    const data = new AdminData({ config, redis: this.redis, tracker: this.tracker, inferenceQueue, dispatchQueue });
    const actions = new AdminActions({
      config,
      logger,
      redis: this.redis,
      tracker: this.tracker,
      inferenceQueue,
      resend: queueResend(config, dispatchQueue),
      getResult: (uid) => data.getResult(uid),
    });
    const readiness = new ReadinessChecker(config, this.redis, destinationEcho(config));
    const metrics = new Metrics({ config, redis: this.redis, queues: shown });
    this.retention = new SpoolRetention({ config, logger, redis: this.redis });
    const retention = this.retention;
    this.app = await buildAdminServer({
      config, logger, redis: this.redis, data, actions, readiness, metrics, queues: shown,
      runRetention: () => retention.runOnce(),
    });
    await this.app.listen({ host: config.http.host, port: config.http.port });
    const addr = this.app.server.address();
    const port = typeof addr === 'object' && addr ? addr.port : config.http.port;
    this.address = { host: config.http.host, port };
    this.retention.start();
    logger.info({ host: config.http.host, port, url: `http://${config.http.host.includes(':') ? `[${config.http.host}]` : config.http.host}:${port}/admin` }, 'admin listening');
  }

  async stop(): Promise<void> {
    await this.retention?.stop();
    await this.app?.close().catch(() => undefined);
    await Promise.all([...this.queues.map((q) => q.close()), this.tracker?.close()].map((p) => p?.catch(() => undefined)));
    await Promise.all([this.redis, this.queueRedis].map((r) => (r ? closeRedis(r) : undefined)));
  }
}

export const adminRole: RoleFactory = (ctx) => new AdminRole(ctx);
