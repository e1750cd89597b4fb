import { stat } from 'node:fs/promises';
import { join } from 'node:path';
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
  instancesHash,
  settleJobSchema,
  studyInferenceJobId,
  studyJobContextSchema,
  type EnqueuedBy,
  type InferenceJobData,
  type SettleJobData,
  type StudyJobContext,
} from './jobs.js';
import {
  decimals,
  selectSeries,
  summarizeSeries,
  type SelectableInstance,
  type SeriesRole,
  type SeriesSummary,
} from './series-selection.js';
import { parseStudyState, type StudyState } from './study-state.js';
import { Keys } from '../stores/keys.js';
import { loadLua } from '../stores/lua.js';
import { throttledWarn, whenReady, withTimeout } from '../stores/redis.js';
import { routeSeries, type IgnoreCode, type RouteDecision } from './routing.js';
import { listSeriesInstances, readInstanceHeader, seriesDirLastChange, seriesDirOf } from '../dicom/spool/reader.js';

export type SeriesStatus =
  | 'receiving'
  | 'queued'
  | 'ignored'
  /** Set by the inference worker (src/worker/inference) as the job runs and ends. */
  | 'scoring'
  | 'scored'
  | 'not-scored'
  | 'failed';

/** A series as the tracker keeps it in Redis (hash `<prefix>:series:<uid>`). */
export interface SeriesState {
  studyInstanceUid: string;
  seriesInstanceUid: string;
  seriesDir: string;
  callingAeTitle: string;
  firstReceivedAt: number;
  lastReceivedAt: number;
  status: SeriesStatus;
  /** Instances known now (grows while receiving). */
  instancesReceived: number;
  /** Content of the last settle: count and hash of the instances it saw. */
  instanceCount?: number;
  instancesHash?: string;
  scorableInstances?: number;
  excludedInstances?: number;
  /** Set when status is ignored. */
  ignoreCode?: IgnoreCode;
  reason?: string;
  /** Modality and BodyPartExamined values seen (at the last settle). */
  modalities?: string[];
  bodyParts?: string[];
  /** Study mode (results.perSeries false): the series' role in its study and why. */
  role?: SeriesRole;
  roleReason?: string;
  /** Study mode: what selection saw (SeriesNumber, description, orientation, thickness, spacing, coverage, kernel). */
  seriesNumber?: string;
  seriesDescription?: string;
  orientation?: string;
  sliceThicknessMm?: number;
  spacingMm?: number;
  coverageMm?: number;
  kernel?: string;
  /** Set when status is queued. */
  jobId?: string;
  /** Content hash of the last inference job added; kept while new instances arrive. */
  queuedHash?: string;
  enqueuedBy?: EnqueuedBy;
  settledAt?: number;
}

export type SettleResult =
  | { outcome: 'not-found' }
  | { outcome: 'deferred'; remainingMs: number }
  | { outcome: 'queued'; jobId: string; instanceCount: number; instancesHash: string; existed?: boolean }
  | { outcome: 'ignored'; code: IgnoreCode; reason: string; instanceCount: number; instancesHash: string };

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

interface SeriesHead {
  key: string;
  h: Record<string, string>;
  studyInstanceUid: string;
  seriesDir: string;
  lastRaw: string;
  lastArrival: number;
}

/** Compact form of an instance's routing attributes in the per-series instances hash. */
interface StoredInstance {
  m: string;
  b: string;
  t: string[];
  /** SOP class (absent: CT Image Storage, records from before it was kept). */
  c?: string;
  /** ImageOrientationPatient, ImagePositionPatient, SliceThickness, ConvolutionKernel, SeriesNumber, SeriesDescription as stored. */
  o?: string;
  p?: string;
  th?: string;
  k?: string;
  n?: string;
  d?: string;
}

function storedInstance(h: {
  modality: string;
  bodyPartExamined: string;
  imageType: string[];
  sopClassUid: string;
  imageOrientation?: string;
  imagePosition?: string;
  sliceThickness?: string;
  convolutionKernel?: string;
  seriesNumber?: string;
  seriesDescription?: string;
}): StoredInstance {
  const out: StoredInstance = { m: h.modality, b: h.bodyPartExamined, t: h.imageType };
  if (h.sopClassUid) out.c = h.sopClassUid;
  if (h.imageOrientation) out.o = h.imageOrientation;
  if (h.imagePosition) out.p = h.imagePosition;
  if (h.sliceThickness) out.th = h.sliceThickness;
  if (h.convolutionKernel) out.k = h.convolutionKernel;
  if (h.seriesNumber) out.n = h.seriesNumber;
  if (h.seriesDescription) out.d = h.seriesDescription;
  return out;
}

