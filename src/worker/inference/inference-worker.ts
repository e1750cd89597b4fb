/**
 * The inference worker: a BullMQ worker on the `inference` queue. Each job is one spooled series
 * with a fixed content; it is scored by the same engine as `mlsam score` (scoreFiles: select and
 * order slices, decode + preprocess in a thread pool overlapping inference, ONNX in batches,
 * aggregate) and its result record is written to Redis.
 *
 * Outcomes:
 * - scored      → record 'scored'; onResult (results + dispatch stages) runs before the job completes.
 * - not scored  → deterministic input problem (no usable slices, undecodable, too short): record
 *                 'not-scored' with the reason, onResult runs, then UnrecoverableError
 *                 ('not scored: <reason>'): no retries.
 * - other error → transient: the job retries with backoff (INFERENCE_JOB_OPTIONS); on the last
 *                 attempt the record says 'failed' with the error.
 * A worker killed mid-job holds the job's lock until it expires (worker.lockDurationSeconds); another
 * worker's stalled-job check (worker.stalledIntervalSeconds) then runs it again from the start.
 */
import path from 'node:path';
import { Queue, UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Config } from '../../config/schema.js';
import type { Logger } from '../../log.js';
import { createPreparer, defaultDecodeThreads, type SlicePreparer } from '../../scoring/slice-preparer.js';
import { scoreFiles, type ScoreResult, type SeriesLabels } from '../../scoring/score.js';
import { scoredFields } from './scored-record.js';
import type { ModelMetadata } from '../../model/metadata.js';
import { ModelSession } from '../../model/session.js';
import {
  INFERENCE_JOB_OPTIONS,
  INFERENCE_QUEUE,
  inferenceJobId,
  inferenceJobSchema,
  instancesHash,
  type InferenceJobData,
  type StudyJobContext,
} from '../../queue/jobs.js';
import { Keys } from '../../stores/keys.js';
import { throttledWarn } from '../../stores/redis.js';
import { listSeriesInstances } from '../../dicom/spool/reader.js';
import { resultKey, type OutputFile, type ResultRecord } from '../../contracts/result-record.js';
import { WorkerHeartbeat } from '../../stores/worker-registry.js';
import { MAX_DROPPED, previousOf, ResultStore } from '../../stores/result-store.js';

/**
 * Pipeline hook: called with the finished record (status 'scored' or 'not-scored') before the job
 * completes. Returned outputs are stored in the record. Throwing fails the job (retried: transient).
 */
/** The stage after scoring; `metadata` is the loaded model's (its window, aggregation). */
/** What scoring produced beside the record, for the results stage only (too large for the record). */
export interface ResultExtras {
  /** The series' lung and lesion labels (HU series, when `results.segmentation`). */
  labels?: SeriesLabels;
}

export type OnResult = (
  record: ResultRecord,
  job: Job<InferenceJobData>,
  metadata: ModelMetadata,
  extras?: ResultExtras,
) => Promise<OutputFile[] | undefined>;

export interface InferenceWorkerOptions {
  config: Config;
  logger: Logger;
  /** Blocking connection for BullMQ (createRedis(url, 'worker')). */
  workerRedis: Redis;
  /** Command connection for result records (createRedis(url, 'command')). */
  redis: Redis;
  /** Absolute path of the .onnx file (its .json beside it). */
  modelPath: string;
  onResult?: OnResult;
  /** Decode threads shared by this worker's jobs (default defaultDecodeThreads()). */
  decodeThreads?: number;
}

/** Progress reported through BullMQ (job.progress). */
export interface InferenceProgress {
  done: number;
  total: number;
}

class NotScored extends Error {}

/** What a completed inference job returns (job.returnvalue). */
export type InferenceJobResult =
  | { status: 'scored'; score: number; category: string }
  /** The series got more instances after this job was queued; the job for the new content scores it. */
  | { status: 'superseded'; instancesHash: string }
  /** Study mode: this series could not be scored; the study's next candidate is scored by `jobId`. */
  | { status: 'fallback'; seriesInstanceUid: string; jobId: string };

/** "no series of the study could be scored" with every series' reason, for the study's "not scored" SR. */
export function noCandidateReason(roles: StudyJobContext['roles']): string {
  const each = roles.map(
    (r) => `series ${r.seriesNumber || r.seriesInstanceUid}${r.seriesDescription ? ` (${r.seriesDescription})` : ''}: ${r.reason}`,
  );
  return `no series of the study could be scored${each.length ? ` — ${each.join('; ')}` : ''}`;
}

