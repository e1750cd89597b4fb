import { Queue, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Config } from '../config/schema.js';
import { resolvePath } from '../config/load.js';
import type { InstanceSink, ReceivedInstance } from '../dicom/received-instance.js';
import type { Logger } from '../log.js';
import {
  INFERENCE_JOB_OPTIONS,
  INFERENCE_QUEUE,
  SETTLE_QUEUE,
  inferenceJobId,
  inferenceJobSchema,
  settleJobSchema,
  studyJobContextSchema,
  type EnqueuedBy,
  type InferenceJobData,
  type SettleJobData,
  type StudyJobContext,
} from './jobs.js';
import { summarizeSeries } from './series-selection.js';
import { parseSeriesState, type SeriesState } from './series-state.js';
import { parseStudyState, type StudyState } from './study-state.js';
import { SeriesContentReader, storedInstance, type SeriesHead } from './series-content.js';
import { decideStudy, roleFields, type StudyDecision, type StudySeries } from './study-decision.js';
import { commonFields, inferencePayload, SettleRecorder, type SettleResult } from './settle-outcome.js';
import { Keys } from '../stores/keys.js';
import { loadLua } from '../stores/lua.js';
import { throttledWarn, whenReady, withTimeout } from '../stores/redis.js';
import { routeSeries } from './routing.js';
import { seriesDirOf } from '../dicom/spool/reader.js';

/** The outcome of a study settle: every series' part of it. */
export type StudySettleResult =
  | { outcome: 'not-found' }
  | { outcome: 'deferred'; remainingMs: number }
  | {
      outcome: 'settled';
      studyInstanceUid: string;
      chosen?: string;
      jobId?: string;
      noCandidate: boolean;
      contentHash: string;
      series: Array<{ seriesInstanceUid: string; result: SettleResult }>;
    };

/** A study as one settle read it: its hash and the heads of its series still known. */
interface StudyHead {
  key: string;
  h: Record<string, string>;
  heads: Array<readonly [string, SeriesHead]>;
  lastArrival: number;
}

/** Updates the study's arrival times and membership with each instance (study mode and per-series mode alike). */
const RECORD_STUDY = loadLua(import.meta.url, 'record-study');

/** Records an instance in its series' hash and instances hash, and the series in the index. */
const RECORD_INSTANCE = loadLua(import.meta.url, 'record-instance');

export interface SeriesTrackerOptions {
  config: Config;
  logger: Logger;
  /** Fail-fast connection (createRedis(url, 'command')): receive path and producers. */
  redis: Redis;
  /** Blocking connection (createRedis(url, 'worker')) for the settle worker; omit for no worker. */
  workerRedis?: Redis;
  /** Give up on Redis in instanceStored after this long (default 3 s). */
  sinkTimeoutMs?: number;
}

/**
 * The series tracker: an InstanceSink that records each stored instance in Redis and debounces
 * "series complete" (per-series mode) or "study complete" (study mode, the default) with a delayed
 * BullMQ job per series or study (deduplicated by UID, replaced on every arrival). When it fires
 * (on any listener's settle worker), the settle runs in named steps:
 *
 * 1. gather (src/queue/series-content.ts): the quiet period is checked again and each series'
 *    content read from Redis and the spool;
 * 2. decide: routing (src/queue/routing.ts) for a series; for a study, selection
 *    (src/queue/series-selection.ts) and the study decision (src/queue/study-decision.ts);
 * 3. record the study's decision (study mode);
 * 4. enqueue inference: one job for the content (its id derived from the series or study UID and
 *    the content hash), the series recorded queued (src/queue/settle-outcome.ts);
 * 5. record reasons: every other series recorded ignored with its reason.
 */
export class SeriesTracker implements InstanceSink {
  readonly keys: Keys;
  readonly inferenceQueue: Queue<InferenceJobData>;
  readonly settleQueue: Queue<SettleJobData>;
  private worker: Worker<SettleJobData> | undefined;
  private readonly quietMs: number;
  private readonly spoolDir: string;
  private readonly log: Logger;
  private readonly reader: SeriesContentReader;
  private readonly recorder: SettleRecorder;
  /** Redis down: one warning per 10 s, not one per instance. */
  private readonly sinkWarn: ReturnType<typeof throttledWarn>;

