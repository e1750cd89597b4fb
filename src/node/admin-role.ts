import type { Queue } from 'bullmq';
import type { FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import { AdminActions } from '../admin/actions.js';
import { AdminData } from '../admin/data.js';
import { ReadinessChecker, type EchoFn } from '../admin/health.js';
import { Metrics } from '../admin/metrics.js';
import { assertSafeBinding, buildAdminServer } from '../admin/server.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { InferenceJobData } from '../queue/jobs.js';
import { closeRedis, createRedis } from '../stores/redis.js';
import { SpoolRetention } from '../cleaner/retention.js';
import { SeriesTracker } from '../queue/series-tracker.js';
import { Dispatcher } from '../worker/dispatch/dispatcher.js';
import { echoDestinations } from '../worker/dispatch/echo.js';
import type { NodeContext, Role, RoleFactory, SummaryLine } from './role.js';
import { StoreHandle } from '../db/handle.js';
import { openResultsDb, storeUrl } from '../db/open.js';
import { checkStore } from '../db/health.js';
import { redactDbUrl } from '../db/database.js';
import { Sessions } from '../db/sessions.js';
import { Users } from '../db/users.js';
import { DriftWatch } from '../drift/watch.js';
import { DispatchModes } from '../db/dispatch-modes.js';
import { SilentModeSwitch } from '../worker/dispatch/silent-mode.js';

/** C-ECHO of one configured destination: the dispatcher's echo (it also stores the result for the dashboard). */
export function destinationEcho(config: Config, logger: Logger, redis: Redis): EchoFn {
  return async (name) => {
    const [r] = await echoDestinations({ config, logger, redis }, [name]);
    if (!r) return { ok: false, error: `no destination ${name}` };
    return { ok: r.ok, ms: r.ms, ...(r.error ? { error: r.error } : {}) };
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
  private tracker: SeriesTracker | undefined;
  private dispatcher: Dispatcher | undefined;
  private app: FastifyInstance | undefined;
  private retention: SpoolRetention | undefined;
  private deriveTimer: NodeJS.Timeout | undefined;
  private sessionSweep: NodeJS.Timeout | undefined;
  private store: StoreHandle | undefined;
  private drift: DriftWatch | undefined;
  /** Where the server is bound, once started. */
  address: { host: string; port: number } | undefined;

  constructor(private readonly ctx: NodeContext) {}

  async start(): Promise<void> {
    const { config } = this.ctx;
    const logger = this.ctx.logger.child({ role: this.name });
    assertSafeBinding(config);
    // Fail-fast connection: pages, API and probes answer at once when Redis is down.
    this.redis = createRedis(config.redis.url, 'command', logger);
    this.tracker = new SeriesTracker({ config, logger, redis: this.redis });
    this.store = new StoreHandle(() => openResultsDb(config, logger));
    const store = this.store;
    const modes = new DispatchModes({ config, logger, redis: this.redis, store });
    this.dispatcher = new Dispatcher({ config, logger, redis: this.redis, modes });
    const dispatchQueue = this.dispatcher.queue;
    const inferenceQueue = this.tracker.inferenceQueue as Queue<InferenceJobData>;
    const shown = [inferenceQueue as Queue, dispatchQueue as Queue];
    const data = new AdminData({ config, redis: this.redis, tracker: this.tracker, inferenceQueue });
    const dispatcher = this.dispatcher;
    const actions = new AdminActions({
      config,
      logger,
      tracker: this.tracker,
      resend: async (record) => {
        const out = await dispatcher.enqueue(record, 'admin');
        return { jobIds: out.map((r) => r.jobId), held: out.filter((r) => r.outcome === 'held').map((r) => r.destination) };
      },
      getResult: (uid) => data.getResult(uid),
    });
    const redis = this.redis;
    const readiness = new ReadinessChecker(config, this.redis, destinationEcho(config, logger, this.redis), () =>
      checkStore(store, redis, config.redis.keyPrefix, redactDbUrl(storeUrl(config))),
    );
    this.drift = new DriftWatch({ store, config: config.drift, logger });
    const metrics = new Metrics({ config, redis: this.redis, queues: shown, drift: this.drift });
    this.retention = new SpoolRetention({ config, logger, redis: this.redis });
    const retention = this.retention;
    this.app = await buildAdminServer({
      config,
      logger,
      redis: this.redis,
      data,
      actions,
      readiness,
      metrics,
      queues: shown,
      runRetention: () => retention.runOnce(),
      listUndispatched: (limit) => dispatcher.listUndispatched(limit),
      // STOW-RS (http.stow): received instances go to the series tracker like C-STORE'd ones (its settle worker runs in the listener role).
      stowSink: this.tracker,
      store,
      drift: this.drift,
      dispatchModes: new SilentModeSwitch(modes, dispatcher),
      users: {
        verify: (name, password) => store.use((db) => new Users(db).verify(name, password)),
        verifyToken: (token) => store.use((db) => new Users(db).verifyToken(token)),
        find: (name) => store.use((db) => new Users(db).find(name)),
      },
    });
    await this.app.listen({ host: config.http.host, port: config.http.port });
    const addr = this.app.server.address();
    const port = typeof addr === 'object' && addr ? addr.port : config.http.port;
    this.address = { host: config.http.host, port };
    this.retention.start();
    this.drift.start();
    // Count the stages' events even when nobody scrapes /metrics for a while (the window is two days).
    this.deriveTimer = setInterval(() => void metrics.derive(true).catch(() => undefined), 60_000);
    this.deriveTimer.unref();
    // Expired browser sessions are void when read; this deletes the ones nobody comes back with.
    this.sessionSweep = setInterval(
      () =>
        void store
          .use((db) => new Sessions(db).purgeExpired())
          .then((n) => n > 0 && logger.info({ sessions: n }, 'expired browser sessions deleted'))
          .catch(() => undefined),
      3_600_000,
    );
    this.sessionSweep.unref();
    logger.info(
      {
        host: config.http.host,
        port,
        url: `http://${config.http.host.includes(':') ? `[${config.http.host}]` : config.http.host}:${port}/admin`,
      },
      'admin listening',
    );
  }

  summary(): SummaryLine[] {
    if (!this.address) return [];
    const { http } = this.ctx.config;
    const { host, port } = this.address;
    const all = host === '0.0.0.0' || host === '::';
    const shown = all ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
    const login =
      http.password === ''
        ? `user ${http.username}, empty password (allowed because it listens on loopback only)`
        : `user ${http.username}, the password in http.password`;
    return [['Dashboard', `http://${shown}:${port}/admin${all ? ` (listening on every interface)` : ''}; log in as ${login}`]];
  }

  async stop(): Promise<void> {
    clearInterval(this.deriveTimer);
    clearInterval(this.sessionSweep);
    await this.drift?.stop();
    await this.retention?.stop();
    await this.app?.close().catch(() => undefined);
    await this.store?.close();
    await Promise.all([this.dispatcher?.close(), this.tracker?.close()].map((p) => p?.catch(() => undefined)));
    if (this.redis) await closeRedis(this.redis);
  }
}

export const adminRole: RoleFactory = (ctx) => new AdminRole(ctx);
