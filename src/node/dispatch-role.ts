import type { Redis } from 'ioredis';
import type { NodeContext, Role, RoleFactory, SummaryLine } from './role.js';
import { closeRedis, createRedis, withTimeout } from '../stores/redis.js';
import type { ResultRecord } from '../contracts/result-record.js';
import { Dispatcher, type EnqueueOptions, type EnqueueResult } from '../worker/dispatch/dispatcher.js';
import type { DestinationEcho } from '../stores/destination-echoes.js';
import { DestinationEchoScheduler, echoDestinations } from '../worker/dispatch/echo.js';
import { DispatchWorker } from '../worker/dispatch/worker.js';
import { DispatchModes } from '../db/dispatch-modes.js';
import { StoreHandle } from '../db/handle.js';
import { openResultsDb } from '../db/open.js';

/** How long running sends get to finish when the role stops (then the worker is closed by force; BullMQ retries the job). */
const DRAIN_MS = 20_000;

/**
 * The "dispatch" role: the dispatch worker (config.worker.dispatchConcurrency jobs at once), the
 * destination C-ECHO at start-up and on config.dispatch.echoCron, and a Dispatcher (producer +
 * admin helpers) that enqueue() uses — also before start(), since the inference worker may finish
 * a job before the roles after it have started.
 *
 * src/node/worker-role.ts (workerStages) shares one DispatchRole between the results stage, which
 * calls enqueue() after writing the result objects, and the role list.
 * (Only the worker, no enqueue from this process: `roles: [dispatchRole]`.)
 */
export class DispatchRole implements Role {
  readonly name = 'dispatch';
  private redis: Redis | undefined;
  private workerRedis: Redis | undefined;
  private worker: DispatchWorker | undefined;
  private echoes: DestinationEchoScheduler | undefined;
  /** The results store, for the silent-mode switches (settings table). */
  private store: StoreHandle | undefined;
  private modes: DispatchModes | undefined;
  private silentAtStart: string[] = [];
  /** Producer and admin helpers (enqueue, resend, listUndispatched), set by start() or the first enqueue(). */
  dispatcher: Dispatcher | undefined;
  private stopped = false;
  /** The start-up C-ECHO round (start() does not wait for it: a dead PACS must not delay start-up). */
  startupEcho: Promise<DestinationEcho[]> | undefined;

  constructor(private readonly ctx: NodeContext) {}

  /** The producer side (command connection + Dispatcher), made on first need: start() or an early enqueue(). */
  private producer(): Dispatcher {
    if (this.stopped) throw new Error('dispatch role stopped');
    if (!this.dispatcher) {
      const { config } = this.ctx;
      const logger = this.ctx.logger.child({ role: this.name });
      this.redis = createRedis(config.redis.url, 'command', logger);
      this.store = new StoreHandle(() => openResultsDb(config, logger));
      this.modes = new DispatchModes({ config, logger, redis: this.redis, store: this.store });
      this.dispatcher = new Dispatcher({ config, logger, redis: this.redis, modes: this.modes });
    }
    return this.dispatcher;
  }

  async start(): Promise<void> {
    const { config } = this.ctx;
    const logger = this.ctx.logger.child({ role: this.name });
    this.producer();
    this.workerRedis = createRedis(config.redis.url, 'worker', logger);
    this.echoes = new DestinationEchoScheduler({ config, logger, redis: this.redis! });
    this.worker = new DispatchWorker({ config, logger, redis: this.redis!, workerRedis: this.workerRedis, modes: this.modes! });
    this.worker.start();
    this.startupEcho = this.echoes.start();
    // Said once at start-up (the dashboard says it on every page): which targets get nothing.
    const modes = await this.modes!.view();
    this.silentAtStart = modes.silent;
    if (modes.silent.length)
      logger.warn(
        { silent: modes.silent, readFrom: modes.readFrom },
        'SILENT MODE: results are held, not sent, to these targets until an admin releases them (/admin/dispatch)',
      );
    logger.info(
      { destinations: config.destinations.map((d) => d.name), concurrency: config.worker.dispatchConcurrency },
      config.destinations.length
        ? 'dispatch worker started'
        : 'dispatch worker started; no destinations configured: results stay in the spool',
    );
  }

  summary(): SummaryLine[] {
    return this.silentAtStart.length
      ? [['Silent mode', `results are NOT sent to ${this.silentAtStart.join(', ')} (an admin releases them on /admin/dispatch)`]]
      : [];
  }

  /** Dispatcher.enqueue through this role's dispatcher (for the results stage and the admin API). */
  enqueue(record: ResultRecord, by: 'worker' | 'admin', opts?: EnqueueOptions): Promise<EnqueueResult[]> {
    // Works before start() too: the inference worker may finish a job before this role has started.
    return this.producer().enqueue(record, by, opts);
  }

  /** C-ECHO now (all destinations, or the named ones); results also stored for the dashboard. */
  echo(names?: string[]): Promise<DestinationEcho[]> {
    if (!this.redis) throw new Error('dispatch role not started');
    return echoDestinations({ config: this.ctx.config, logger: this.ctx.logger, redis: this.redis }, names);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    const log = this.ctx.logger.child({ role: this.name });
    await this.echoes?.stop();
    if (this.worker) {
      await withTimeout(this.worker.close(), DRAIN_MS, 'dispatch worker close').catch(async (err: Error) => {
        log.warn({ err: err.message }, 'sends did not finish: closing by force (the jobs will be retried)');
        await this.worker?.close(true);
      });
    }
    await this.dispatcher?.close();
    await this.store?.close();
    await Promise.all([this.redis, this.workerRedis].map((r) => (r ? closeRedis(r) : undefined)));
    this.worker = undefined;
    this.dispatcher = undefined;
    this.echoes = undefined;
    this.store = undefined;
    this.modes = undefined;
  }
}

export const dispatchRole: RoleFactory = (ctx) => new DispatchRole(ctx);