  constructor(private readonly opts: SeriesTrackerOptions) {
    const { config, redis } = opts;
    this.keys = new Keys(config.redis.keyPrefix);
    this.quietMs = Math.round(config.series.quietPeriodSeconds * 1000);
    this.spoolDir = resolvePath(config.spool.dir);
    this.log = opts.logger.child({ component: 'series-tracker' });
    this.sinkWarn = throttledWarn(this.log);
    const prefix = config.redis.keyPrefix;
    this.inferenceQueue = new Queue<InferenceJobData>(INFERENCE_QUEUE, { connection: redis, prefix });
    this.settleQueue = new Queue<SettleJobData>(SETTLE_QUEUE, { connection: redis, prefix });
    for (const q of [this.inferenceQueue, this.settleQueue]) {
      const warn = throttledWarn(this.log);
      q.on('error', (err) => warn({ err: err.message, queue: q.name }, 'queue error'));
    }
    redis.defineCommand('mlsamRecordInstance', { numberOfKeys: 3, lua: RECORD_INSTANCE });
    redis.defineCommand('mlsamRecordStudy', { numberOfKeys: 3, lua: RECORD_STUDY });
    this.reader = new SeriesContentReader(redis, this.keys, this.spoolDir, this.log);
    this.recorder = new SettleRecorder(redis, this.inferenceQueue, this.log);
  }

  /** One result per study (results.perSeries false): series settle as a study. */
  get studyMode(): boolean {
    return !this.opts.config.results.perSeries;
  }

  /** Starts this process's settle worker (every listener runs one; one of them wins each job). */
  startSettleWorker(): void {
    if (this.worker || !this.opts.workerRedis) return;
    this.worker = new Worker<SettleJobData>(
      SETTLE_QUEUE,
      async (job: Job<SettleJobData>) => {
        const data = settleJobSchema.parse(job.data);
        if ('studyInstanceUid' in data) return this.settleStudy(data.studyInstanceUid, 'tracker');
        return this.settle(data.seriesInstanceUid, 'tracker');
      },
      { connection: this.opts.workerRedis, prefix: this.opts.config.redis.keyPrefix, concurrency: 4 },
    );
    const warn = throttledWarn(this.log);
    this.worker.on('error', (err) => warn({ err: err.message }, 'settle worker error'));
    this.worker.on('failed', (job, err) => this.log.warn({ ...job?.data, err: err.message }, 'settle failed'));
  }

  /** InstanceSink: never throws; a Redis failure is logged and left to the reconciler. */
  async instanceStored(inst: ReceivedInstance): Promise<void> {
    try {
      await withTimeout(this.record(inst), this.opts.sinkTimeoutMs ?? 3_000, 'series tracker');
    } catch (err) {
      this.sinkWarn(
        { err: (err as Error).message, seriesInstanceUid: inst.seriesInstanceUid, sopInstanceUid: inst.sopInstanceUid },
        'could not track instance (the reconciler will pick the series up from the spool)',
      );
    }
  }

  private async record(inst: ReceivedInstance): Promise<void> {
    const seriesDir = seriesDirOf(this.spoolDir, inst.studyInstanceUid, inst.seriesInstanceUid);
    const stored = storedInstance({ ...inst, ...inst.attributes });
    await whenReady(this.opts.redis);
    await this.redisCmd('mlsamRecordInstance')(
      this.keys.series(inst.seriesInstanceUid),
      this.keys.seriesInstances(inst.seriesInstanceUid),
      this.keys.seriesIndex(),
      inst.studyInstanceUid,
      inst.seriesInstanceUid,
      seriesDir,
      inst.callingAeTitle,
      String(inst.receivedAt),
      inst.sopInstanceUid,
      JSON.stringify(stored),
    );
    await this.redisCmd('mlsamRecordStudy')(
      this.keys.study(inst.studyInstanceUid),
      this.keys.studySeries(inst.studyInstanceUid),
      this.keys.studyIndex(),
      inst.studyInstanceUid,
      String(inst.receivedAt),
      inst.attributes?.studyDate ?? '',
      inst.attributes?.studyDescription ?? '',
      inst.seriesInstanceUid,
    );
    if (this.studyMode) await this.scheduleStudySettle(inst.studyInstanceUid, this.quietMs);
    else await this.scheduleSettle(inst.seriesInstanceUid, this.quietMs);
  }

