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
  type EnqueuedBy,
  type InferenceJobData,
  type SettleJobData,
} from './jobs.js';
import { Keys } from '../stores/keys.js';
import { throttledWarn, whenReady, withTimeout } from '../stores/redis.js';
import { routeSeries, type IgnoreCode, type RoutableInstance } from './routing.js';
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
  | { outcome: 'queued'; jobId: string; instanceCount: number; instancesHash: string }
  | { outcome: 'ignored'; code: IgnoreCode; reason: string; instanceCount: number; instancesHash: string };

/** Compact form of an instance's routing attributes in the per-series instances hash. */
interface StoredInstance {
  m: string;
  b: string;
  t: string[];
}

const RECORD_INSTANCE = `
redis.call('HSETNX', KEYS[1], 'firstReceivedAt', ARGV[5])
local last = tonumber(redis.call('HGET', KEYS[1], 'lastReceivedAt') or '0')
if tonumber(ARGV[5]) > last then redis.call('HSET', KEYS[1], 'lastReceivedAt', ARGV[5]) end
redis.call('HSETNX', KEYS[1], 'callingAeTitle', ARGV[4])
redis.call('HSET', KEYS[1], 'studyInstanceUid', ARGV[1], 'seriesInstanceUid', ARGV[2], 'seriesDir', ARGV[3], 'status', 'receiving')
local added = redis.call('HSET', KEYS[2], ARGV[6], ARGV[7])
redis.call('ZADD', KEYS[3], ARGV[5], ARGV[2])
return added
`;