export class InferenceWorker {
  private worker: Worker<InferenceJobData> | undefined;
  private queue: Queue<InferenceJobData> | undefined;
  private readonly sessions: ModelSession[] = [];
  private readonly free: ModelSession[] = [];
  private readonly waiting: ((s: ModelSession) => void)[] = [];
  private preparer: SlicePreparer | undefined;
  private heartbeat: WorkerHeartbeat | undefined;
  private readonly store: ResultStore;
  private readonly log: Logger;
  readonly keys: Keys;

  constructor(private readonly opts: InferenceWorkerOptions) {
    this.keys = new Keys(opts.config.redis.keyPrefix);
    this.store = new ResultStore(opts.redis, this.keys);
    this.log = opts.logger.child({ component: 'inference-worker' });
  }

  /** The execution provider the sessions really run on ("cpu", "cuda"). */
  get provider(): string {
    return this.sessions[0]?.providers[0] ?? 'cpu';
  }

  /** Threads of the decode + preprocess pool (0: the JS thread). */
  get decodeThreads(): number {
    return this.preparer?.threads ?? 0;
  }

  /** Loads one ONNX session per concurrency slot, then starts taking jobs. */
  async start(): Promise<void> {
    const { config } = this.opts;
    const concurrency = config.worker.concurrency;
    for (let i = 0; i < concurrency; i++) {
      const s = await ModelSession.load(this.opts.modelPath, {
        providers: config.model.providers,
        batchSize: config.model.batchSize,
        threads: config.model.intraOpThreads || undefined,
        logger: i === 0 ? this.log : undefined,
      });
      this.sessions.push(s);
      this.free.push(s);
    }
    this.preparer = createPreparer(this.opts.decodeThreads ?? config.worker.prepareThreads ?? defaultDecodeThreads(), this.log);
    this.queue = new Queue<InferenceJobData>(INFERENCE_QUEUE, { connection: this.opts.redis, prefix: config.redis.keyPrefix });
    this.queue.on('error', () => undefined);
    this.worker = new Worker<InferenceJobData>(INFERENCE_QUEUE, (job) => this.process(job), {
      connection: this.opts.workerRedis,
      prefix: config.redis.keyPrefix,
      concurrency,
      lockDuration: Math.round(config.worker.lockDurationSeconds * 1000),
      stalledInterval: Math.round(config.worker.stalledIntervalSeconds * 1000),
      // A job whose worker died twice is failed rather than retried forever.
      maxStalledCount: 2,
    });
    const warn = throttledWarn(this.log);
    this.worker.on('error', (err) => warn({ err: err.message }, 'inference worker error'));
    this.worker.on('stalled', (jobId) => this.log.warn({ jobId }, 'inference job stalled (its worker died?): taken back'));
    // A job failed outside the processor (stalled more than maxStalledCount times: its workers kept
    // dying) leaves its record at 'scoring': say 'failed' there too.
    this.worker.on('failed', (job, err) => {
      if (!job || err instanceof UnrecoverableError || !/stalled/i.test(err.message)) return;
      void this.markFailed(job, err.message).catch((e: Error) =>
        this.log.warn({ jobId: job.id, err: e.message }, 'could not record the failure'),
      );
    });
    const meta = (this.sessions[0] as ModelSession).metadata;
    this.heartbeat = new WorkerHeartbeat(this.opts.redis, config.redis.keyPrefix, {
      provider: this.provider,
      requestedProviders: [...config.model.providers],
      model: meta.name,
      version: meta.version,
      concurrency,
    });
    this.heartbeat.start();
    this.log.info(
      { concurrency, provider: this.provider, batchSize: config.model.batchSize, decodeThreads: this.preparer.threads },
      'inference worker started',
    );
  }