  /** The study's debounced settle job (deduplicated by study UID), like scheduleSettle for a series. */
  async scheduleStudySettle(studyInstanceUid: string, delayMs: number): Promise<void> {
    await this.settleQueue.add(
      'settle-study',
      { studyInstanceUid },
      {
        delay: Math.max(0, Math.round(delayMs)),
        deduplication: { id: `study-${studyInstanceUid}`, replace: true, keepLastIfActive: true },
        attempts: 5,
        backoff: { type: 'exponential', delay: 1_000 },
        removeOnComplete: true,
        removeOnFail: { count: 1_000 },
      },
    );
  }

  /**
   * (Re)arms the debounced settle job of a series: BullMQ deduplication by series UID with
   * `replace` (a delayed job is replaced, so its delay restarts at every arrival) and
   * `keepLastIfActive` (an arrival while the settle job runs leaves one follow-up job, created
   * when the running one ends) — a debounce without a polling loop, shared by all listeners.
   */
  async scheduleSettle(seriesInstanceUid: string, delayMs: number): Promise<void> {
    await this.settleQueue.add(
      'settle',
      { seriesInstanceUid },
      {
        delay: Math.max(0, Math.round(delayMs)),
        deduplication: { id: seriesInstanceUid, replace: true, keepLastIfActive: true },
        attempts: 5,
        backoff: { type: 'exponential', delay: 1_000 },
        removeOnComplete: true,
        removeOnFail: { count: 1_000 },
      },
    );
  }

  async getSeries(seriesInstanceUid: string): Promise<SeriesState | undefined> {
    await whenReady(this.opts.redis, 3_000);
    const h = await this.opts.redis.hgetall(this.keys.series(seriesInstanceUid));
    if (!h.studyInstanceUid || !h.seriesInstanceUid) return undefined;
    const received = await this.opts.redis.hlen(this.keys.seriesInstances(seriesInstanceUid));
    return parseSeriesState(h, received, (study, series) => seriesDirOf(this.spoolDir, study, series));
  }

  /** A study and its series UIDs (undefined when unknown). */
  async getStudy(studyInstanceUid: string): Promise<StudyState | undefined> {
    await whenReady(this.opts.redis, 3_000);
    const [h, series] = await Promise.all([
      this.opts.redis.hgetall(this.keys.study(studyInstanceUid)),
      this.opts.redis.smembers(this.keys.studySeries(studyInstanceUid)),
    ]);
    return parseStudyState(h, series);
  }

  /** The studies with the most recent arrivals first (for the dashboard and GET /api/studies). */
  async listStudies(limit = 100): Promise<StudyState[]> {
    await whenReady(this.opts.redis, 3_000);
    const uids = await this.opts.redis.zrevrange(this.keys.studyIndex(), 0, Math.max(0, limit - 1));
    const out: StudyState[] = [];
    for (const uid of uids) {
      const st = await this.getStudy(uid);
      if (st) out.push(st);
    }
    return out;
  }

  /** The series with the most recent arrivals first (for the dashboard). */
  async listSeries(limit = 100): Promise<SeriesState[]> {
    await whenReady(this.opts.redis, 3_000);
    const uids = await this.opts.redis.zrevrange(this.keys.seriesIndex(), 0, Math.max(0, limit - 1));
    const out: SeriesState[] = [];
    for (const uid of uids) {
      const st = await this.getSeries(uid);
      if (st) out.push(st);
    }
    return out;
  }