/** Writes the settle outcome only if no instance arrived since the settle read the state. */
const FINALIZE = `
if (redis.call('HGET', KEYS[1], 'lastReceivedAt') or '') ~= ARGV[1] then return 0 end
redis.call('HDEL', KEYS[1], 'ignoreCode', 'reason', 'jobId', 'enqueuedBy')
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1
`;

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
  }

  /** Starts this process's settle worker (every listener runs one; one of them wins each job). */
  startSettleWorker(): void {
    if (this.worker || !this.opts.workerRedis) return;
    this.worker = new Worker<SettleJobData>(
      SETTLE_QUEUE,
      async (job: Job<SettleJobData>) => {
        const { seriesInstanceUid } = settleJobSchema.parse(job.data);
        return this.settle(seriesInstanceUid, 'tracker');
      },
      { connection: this.opts.workerRedis, prefix: this.opts.config.redis.keyPrefix, concurrency: 4 },
    );
    const warn = throttledWarn(this.log);
    this.worker.on('error', (err) => warn({ err: err.message }, 'settle worker error'));
    this.worker.on('failed', (job, err) =>
      this.log.warn({ seriesInstanceUid: job?.data.seriesInstanceUid, err: err.message }, 'settle failed'),
    );
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
    const stored: StoredInstance = { m: inst.modality, b: inst.bodyPartExamined, t: inst.imageType };
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
    await this.scheduleSettle(inst.seriesInstanceUid, this.quietMs);
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
    if (h.modalities !== undefined) state.modalities = h.modalities.split('\\');
    if (h.bodyParts !== undefined) state.bodyParts = h.bodyParts.split('\\');
    if (h.enqueuedBy) state.enqueuedBy = h.enqueuedBy as EnqueuedBy;
    if (h.settledAt) state.settledAt = Number(h.settledAt);
    return state;
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
      .exec();
  }

  /**
   * Decides a series: defers when the quiet period has not elapsed (unless `force`), else adds
   * one inference job for its current content or records it ignored. Idempotent per content.
   */
  async settle(seriesInstanceUid: string, by: EnqueuedBy, opts: { force?: boolean } = {}): Promise<SettleResult> {
    const redis = this.opts.redis;
    await whenReady(redis, 3_000);
    const key = this.keys.series(seriesInstanceUid);
    const h = await redis.hgetall(key);
    if (!h.studyInstanceUid) return { outcome: 'not-found' };
    const studyInstanceUid = h.studyInstanceUid;
    const seriesDir = h.seriesDir ?? seriesDirOf(this.spoolDir, studyInstanceUid, seriesInstanceUid);
    const lastRaw = h.lastReceivedAt ?? '';
    const dirChange = (await seriesDirLastChange(seriesDir)) ?? 0;
    const lastArrival = Math.max(Number(lastRaw || 0), dirChange);
    const remainingMs = this.quietMs - (Date.now() - lastArrival);
    if (!opts.force && remainingMs > 0) {
      await this.scheduleSettle(seriesInstanceUid, Math.min(remainingMs, this.quietMs)); // cap: clock skew
      return { outcome: 'deferred', remainingMs };
    }

    // Content: what Redis knows plus whatever the spool holds that Redis missed (e.g. Redis was down).
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
          const stored: StoredInstance = { m: hdr.modality, b: hdr.bodyPartExamined, t: hdr.imageType };
          add[sop] = JSON.stringify(stored);
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
    if (sops.length === 0) return { outcome: 'not-found' };
    const instances: RoutableInstance[] = Object.values(known).map((v) => {
      const s = JSON.parse(v) as StoredInstance;
      return { modality: s.m, bodyPartExamined: s.b, imageType: s.t };
    });
    const hash = instancesHash(sops);
    const instanceCount = sops.length;
    const firstReceivedAt = Math.min(Number(h.firstReceivedAt || Infinity), firstFile);
    const lastReceivedAt = Math.max(Number(lastRaw || 0), lastFile);
    const decision = routeSeries(instances, this.opts.config.series.routing);
    const common = {
      instanceCount: String(instanceCount),
      instancesHash: hash,
      scorableInstances: String(decision.scorableInstances),
      excludedInstances: String(decision.excludedInstances),
      firstReceivedAt: String(Number.isFinite(firstReceivedAt) ? firstReceivedAt : lastReceivedAt),
      lastReceivedAt: String(lastReceivedAt),
      settledAt: String(Date.now()),
      modalities: [...new Set(instances.map((i) => i.modality))].sort().join('\\'),
      bodyParts: [...new Set(instances.map((i) => i.bodyPartExamined))].sort().join('\\'),
    };
    const log = { seriesInstanceUid, studyInstanceUid, instanceCount, instancesHash: hash, by };

    if (decision.route === 'ignore') {
      await this.finalize(key, lastRaw, { ...common, status: 'ignored', ignoreCode: decision.code, reason: decision.reason });
      this.log.info({ ...log, code: decision.code, reason: decision.reason }, 'series ignored');
      return { outcome: 'ignored', code: decision.code, reason: decision.reason, instanceCount, instancesHash: hash };
    }

    const jobId = inferenceJobId(seriesInstanceUid, hash);
    const payload = inferenceJobSchema.parse({
      studyInstanceUid,
      seriesInstanceUid,
      seriesDir,
      instanceCount,
      instancesHash: hash,
      callingAeTitle: h.callingAeTitle ?? '',
      firstReceivedAt: new Date(Number(common.firstReceivedAt)).toISOString(),
      lastReceivedAt: new Date(lastReceivedAt).toISOString(),
      enqueuedBy: by,
    } satisfies InferenceJobData);
    // One job per content: the job id dedups concurrent adds; queuedHash also covers a job that
    // was already removed after completion (the same content re-sent is not scored again).
    const existing = h.queuedHash === hash ? true : Boolean(await this.inferenceQueue.getJob(jobId));
    if (!existing) await this.inferenceQueue.add('score', payload, { ...INFERENCE_JOB_OPTIONS, jobId });
    await this.opts.redis.hset(key, 'queuedHash', hash);
    await this.finalize(key, lastRaw, {
      ...common,
      status: 'queued',
      jobId,
      enqueuedBy: existing ? (h.enqueuedBy ?? by) : by,
    });
    this.log.info({ ...log, jobId, alreadyQueued: existing }, existing ? 'series already queued' : 'series queued for inference');
    return { outcome: 'queued', jobId, instanceCount, instancesHash: hash };
  }

  /**
   * Scores the series' settled content again (admin "re-score"): a new inference job with its own
   * id (`<content job id>-admin-<ms>`, so a completed job of the same content does not block it),
   * and the series recorded as queued for it. Undefined when the series was never settled.
   */
  async requeue(seriesInstanceUid: string): Promise<{ jobId: string } | undefined> {
    const state = await this.getSeries(seriesInstanceUid);
    if (!state?.instancesHash || !state.instanceCount) return undefined;
    const jobId = `${inferenceJobId(seriesInstanceUid, state.instancesHash)}-admin-${Date.now()}`;
    const payload = inferenceJobSchema.parse({
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

  private redisCmd(name: 'mlsamRecordInstance' | 'mlsamFinalizeSeries'): (...args: string[]) => Promise<unknown> {
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