  /** Stops taking jobs; waits up to `graceMs` for running ones, then leaves them to stalled-job recovery. */
  async stop(graceMs = 20_000): Promise<void> {
    await this.heartbeat?.stop();
    this.heartbeat = undefined;
    if (this.worker) {
      const w = this.worker;
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), graceMs)));
      const res = await Promise.race([w.close().then(() => 'closed' as const), timedOut]);
      clearTimeout(timer);
      if (res === 'timeout') {
        this.log.warn({ graceMs }, 'inference jobs still running: leaving them to another worker');
        await w.close(true).catch(() => undefined);
      }
      this.worker = undefined;
    }
    await this.preparer?.close();
    this.preparer = undefined;
    await this.queue?.close().catch(() => undefined);
    this.queue = undefined;
    for (const s of this.sessions.splice(0)) await s.release().catch(() => undefined);
    this.free.length = 0;
  }

  private acquire(): Promise<ModelSession> {
    const s = this.free.pop();
    if (s) return Promise.resolve(s);
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  private releaseSession(s: ModelSession): void {
    const next = this.waiting.shift();
    if (next) next(s);
    else this.free.push(s);
  }

  /** The job processor (public for tests and tools). */
  async process(job: Job<InferenceJobData>): Promise<InferenceJobResult> {
    const started = Date.now();
    const parsed = inferenceJobSchema.safeParse(job.data);
    if (!parsed.success) throw new UnrecoverableError(`not scored: invalid job data: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
    const data = parsed.data;
    const log = this.log.child({ jobId: job.id, seriesInstanceUid: data.seriesInstanceUid, attempt: job.attemptsMade + 1 });
    const superseded = await this.newerContent(data);
    if (superseded) {
      log.info({ instancesHash: superseded }, 'series content changed since this job was queued: the job for the new content scores it');
      return { status: 'superseded', instancesHash: superseded };
    }
    const meta = (this.sessions[0] as ModelSession).metadata;
    const existing = await this.store.read(data.seriesInstanceUid);
    const study = data.study ? { contentHash: data.study.contentHash, roles: data.study.roles } : undefined;
    const key = resultKey({ instancesHash: data.instancesHash, ...(study ? { study } : {}) });
    let previous = previousOf(existing, key);
    if (data.study?.previousSeries) {
      // The study's previous result is on another series (a better one arrived): its SR is the predecessor.
      const before = previousOf(await this.store.read(data.study.previousSeries), key) ?? [];
      previous = [...before, ...(previous ?? [])].slice(0, 10);
    }
    const base: ResultRecord = {
      studyInstanceUid: data.studyInstanceUid,
      seriesInstanceUid: data.seriesInstanceUid,
      instancesHash: data.instancesHash,
      jobId: String(job.id),
      seriesDir: data.seriesDir,
      callingAeTitle: data.callingAeTitle,
      status: 'scoring',
      model: { name: meta.name, version: meta.version, sha256: meta.sha256 },
      provider: this.provider,
      instanceCount: data.instanceCount,
      slices: [],
      keySlices: [],
      dropped: [],
      timings: { waitMs: Math.max(0, started - Date.parse(data.lastReceivedAt)) },
      startedAt: new Date(started).toISOString(),
      attemptsMade: job.attemptsMade + 1,
      ...(previous?.length ? { previous } : {}),
      ...(study ? { study } : {}),
    };
    await this.store.write(base, 'take');
    log.info({ instances: data.instanceCount }, 'scoring series');

    let record: ResultRecord = base;
    try {
      if (data.study?.noCandidate) {
        record = {
          ...base,
          status: 'not-scored',
          reason: noCandidateReason(data.study.roles),
          timings: { ...base.timings, totalMs: Date.now() - started },
        };
        log.warn({ reason: record.reason }, 'study not scored: no candidate series');
        return await this.finish(record, job, meta, started, log);
      }
      const session = await this.acquire();
      let result: ScoreResult;
      try {
        result = await scoreFiles([data.seriesDir], {
          session,
          preparer: this.preparer,
          keyAttention: true,
          // the Segmentation and the key slices' opacity overlay are made from them
          keepLabels: true,
          minSlices: this.opts.config.series.routing.minSlices,
          onProgress: (p) => {
            const progress: InferenceProgress = { done: p.done, total: p.total };
            job.updateProgress(progress).catch((err: Error) => log.debug({ err: err.message }, 'progress not recorded'));
          },
        });
      } finally {
        this.releaseSession(session);
      }
      record = this.toRecord(base, data, result, started);
      if (record.status === 'scored') {
        log.info(
          { slices: record.slices.length, score: record.score, category: record.category, ms: record.timings.totalMs },
          'series scored',
        );
      } else {
        log.warn({ reason: record.reason, dropped: record.dropped.length }, 'series not scored');
        const next = data.study?.fallback[0];
        if (data.study && next) return await this.fallBack(record, job, data, data.study, log);
        if (data.study) {
          // The last candidate could not be scored either: the study's "not scored" report says why for every series.
          record = {
            ...record,
            reason: `${record.reason ?? 'not scored'}; ${noCandidateReason(data.study.roles.filter((r) => r.seriesInstanceUid !== data.seriesInstanceUid))}`,
          };
        }
      }
      const labels =
        record.status === 'scored' ? result.series.find((s) => s.seriesInstanceUid === data.seriesInstanceUid)?.labels : undefined;
      return await this.finish(record, job, meta, started, log, labels ? { labels } : undefined);
    } catch (err) {
      if (err instanceof NotScored) throw new UnrecoverableError(`not scored: ${err.message}`);
      const msg = (err as Error)?.message ?? String(err);
      const last = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
      log.warn({ err: msg, last }, last ? 'inference job failed (no retries left)' : 'inference job failed (will retry)');
      // A failure after scoring (the results stage) keeps the scores in the record.
      const failed: ResultRecord = last
        ? {
            ...record,
            status: 'failed',
            reason: msg,
            finishedAt: new Date().toISOString(),
            timings: { ...record.timings, totalMs: Date.now() - started },
          }
        : { ...base, reason: `attempt ${job.attemptsMade + 1} failed, will retry: ${msg}` };
      await this.store.write(failed, 'own').catch((e: Error) => log.warn({ err: e.message }, 'could not record the failure'));
      throw err;
    }
  }

  /** Results stage, final record, and the job's outcome ('not-scored' throws NotScored). */
  private async finish(
    record: ResultRecord,
    job: Job<InferenceJobData>,
    meta: ModelMetadata,
    started: number,
    log: Logger,
    extras?: ResultExtras,
  ): Promise<InferenceJobResult> {
    if (this.opts.onResult) {
      const t = Date.now();
      const outputs = await this.opts.onResult(record, job, meta, extras);
      record = { ...record, ...(outputs ? { outputs } : {}), timings: { ...record.timings, resultsMs: Date.now() - t } };
    }
    record = { ...record, finishedAt: new Date().toISOString(), timings: { ...record.timings, totalMs: Date.now() - started } };
    const mine = await this.store.write(record, 'own');
    if (!mine) log.warn('a newer job took this series over: result not recorded');
    if (record.status === 'not-scored') throw new NotScored(record.reason ?? 'not scored');
    return { status: 'scored', score: record.score ?? 0, category: record.category ?? 'indeterminate' };
  }

  /**
   * The study's chosen series could not be scored (e.g. the lung segmentation found no lungs): the
   * next candidate is scored instead, in a job of its own (id derived from this one, so a rerun adds
   * it once); this series keeps a 'not-scored' record without result objects, and the roles say why.
   */
  private async fallBack(
    record: ResultRecord,
    job: Job<InferenceJobData>,
    data: InferenceJobData,
    study: StudyJobContext,
    log: Logger,
  ): Promise<InferenceJobResult> {
    const [next, ...rest] = study.fallback as [StudyJobContext['fallback'][number], ...StudyJobContext['fallback']];
    const why = `chosen first, but not scored: ${record.reason ?? 'not scored'}`;
    const roles = study.roles.map((r) => {
      if (r.seriesInstanceUid === data.seriesInstanceUid) return { ...r, role: 'candidate' as const, reason: why };
      if (r.seriesInstanceUid === next.seriesInstanceUid)
        return {
          ...r,
          role: 'chosen' as const,
          reason: `${r.reason.replace(/^candidate not chosen: .*$/, 'next candidate')}; scored instead of series ${r.seriesNumber || data.seriesInstanceUid}`,
        };
      return r;
    });
    const jobId = `${String(job.id)}-next-${next.seriesInstanceUid}`;
    const payload = inferenceJobSchema.parse({
      ...data,
      seriesInstanceUid: next.seriesInstanceUid,
      seriesDir: next.seriesDir,
      instanceCount: next.instanceCount,
      instancesHash: next.instancesHash,
      study: { ...study, roles, fallback: rest },
    } satisfies InferenceJobData);
    await this.queue?.add('score', payload, { ...INFERENCE_JOB_OPTIONS, jobId });
    const k = this.keys;
    await this.opts.redis
      .multi()
      .hset(k.series(data.seriesInstanceUid), { role: 'candidate', roleReason: why })
      .hset(k.series(next.seriesInstanceUid), {
        status: 'queued',
        jobId,
        role: 'chosen',
        roleReason: roles.find((r) => r.seriesInstanceUid === next.seriesInstanceUid)?.reason ?? '',
      })
      .hset(k.study(data.studyInstanceUid), { chosenSeries: next.seriesInstanceUid, jobId })
      .exec();
    const final = { ...record, study: { contentHash: study.contentHash, roles }, finishedAt: new Date().toISOString() };
    await this.store.write(final, 'own');
    log.info(
      { next: next.seriesInstanceUid, jobId, reason: record.reason },
      'chosen series not scored: the next candidate of the study is scored instead',
    );
    return { status: 'fallback', seriesInstanceUid: next.seriesInstanceUid, jobId };
  }

  /**
   * The content hash of the spooled folder when it differs from the job's and a job for it is
   * queued or coming (the tracker sees the series receiving): scoring this older content would
   * only produce a result the newer one replaces at once. Else null (score what is there).
   */
  private async newerContent(data: InferenceJobData): Promise<string | null> {
    if (data.study) {
      // A study still receiving (or settled again to another content) gets a newer job.
      const [status, content] = await this.opts.redis.hmget(this.keys.study(data.studyInstanceUid), 'status', 'contentHash');
      if (status === 'receiving' || (content && content !== data.study.contentHash && status === 'queued'))
        return content ?? data.instancesHash;
    }
    const sops = await listSeriesInstances(data.seriesDir);
    if (sops.length === 0) return null;
    const current = instancesHash(sops);
    if (current === data.instancesHash) return null;
    const newer = await this.queue?.getJob(inferenceJobId(data.seriesInstanceUid, current));
    if (newer && !(await newer.isCompleted()) && !(await newer.isFailed())) return current;
    const status = await this.opts.redis.hget(this.keys.series(data.seriesInstanceUid), 'status');
    return status === 'receiving' ? current : null;
  }

  private async markFailed(job: Job<InferenceJobData>, reason: string): Promise<void> {
    const rec = await this.store.read(job.data.seriesInstanceUid);
    if (!rec || rec.jobId !== String(job.id) || rec.status !== 'scoring') return;
    await this.store.write({ ...rec, status: 'failed', reason, finishedAt: new Date().toISOString() }, 'own');
    this.log.warn({ jobId: job.id, seriesInstanceUid: job.data.seriesInstanceUid, reason }, 'inference job failed');
  }

  /** The scoreFiles result of one series folder → the record ('scored' or 'not-scored'). */
  private toRecord(base: ResultRecord, data: InferenceJobData, r: ScoreResult, started: number): ResultRecord {
    const uid = data.seriesInstanceUid;
    const st = r.timing.stages;
    const timings = {
      ...base.timings,
      readMs: st.readMs,
      decodeMs: st.decodeMs,
      lungMs: st.lungMs,
      preprocessMs: st.preprocessMs,
      inferMs: st.inferMs,
      aggregateMs: st.aggregateMs,
      ...(st.keySlicesMs !== undefined ? { keySlicesMs: st.keySlicesMs } : {}),
      totalMs: Date.now() - started,
    };
    const series = r.series.find((s) => s.seriesInstanceUid === uid);
    const unscored = r.notScored.find((s) => s.seriesInstanceUid === uid);
    const others = r.series.length + r.notScored.length - (series ? 1 : 0) - (unscored ? 1 : 0);
    const skipped = r.skipped.map((s) => ({ sopInstanceUid: null, reason: `${path.basename(s.file)}: ${s.reason}` }));
    if (others > 0) skipped.push({ sopInstanceUid: null, reason: `${others} other series in the folder (not this job's)` });
    const minSlices = this.opts.config.series.routing.minSlices;
    const dropped = (d: { sopInstanceUid: string | null; reason: string }[]) =>
      [...d.map((x) => ({ sopInstanceUid: x.sopInstanceUid, reason: x.reason })), ...skipped].slice(0, MAX_DROPPED);
    if (series && series.slices >= minSlices) {
      const slices = r.slices.filter((s) => s.seriesInstanceUid === uid);
      return {
        ...base,
        status: 'scored',
        ...scoredFields(series, slices),
        dropped: dropped(series.dropped),
        timings,
      };
    }
    let reason: string;
    let d: { sopInstanceUid: string | null; reason: string }[] = [];
    if (series) {
      reason = `too few decodable slices (${series.slices} < ${minSlices})`;
      d = series.dropped;
    } else if (unscored) {
      reason = unscored.reason;
      d = unscored.dropped;
    } else if (r.skipped.some((s) => s.file === data.seriesDir)) {
      reason = `series folder unreadable: ${r.skipped.find((s) => s.file === data.seriesDir)?.reason ?? ''}`;
    } else {
      reason = 'no DICOM instance of this series in its spool folder';
    }
    return { ...base, status: 'not-scored', reason, dropped: dropped(d), timings };
  }
}