  /**
   * Creates the Redis state of a series found in the spool but unknown to Redis (the reconciler's
   * entry point); instances and arrival times are filled in from the files by settle().
   */
  async adoptSpooledSeries(studyInstanceUid: string, seriesInstanceUid: string, dir: string, lastChangeMs: number): Promise<void> {
    const key = this.keys.series(seriesInstanceUid);
    await this.opts.redis
      .multi()
      .zadd(this.keys.seriesIndex(), 'NX', Math.round(lastChangeMs), seriesInstanceUid)
      .hsetnx(key, 'studyInstanceUid', studyInstanceUid)
      .hsetnx(key, 'seriesInstanceUid', seriesInstanceUid)
      .hsetnx(key, 'seriesDir', dir)
      .hsetnx(key, 'callingAeTitle', '')
      .hsetnx(key, 'status', 'receiving')
      .sadd(this.keys.studySeries(studyInstanceUid), seriesInstanceUid)
      .hsetnx(this.keys.study(studyInstanceUid), 'studyInstanceUid', studyInstanceUid)
      .hsetnx(this.keys.study(studyInstanceUid), 'status', 'receiving')
      .zadd(this.keys.studyIndex(), 'NX', Math.round(lastChangeMs), studyInstanceUid)
      .exec();
  }

  /**
   * Decides a series: defers when the quiet period has not elapsed (unless `force`), else adds
   * one inference job for its current content or records it ignored. Idempotent per content.
   * In study mode (results.perSeries false) the series' study is settled instead, and this
   * series' part of that decision is returned.
   */
  async settle(seriesInstanceUid: string, by: EnqueuedBy, opts: { force?: boolean } = {}): Promise<SettleResult> {
    await whenReady(this.opts.redis, 3_000);
    if (this.studyMode) return this.settleSeriesOfStudy(seriesInstanceUid, by, opts);
    // 1. Gather: wait for the quiet period, then read the content.
    const head = await this.reader.head(seriesInstanceUid);
    if (!head) return { outcome: 'not-found' };
    const remainingMs = this.remainingQuietMs(head.lastArrival);
    if (!opts.force && remainingMs > 0) {
      await this.scheduleSettle(seriesInstanceUid, Math.min(remainingMs, this.quietMs)); // cap: clock skew
      return { outcome: 'deferred', remainingMs };
    }
    const c = await this.reader.content(seriesInstanceUid, head);
    if (!c) return { outcome: 'not-found' };
    // 2. Decide: routing.
    const decision = routeSeries(c.instances, this.opts.config.series.routing);
    // 5. Record the reason it is not scored, or 4. enqueue one inference job for this content.
    if (decision.route === 'ignore') {
      return this.recorder.recordIgnored(seriesInstanceUid, c, decision.code, decision.reason, commonFields(c, decision), by);
    }
    const jobId = inferenceJobId(seriesInstanceUid, c.hash);
    return this.recorder.recordQueued(
      seriesInstanceUid,
      c,
      jobId,
      commonFields(c, decision),
      by,
      inferencePayload(seriesInstanceUid, c, by),
      c.h.queuedHash === c.hash,
    );
  }

  /** Study mode: settles the series' study and returns this series' part of it. */
  private async settleSeriesOfStudy(seriesInstanceUid: string, by: EnqueuedBy, opts: { force?: boolean }): Promise<SettleResult> {
    const redis = this.opts.redis;
    const study = await redis.hget(this.keys.series(seriesInstanceUid), 'studyInstanceUid');
    if (!study) return { outcome: 'not-found' };
    // A series tracked before studies were (an upgrade) joins its study here.
    await redis.sadd(this.keys.studySeries(study), seriesInstanceUid);
    await redis.hsetnx(this.keys.study(study), 'studyInstanceUid', study);
    const r = await this.settleStudy(study, by, opts);
    if (r.outcome !== 'settled') return r;
    return r.series.find((x) => x.seriesInstanceUid === seriesInstanceUid)?.result ?? { outcome: 'not-found' };
  }

