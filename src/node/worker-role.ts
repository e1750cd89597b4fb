import type { Redis } from 'ioredis';
import { resolveModelPath } from '../model/model-path.js';
import { resultPipeline } from '../worker/pipeline.js';
import { resultSetDescription } from '../results/result-set.js';
import { DispatchRole } from './dispatch-role.js';
import { StoreRole } from './store-role.js';
import { closeRedis, createRedis } from '../stores/redis.js';
import { InferenceWorker, type OnResult } from '../worker/inference/inference-worker.js';
import { basename, resolve } from 'node:path';
import type { NodeContext, Role, RoleFactory, SummaryLine } from './role.js';

/** What the "work" role runs beside the inference worker. */
export interface WorkerStages {
  /**
   * Called with every finished record ('scored' / 'not-scored') before the inference job completes:
   * the results stage (the result objects' writer) and the dispatch enqueue. Its outputs go into the record.
   */
  onResult?: OnResult;
  /** More roles started after the inference worker and stopped before it (the dispatch worker). */
  roles?: readonly RoleFactory[];
}

/**
 * The stages after inference (src/worker/pipeline.ts: results, then dispatch) with this process's
 * dispatch producer; the dispatch worker runs in this role too.
 */
export function workerStages(ctx: NodeContext): WorkerStages {
  const dispatch = new DispatchRole(ctx);
  const store = new StoreRole(ctx);
  return {
    onResult: resultPipeline({
      config: ctx.config,
      logger: ctx.logger,
      enqueueDispatch: (r, by) => dispatch.enqueue(r, by),
      recordResult: (r) => store.record(r),
    }),
    roles: [() => store, () => dispatch],
  };
}

/**
 * The "work" role: the inference worker (worker.concurrency jobs at once, one ONNX session each)
 * and the stages after it (workerStages). `mlsam work` runs it; `mlsam serve` runs it after the listener.
 */
export class WorkerRole implements Role {
  readonly name = 'worker';
  private redis: Redis | undefined;
  private workerRedis: Redis | undefined;
  inference: InferenceWorker | undefined;
  private readonly extra: Role[] = [];

  constructor(
    private readonly ctx: NodeContext,
    private readonly stages: WorkerStages = workerStages(ctx),
  ) {}

  async start(): Promise<void> {
    const { config } = this.ctx;
    const logger = this.ctx.logger.child({ role: this.name });
    this.redis = createRedis(config.redis.url, 'command', logger);
    this.workerRedis = createRedis(config.redis.url, 'worker', logger);
    this.inference = new InferenceWorker({
      config,
      logger,
      redis: this.redis,
      workerRedis: this.workerRedis,
      modelPath: resolveModelPath(config.model.path),
      onResult: this.stages.onResult,
    });
    await this.inference.start();
    for (const f of this.stages.roles ?? []) {
      const role = f(this.ctx);
      await role.start();
      this.extra.push(role);
    }
  }

  summary(): SummaryLine[] {
    const { config } = this.ctx;
    const dests = [
      ...config.destinations.map((d) => `${d.name} (${d.aeTitle}@${d.host}:${d.port})`),
      ...config.dicomwebDestinations.map((d) => `${d.name} (DICOMweb ${new URL(d.url).origin})`),
    ];
    const notes = config.notifications.map((n) => `${n.name} (${n.type})`);
    return [
      [
        'Worker',
        `${basename(config.model.path)} on ${this.inference?.provider ?? '?'}, ${config.worker.concurrency} series at a time, ${config.model.batchSize} slices per batch`,
      ],
      [
        'Results',
        dests.length
          ? `${resultSetDescription(config.results)}; sent to ${dests.join(', ')}; copies in ${resolve(config.spool.dir, 'results')}`
          : `${resultSetDescription(config.results)}; no destinations configured: they stay in the spool, ${resolve(config.spool.dir, 'results')}`,
      ],
      ...(notes.length ? [['Notify', `each result is announced to ${notes.join(', ')}`] as SummaryLine] : []),
    ];
  }

  async stop(): Promise<void> {
    for (const role of this.extra.splice(0).reverse()) {
      await role.stop().catch((err: Error) => this.ctx.logger.warn({ role: role.name, err: err.message }, 'stage did not stop cleanly'));
    }
    await this.inference?.stop();
    await Promise.all([this.redis, this.workerRedis].map((r) => (r ? closeRedis(r) : undefined)));
  }
}

export const workerRole: RoleFactory = (ctx) => new WorkerRole(ctx);