function selectable(s: StoredInstance): SelectableInstance {
  const th = s.th !== undefined ? Number(s.th) : NaN;
  return {
    modality: s.m,
    bodyPartExamined: s.b,
    imageType: s.t,
    ...(s.c ? { sopClassUid: s.c } : {}),
    orientation: decimals(s.o, 6),
    position: decimals(s.p, 3),
    sliceThickness: Number.isFinite(th) ? th : null,
    kernel: s.k ?? '',
    seriesNumber: s.n ?? '',
    seriesDescription: s.d ?? '',
  };
}

/** What one settle read about a series: its content, routing attributes and arrival times. */
interface SeriesContent extends SeriesHead {
  instances: SelectableInstance[];
  hash: string;
  instanceCount: number;
  firstReceivedAt: number;
  lastReceivedAt: number;
}

/** Updates the study's arrival times and membership with each instance (study mode and per-series mode alike). */
const RECORD_STUDY = loadLua(import.meta.url, 'record-study');

const RECORD_INSTANCE = loadLua(import.meta.url, 'record-instance');

/** Writes the settle outcome only if no instance arrived since the settle read the state. */
const FINALIZE = loadLua(import.meta.url, 'finalize-series');

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
 * "series complete" with a delayed BullMQ job per series (deduplicated by series UID, replaced on
 * every arrival). When it fires (on any listener's settle worker), the quiet period is checked
 * again, the content is read from Redis and the spool, routing decides, and either one inference
 * job is added (its id is derived from series UID + content hash) or the series is recorded ignored.
 */
export class SeriesTracker implements InstanceSink {
  readonly keys: Keys;
  readonly inferenceQueue: Queue<InferenceJobData>;
  readonly settleQueue: Queue<SettleJobData>;
  private worker: Worker<SettleJobData> | undefined;
  private readonly quietMs: number;
  private readonly spoolDir: string;
  private readonly log: Logger;
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
    redis.defineCommand('mlsamFinalizeSeries', { numberOfKeys: 1, lua: FINALIZE });
    redis.defineCommand('mlsamRecordStudy', { numberOfKeys: 3, lua: RECORD_STUDY });
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
    const n = (v: string | undefined): number | undefined => (v === undefined || v === '' ? undefined : Number(v));
    const received = await this.opts.redis.hlen(this.keys.seriesInstances(seriesInstanceUid));
    const state: SeriesState = {
      studyInstanceUid: h.studyInstanceUid,
      seriesInstanceUid: h.seriesInstanceUid,
      seriesDir: h.seriesDir ?? seriesDirOf(this.spoolDir, h.studyInstanceUid, h.seriesInstanceUid),
      callingAeTitle: h.callingAeTitle ?? '',
      firstReceivedAt: n(h.firstReceivedAt) ?? 0,
      lastReceivedAt: n(h.lastReceivedAt) ?? 0,
      status: (h.status as SeriesStatus | undefined) ?? 'receiving',
      instancesReceived: received,
    };
    if (h.instanceCount) state.instanceCount = Number(h.instanceCount);
    if (h.instancesHash) state.instancesHash = h.instancesHash;
    if (h.scorableInstances) state.scorableInstances = Number(h.scorableInstances);
    if (h.excludedInstances) state.excludedInstances = Number(h.excludedInstances);
    if (h.ignoreCode) state.ignoreCode = h.ignoreCode as IgnoreCode;
    if (h.reason) state.reason = h.reason;
    if (h.jobId) state.jobId = h.jobId;
    if (h.queuedHash) state.queuedHash = h.queuedHash;
    if (h.role) state.role = h.role as SeriesRole;
    if (h.roleReason) state.roleReason = h.roleReason;
    for (const f of ['seriesNumber', 'seriesDescription', 'orientation', 'kernel'] as const) if (h[f]) state[f] = h[f];
    for (const f of ['sliceThicknessMm', 'spacingMm', 'coverageMm'] as const) if (h[f]) state[f] = Number(h[f]);
    if (h.modalities !== undefined) state.modalities = h.modalities.split('\\');
    if (h.bodyParts !== undefined) state.bodyParts = h.bodyParts.split('\\');
    if (h.enqueuedBy) state.enqueuedBy = h.enqueuedBy as EnqueuedBy;
    if (h.settledAt) state.settledAt = Number(h.settledAt);
    return state;
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
    const redis = this.opts.redis;
    await whenReady(redis, 3_000);
    if (this.studyMode) {
      const study = await redis.hget(this.keys.series(seriesInstanceUid), 'studyInstanceUid');
      if (!study) return { outcome: 'not-found' };
      // A series tracked before studies were (an upgrade) joins its study here.
      await redis.sadd(this.keys.studySeries(study), seriesInstanceUid);
      await redis.hsetnx(this.keys.study(study), 'studyInstanceUid', study);
      const r = await this.settleStudy(study, by, opts);
      if (r.outcome !== 'settled') return r;
      return r.series.find((x) => x.seriesInstanceUid === seriesInstanceUid)?.result ?? { outcome: 'not-found' };
    }
    const head = await this.head(seriesInstanceUid);
    if (!head) return { outcome: 'not-found' };
    const remainingMs = this.quietMs - (Date.now() - head.lastArrival);
    if (!opts.force && remainingMs > 0) {
      await this.scheduleSettle(seriesInstanceUid, Math.min(remainingMs, this.quietMs)); // cap: clock skew
      return { outcome: 'deferred', remainingMs };
    }
    const c = await this.content(seriesInstanceUid, head);
    if (!c) return { outcome: 'not-found' };
    const decision = routeSeries(c.instances, this.opts.config.series.routing);
    if (decision.route === 'ignore') {
      return this.recordIgnored(seriesInstanceUid, c, decision.code, decision.reason, this.common(c, decision), by);
    }
    const jobId = inferenceJobId(seriesInstanceUid, c.hash);
    return this.recordQueued(
      seriesInstanceUid,
      c,
      jobId,
      this.common(c, decision),
      by,
      this.payload(seriesInstanceUid, c, by),
      c.h.queuedHash === c.hash,
    );
  }

  /**
   * Decides a study (study mode): defers until none of its series received an instance for the
   * quiet period (unless `force`), then summarises every series, selects the one to score
   * (src/queue/series-selection.ts), adds one inference job for the study's content (its id derived
   * from the study UID and the content hash: a resent study adds nothing, a grown one is scored
   * again once) and records every series' role and reason.
   */
  async settleStudy(studyInstanceUid: string, by: EnqueuedBy, opts: { force?: boolean } = {}): Promise<StudySettleResult> {
    const redis = this.opts.redis;
    await whenReady(redis, 3_000);
    const studyKey = this.keys.study(studyInstanceUid);
    const [sh, uids] = await Promise.all([redis.hgetall(studyKey), redis.smembers(this.keys.studySeries(studyInstanceUid))]);
    if (uids.length === 0) return { outcome: 'not-found' };
    const heads = (await Promise.all(uids.map(async (u) => [u, await this.head(u)] as const))).filter(
      (x): x is readonly [string, SeriesHead] => Boolean(x[1]),
    );
    if (heads.length === 0) return { outcome: 'not-found' };
    const lastArrival = Math.max(...heads.map(([, h]) => h.lastArrival));
    const remainingMs = this.quietMs - (Date.now() - lastArrival);
    if (!opts.force && remainingMs > 0) {
      await this.scheduleStudySettle(studyInstanceUid, Math.min(remainingMs, this.quietMs));
      return { outcome: 'deferred', remainingMs };
    }
    const contents: Array<{ uid: string; c: SeriesContent; summary: SeriesSummary }> = [];
    for (const [uid, head] of heads) {
      const c = await this.content(uid, head);
      if (c) contents.push({ uid, c, summary: summarizeSeries(uid, c.instances, this.opts.config.series.routing) });
    }
    if (contents.length === 0) return { outcome: 'not-found' };
    const num = (s: SeriesSummary): number => Number(s.seriesNumber) || Number.MAX_SAFE_INTEGER;
    contents.sort((a, b) => num(a.summary) - num(b.summary) || (a.uid < b.uid ? -1 : 1));
    const selection = selectSeries(
      contents.map((x) => x.summary),
      this.opts.config.series.selection,
    );
    const contentHash = instancesHash(contents.map((x) => `${x.uid}:${x.c.hash}`));
    const roles = selection.roles.map((r) => {
      const s = contents.find((x) => x.uid === r.seriesInstanceUid)!.summary;
      return {
        seriesInstanceUid: r.seriesInstanceUid,
        seriesNumber: s.seriesNumber,
        seriesDescription: s.seriesDescription,
        role: r.role,
        reason: r.reason,
      };
    });

    // No candidate, but chest CT series that routing accepts (reformats, non-axial, short coverage):
    // the largest of them carries the study's "not scored" report. A study with nothing for this
    // model (other modality, body part, only localizers or too few slices) is ignored, no report.
    let chosen = selection.chosen;
    let noCandidate = false;
    if (!chosen) {
      const reportable = contents.filter((x) => x.summary.route.route === 'score').sort((a, b) => b.c.instanceCount - a.c.instanceCount)[0];
      if (reportable) {
        chosen = reportable.uid;
        noCandidate = true;
      }
    }
    const jobId = chosen ? studyInferenceJobId(studyInstanceUid, contentHash) : undefined;
    const status = chosen ? 'queued' : 'ignored';
    const reason = noCandidate
      ? 'no series of the study could be scored (each series says why)'
      : chosen
        ? ''
        : 'no series of the study is for this model (each series says why)';
    const fields: Record<string, string> = {
      status,
      contentHash,
      settledAt: String(Date.now()),
      seriesCount: String(contents.length),
      candidates: String(selection.order.length),
      noCandidate: noCandidate ? '1' : '0',
      reason,
      ...(chosen ? { chosenSeries: chosen, jobId: jobId as string } : {}),
    };
    // The study's state first (the worker checks it as soon as the job exists); an instance that
    // arrived meanwhile wins: its own settle job decides later.
    const ok = (await this.redisCmd('mlsamFinalizeSeries')(studyKey, sh.lastReceivedAt ?? '', ...Object.entries(fields).flat())) as number;
    if (ok === 0) {
      await this.scheduleStudySettle(studyInstanceUid, this.quietMs);
      return { outcome: 'deferred', remainingMs: this.quietMs };
    }
    if (!chosen) await redis.hdel(studyKey, 'chosenSeries', 'jobId');
    const results: Array<{ seriesInstanceUid: string; result: SettleResult }> = [];
    let existing = false;
    if (chosen && jobId) {
      const x = contents.find((y) => y.uid === chosen)!;
      const fallback = noCandidate
        ? []
        : selection.order.slice(1).map((u) => {
            const f = contents.find((y) => y.uid === u)!.c;
            return { seriesInstanceUid: u, seriesDir: f.seriesDir, instanceCount: f.instanceCount, instancesHash: f.hash };
          });
      const study: StudyJobContext = {
        contentHash,
        roles,
        fallback,
        ...(sh.chosenSeries && sh.chosenSeries !== chosen ? { previousSeries: sh.chosenSeries } : {}),
        ...(noCandidate ? { noCandidate: true } : {}),
      };
      existing = sh.queuedHash === contentHash;
      await redis.hset(studyKey, 'context', JSON.stringify(study));
      const r = await this.recordQueued(
        chosen,
        x.c,
        jobId,
        { ...this.common(x.c, x.summary.route), ...this.roleFields(x.summary, roles) },
        by,
        { ...this.payload(chosen, x.c, by), study },
        existing,
      );
      existing = existing || (r.outcome === 'queued' && r.existed === true);
      results.push({ seriesInstanceUid: chosen, result: r });
      await redis.hset(studyKey, 'queuedHash', contentHash);
    }
    for (const x of contents) {
      if (x.uid === chosen) continue;
      const role = roles.find((r) => r.seriesInstanceUid === x.uid)!;
      const code = x.summary.route.route === 'ignore' ? x.summary.route.code : role.role === 'candidate' ? 'not-chosen' : 'not-candidate';
      const r = await this.recordIgnored(
        x.uid,
        x.c,
        code,
        role.reason,
        { ...this.common(x.c, x.summary.route), ...this.roleFields(x.summary, roles) },
        by,
        true,
      );
      results.push({ seriesInstanceUid: x.uid, result: r });
    }
    this.log.info(
      {
        studyInstanceUid,
        series: contents.length,
        candidates: selection.order.length,
        chosen,
        noCandidate,
        contentHash,
        jobId,
        alreadyQueued: existing,
        by,
      },
      chosen ? (existing ? 'study already queued' : 'study queued for inference') : 'study ignored',
    );
    return {
      outcome: 'settled',
      studyInstanceUid,
      ...(chosen ? { chosen, jobId: jobId as string } : {}),
      noCandidate,
      contentHash,
      series: results,
    };
  }

  /** Role and selection fields recorded in a series' hash (study mode). */
  private roleFields(s: SeriesSummary, roles: StudyJobContext['roles']): Record<string, string> {
    const r = roles.find((x) => x.seriesInstanceUid === s.seriesInstanceUid);
    const f: Record<string, string> = {
      role: r?.role ?? 'ignored',
      roleReason: r?.reason ?? '',
      seriesNumber: s.seriesNumber,
      seriesDescription: s.seriesDescription,
      orientation: s.orientation,
      kernel: s.kernel,
    };
    if (s.sliceThicknessMm !== null) f.sliceThicknessMm = String(s.sliceThicknessMm);
    if (s.spacingMm !== null) f.spacingMm = String(Number(s.spacingMm.toFixed(3)));
    if (s.coverageMm !== null) f.coverageMm = String(Number(s.coverageMm.toFixed(1)));
    return f;
  }

  /** A series' hash and its last arrival (Redis or the spool folder's mtime), without reading its content. */
  private async head(seriesInstanceUid: string): Promise<SeriesHead | undefined> {
    const key = this.keys.series(seriesInstanceUid);
    const h = await this.opts.redis.hgetall(key);
    if (!h.studyInstanceUid) return undefined;
    const seriesDir = h.seriesDir ?? seriesDirOf(this.spoolDir, h.studyInstanceUid, seriesInstanceUid);
    const lastRaw = h.lastReceivedAt ?? '';
    const dirChange = (await seriesDirLastChange(seriesDir)) ?? 0;
    return { key, h, studyInstanceUid: h.studyInstanceUid, seriesDir, lastRaw, lastArrival: Math.max(Number(lastRaw || 0), dirChange) };
  }

  /** A series' content: what Redis knows plus whatever the spool holds that Redis missed (e.g. Redis was down). */
  private async content(seriesInstanceUid: string, head: SeriesHead): Promise<SeriesContent | undefined> {
    const redis = this.opts.redis;
    const { seriesDir } = head;
    const known = await redis.hgetall(this.keys.seriesInstances(seriesInstanceUid));
    const missing = (await listSeriesInstances(seriesDir)).filter((sop) => known[sop] === undefined);
    let firstFile = Infinity;
    let lastFile = 0;
    if (missing.length > 0) {
      const add: Record<string, string> = {};
      for (const sop of missing) {
        const path = join(seriesDir, `${sop}.dcm`);
        try {
          const [hdr, st] = await Promise.all([readInstanceHeader(path), stat(path)]);
          add[sop] = JSON.stringify(storedInstance(hdr));
          firstFile = Math.min(firstFile, st.mtimeMs);
          lastFile = Math.max(lastFile, st.mtimeMs);
        } catch (err) {
          this.log.warn({ seriesInstanceUid, sopInstanceUid: sop, err: (err as Error).message }, 'unreadable spooled instance skipped');
        }
      }
      if (Object.keys(add).length > 0) {
        await redis.hset(this.keys.seriesInstances(seriesInstanceUid), add);
        Object.assign(known, add);
        this.log.info({ seriesInstanceUid, added: Object.keys(add).length }, 'instances recovered from the spool');
      }
    }
    const sops = Object.keys(known);
    if (sops.length === 0) return undefined;
    const instances = Object.values(known).map((v) => selectable(JSON.parse(v) as StoredInstance));
    const firstReceivedAt = Math.min(Number(head.h.firstReceivedAt || Infinity), firstFile);
    const lastReceivedAt = Math.max(Number(head.lastRaw || 0), lastFile);
    return {
      ...head,
      instances,
      hash: instancesHash(sops),
      instanceCount: sops.length,
      firstReceivedAt: Number.isFinite(firstReceivedAt) ? firstReceivedAt : lastReceivedAt,
      lastReceivedAt,
    };
  }

  /** The fields every settle outcome records. */
  private common(c: SeriesContent, decision: RouteDecision): Record<string, string> {
    return {
      instanceCount: String(c.instanceCount),
      instancesHash: c.hash,
      scorableInstances: String(decision.scorableInstances),
      excludedInstances: String(decision.excludedInstances),
      firstReceivedAt: String(c.firstReceivedAt),
      lastReceivedAt: String(c.lastReceivedAt),
      settledAt: String(Date.now()),
      modalities: [...new Set(c.instances.map((i) => i.modality))].sort().join('\\'),
      bodyParts: [...new Set(c.instances.map((i) => i.bodyPartExamined))].sort().join('\\'),
    };
  }

  private payload(seriesInstanceUid: string, c: SeriesContent, by: EnqueuedBy): InferenceJobData {
    return {
      studyInstanceUid: c.studyInstanceUid,
      seriesInstanceUid,
      seriesDir: c.seriesDir,
      instanceCount: c.instanceCount,
      instancesHash: c.hash,
      callingAeTitle: c.h.callingAeTitle ?? '',
      firstReceivedAt: new Date(c.firstReceivedAt).toISOString(),
      lastReceivedAt: new Date(c.lastReceivedAt).toISOString(),
      enqueuedBy: by,
    };
  }

  private async recordIgnored(
    seriesInstanceUid: string,
    c: SeriesContent,
    code: IgnoreCode,
    reason: string,
    common: Record<string, string>,
    by: EnqueuedBy,
    quiet = false,
  ): Promise<SettleResult> {
    await this.finalize(c.key, c.lastRaw, { ...common, status: 'ignored', ignoreCode: code, reason });
    const log = {
      seriesInstanceUid,
      studyInstanceUid: c.studyInstanceUid,
      instanceCount: c.instanceCount,
      instancesHash: c.hash,
      by,
      code,
      reason,
    };
    if (quiet) this.log.debug(log, 'series not scored in its study');
    else this.log.info(log, 'series ignored');
    return { outcome: 'ignored', code, reason, instanceCount: c.instanceCount, instancesHash: c.hash };
  }

  private async recordQueued(
    seriesInstanceUid: string,
    c: SeriesContent,
    jobId: string,
    common: Record<string, string>,
    by: EnqueuedBy,
    data: InferenceJobData,
    sameContent: boolean,
  ): Promise<SettleResult & { existed?: boolean }> {
    const payload = inferenceJobSchema.parse(data);
    // One job per content: the job id dedups concurrent adds; queuedHash also covers a job that
    // was already removed after completion (the same content re-sent is not scored again).
    const existing = sameContent ? true : Boolean(await this.inferenceQueue.getJob(jobId));
    if (!existing) await this.inferenceQueue.add('score', payload, { ...INFERENCE_JOB_OPTIONS, jobId });
    await this.opts.redis.hset(c.key, 'queuedHash', c.hash);
    await this.finalize(c.key, c.lastRaw, { ...common, status: 'queued', jobId, enqueuedBy: existing ? (c.h.enqueuedBy ?? by) : by });
    const log = { seriesInstanceUid, studyInstanceUid: c.studyInstanceUid, instanceCount: c.instanceCount, instancesHash: c.hash, by };
    this.log.info({ ...log, jobId, alreadyQueued: existing }, existing ? 'series already queued' : 'series queued for inference');
    return { outcome: 'queued', jobId, instanceCount: c.instanceCount, instancesHash: c.hash, existed: existing };
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

  private async finalize(key: string, expectedLast: string, fields: Record<string, string>): Promise<void> {
    const args = Object.entries(fields).flat();
    const ok = (await this.redisCmd('mlsamFinalizeSeries')(key, expectedLast, ...args)) as number;
    if (ok === 0) {
      // An instance arrived meanwhile: its settle job decides again later; keep the content record.
      await this.opts.redis.hset(key, {
        instanceCount: fields.instanceCount ?? '',
        instancesHash: fields.instancesHash ?? '',
        ...(fields.jobId ? { jobId: fields.jobId } : {}),
      });
    }
  }

  private redisCmd(name: 'mlsamRecordInstance' | 'mlsamFinalizeSeries' | 'mlsamRecordStudy'): (...args: string[]) => Promise<unknown> {
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