  /**
   * Decides a study (study mode): defers until none of its series received an instance for the
   * quiet period (unless `force`), then summarises every series, selects the one to score
   * (src/queue/series-selection.ts), adds one inference job for the study's content (its id derived
   * from the study UID and the content hash: a resent study adds nothing, a grown one is scored
   * again once) and records every series' role and reason.
   */
  async settleStudy(studyInstanceUid: string, by: EnqueuedBy, opts: { force?: boolean } = {}): Promise<StudySettleResult> {
    await whenReady(this.opts.redis, 3_000);
    // 1. Gather: the study and its series' heads; wait until none received an instance for the quiet period.
    const study = await this.studyHead(studyInstanceUid);
    if (!study) return { outcome: 'not-found' };
    const remainingMs = this.remainingQuietMs(study.lastArrival);
    if (!opts.force && remainingMs > 0) {
      await this.scheduleStudySettle(studyInstanceUid, Math.min(remainingMs, this.quietMs));
      return { outcome: 'deferred', remainingMs };
    }
    const series = await this.gatherStudySeries(study);
    if (series.length === 0) return { outcome: 'not-found' };

    // 2. Select the series to score and decide what every series and the study record.
    const decision = decideStudy(studyInstanceUid, series, study.h, this.opts.config.series.selection, Date.now());

    // 3. Record the study's decision first (the worker checks it as soon as the job exists); an
    // instance that arrived meanwhile wins: its own settle job decides later.
    if (!(await this.recordStudyDecision(study, decision))) {
      await this.scheduleStudySettle(studyInstanceUid, this.quietMs);
      return { outcome: 'deferred', remainingMs: this.quietMs };
    }

    // 4. Enqueue inference for the chosen series (one job per study content).
    const results: Array<{ seriesInstanceUid: string; result: SettleResult }> = [];
    let alreadyQueued = false;
    if (decision.chosen) {
      const queued = await this.enqueueChosen(study, decision, by);
      alreadyQueued = queued.alreadyQueued;
      results.push({ seriesInstanceUid: decision.chosen.uid, result: queued.result });
    }

    // 5. Record every other series as not scored, with its reason.
    for (const { series: x, code, reason } of decision.notChosen) {
      const fields = { ...commonFields(x.content, x.summary.route), ...roleFields(x.summary, decision.roles) };
      const r = await this.recorder.recordIgnored(x.uid, x.content, code, reason, fields, by, true);
      results.push({ seriesInstanceUid: x.uid, result: r });
    }

    const { chosen, jobId, noCandidate, contentHash } = decision;
    this.log.info(
      {
        studyInstanceUid,
        series: decision.series.length,
        candidates: decision.candidates,
        chosen: chosen?.uid,
        noCandidate,
        contentHash,
        jobId,
        alreadyQueued,
        by,
      },
      chosen ? (alreadyQueued ? 'study already queued' : 'study queued for inference') : 'study ignored',
    );
    return {
      outcome: 'settled',
      studyInstanceUid,
      ...(chosen && jobId ? { chosen: chosen.uid, jobId } : {}),
      noCandidate,
      contentHash,
      series: results,
    };
  }

  /** How long the quiet period still runs after an arrival at `lastArrival` (≤ 0: over). */
  private remainingQuietMs(lastArrival: number): number {
    return this.quietMs - (Date.now() - lastArrival);
  }

  /** Settle step 1 (study): the study's hash and the heads of its series still known to Redis. */
  private async studyHead(studyInstanceUid: string): Promise<StudyHead | undefined> {
    const redis = this.opts.redis;
    const key = this.keys.study(studyInstanceUid);
    const [h, uids] = await Promise.all([redis.hgetall(key), redis.smembers(this.keys.studySeries(studyInstanceUid))]);
    if (uids.length === 0) return undefined;
    const heads = (await Promise.all(uids.map(async (u) => [u, await this.reader.head(u)] as const))).filter(
      (x): x is readonly [string, SeriesHead] => Boolean(x[1]),
    );
    if (heads.length === 0) return undefined;
    return { key, h, heads, lastArrival: Math.max(...heads.map(([, head]) => head.lastArrival)) };
  }

  /** Settle step 1 (study), once quiet: every series' content and selection's summary of it. */
  private async gatherStudySeries(study: StudyHead): Promise<StudySeries[]> {
    const series: StudySeries[] = [];
    for (const [uid, head] of study.heads) {
      const content = await this.reader.content(uid, head);
      if (content) series.push({ uid, content, summary: summarizeSeries(uid, content.instances, this.opts.config.series.routing) });
    }
    return series;
  }

  /** Settle step 3 (study): writes the study's hash; false when an instance arrived since it was read. */
  private async recordStudyDecision(study: StudyHead, decision: StudyDecision): Promise<boolean> {
    if (!(await this.recorder.writeIfQuiet(study.key, study.h.lastReceivedAt ?? '', decision.studyFields))) return false;
    if (!decision.chosen) await this.opts.redis.hdel(study.key, 'chosenSeries', 'jobId');
    return true;
  }

  /**
   * Settle step 4 (study): the study job's context into the study's hash, the inference job for
   * the chosen series (not added again for content already queued) and the series recorded queued.
   */
  private async enqueueChosen(
    study: StudyHead,
    decision: StudyDecision,
    by: EnqueuedBy,
  ): Promise<{ result: SettleResult; alreadyQueued: boolean }> {
    const redis = this.opts.redis;
    const { chosen, jobId, context, contentHash, roles } = decision;
    if (!chosen || !jobId || !context) throw new Error('enqueueChosen needs a chosen series');
    const sameContent = study.h.queuedHash === contentHash;
    await redis.hset(study.key, 'context', JSON.stringify(context));
    const result = await this.recorder.recordQueued(
      chosen.uid,
      chosen.content,
      jobId,
      { ...commonFields(chosen.content, chosen.summary.route), ...roleFields(chosen.summary, roles) },
      by,
      { ...inferencePayload(chosen.uid, chosen.content, by), study: context },
      sameContent,
    );
    await redis.hset(study.key, 'queuedHash', contentHash);
    return { result, alreadyQueued: sameContent || (result.outcome === 'queued' && result.existed === true) };
  }

  /**
   * Scores the series' settled content again (admin "re-score"): a new inference job with its own
   * id (`<content job id>-admin-<ms>`, so a completed job of the same content does not block it),
   * and the series recorded as queued for it. Undefined when the series was never settled.
   */
  async requeue(seriesInstanceUid: string): Promise<{ jobId: string } | undefined> {
    const state = await this.getSeries(seriesInstanceUid);
    if (!state?.instancesHash || !state.instanceCount) return undefined;
    // Study mode: the study's chosen series is scored again with its study (one result per study).
    let study: StudyJobContext | undefined;
    if (this.studyMode) {
      const [chosen, context] = await this.opts.redis.hmget(this.keys.study(state.studyInstanceUid), 'chosenSeries', 'context');
      if (chosen === seriesInstanceUid && context) study = studyJobContextSchema.parse(JSON.parse(context));
    }
    const jobId = `${inferenceJobId(seriesInstanceUid, state.instancesHash)}-admin-${Date.now()}`;
    const payload = inferenceJobSchema.parse({
      ...(study ? { study } : {}),
      studyInstanceUid: state.studyInstanceUid,
      seriesInstanceUid,
      seriesDir: state.seriesDir,
      instanceCount: state.instanceCount,
      instancesHash: state.instancesHash,
      callingAeTitle: state.callingAeTitle,
      firstReceivedAt: new Date(state.firstReceivedAt || state.lastReceivedAt).toISOString(),
      lastReceivedAt: new Date(state.lastReceivedAt).toISOString(),
      enqueuedBy: 'admin',
    } satisfies InferenceJobData);
    await this.inferenceQueue.add('score', payload, { ...INFERENCE_JOB_OPTIONS, jobId });
    await this.opts.redis.hset(this.keys.series(seriesInstanceUid), { status: 'queued', jobId, enqueuedBy: 'admin' });
    this.log.info({ seriesInstanceUid, jobId, by: 'admin' }, 'series queued for scoring again');
    return { jobId };
  }

  private redisCmd(name: 'mlsamRecordInstance' | 'mlsamRecordStudy'): (...args: string[]) => Promise<unknown> {
    const fn = (this.opts.redis as unknown as Record<string, (...a: string[]) => Promise<unknown>>)[name];
    if (!fn) throw new Error(`redis command ${name} not defined`);
    return fn.bind(this.opts.redis);
  }

  /** Stops the settle worker and the queues (not the Redis connections: their owner closes them). */
  async close(): Promise<void> {
    await this.worker?.close().catch(() => undefined);
    await Promise.all([this.inferenceQueue.close(), this.settleQueue.close()].map((p) => p.catch(() => undefined)));
  }
}
