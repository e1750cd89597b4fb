/**
 * The last settle step, record: writes what a settle decided for a series into its Redis hash —
 * queued (after adding its inference job) or ignored (with the reason) — only if no instance arrived
 * since the settle read the series (an arrival wins: its own settle job decides again later).
 */
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from '../log.js';
import { loadLua } from '../stores/lua.js';
import { INFERENCE_JOB_OPTIONS, inferenceJobSchema, type EnqueuedBy, type InferenceJobData } from './jobs.js';
import type { IgnoreCode, RouteDecision } from './routing.js';
import type { SeriesContent } from './series-content.js';

export type SettleResult =
  | { outcome: 'not-found' }
  | { outcome: 'deferred'; remainingMs: number }
  | { outcome: 'queued'; jobId: string; instanceCount: number; instancesHash: string; existed?: boolean }
  | { outcome: 'ignored'; code: IgnoreCode; reason: string; instanceCount: number; instancesHash: string };

/** Writes the settle outcome only if no instance arrived since the settle read the state. */
const FINALIZE = loadLua(import.meta.url, 'finalize-series');

/** The fields every settle outcome records in a series' hash. */
export function commonFields(c: SeriesContent, decision: RouteDecision, now = Date.now()): Record<string, string> {
  return {
    instanceCount: String(c.instanceCount),
    instancesHash: c.hash,
    scorableInstances: String(decision.scorableInstances),
    excludedInstances: String(decision.excludedInstances),
    firstReceivedAt: String(c.firstReceivedAt),
    lastReceivedAt: String(c.lastReceivedAt),
    settledAt: String(now),
    modalities: [...new Set(c.instances.map((i) => i.modality))].sort().join('\\'),
    bodyParts: [...new Set(c.instances.map((i) => i.bodyPartExamined))].sort().join('\\'),
  };
}

/** The inference job payload for a series' content (without the study context). */
export function inferencePayload(seriesInstanceUid: string, c: SeriesContent, by: EnqueuedBy): InferenceJobData {
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

export class SettleRecorder {
  constructor(
    private readonly redis: Redis,
    private readonly inferenceQueue: Queue<InferenceJobData>,
    private readonly log: Logger,
  ) {
    redis.defineCommand('mlsamFinalizeSeries', { numberOfKeys: 1, lua: FINALIZE });
  }

  /**
   * Writes `fields` into the hash at `key` (clearing the previous outcome's ignoreCode, reason,
   * jobId, enqueuedBy) only if its lastReceivedAt is still `expectedLast`; false when an instance
   * arrived meanwhile. Used for a series' hash and for a study's.
   */
  async writeIfQuiet(key: string, expectedLast: string, fields: Record<string, string>): Promise<boolean> {
    const fn = (this.redis as unknown as Record<string, (...a: string[]) => Promise<unknown>>).mlsamFinalizeSeries;
    if (!fn) throw new Error('redis command mlsamFinalizeSeries not defined');
    const ok = (await fn.call(this.redis, key, expectedLast, ...Object.entries(fields).flat())) as number;
    return ok !== 0;
  }

  /** Records a series ignored with its reason (`quiet`: a study's series not scored, logged at debug). */
  async recordIgnored(
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

  /**
   * Adds the inference job `jobId` for the series' content (unless `sameContent` says this content
   * was queued before, or the job exists) and records the series queued for it.
   */
  async recordQueued(
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
    await this.redis.hset(c.key, 'queuedHash', c.hash);
    await this.finalize(c.key, c.lastRaw, { ...common, status: 'queued', jobId, enqueuedBy: existing ? (c.h.enqueuedBy ?? by) : by });
    const log = { seriesInstanceUid, studyInstanceUid: c.studyInstanceUid, instanceCount: c.instanceCount, instancesHash: c.hash, by };
    this.log.info({ ...log, jobId, alreadyQueued: existing }, existing ? 'series already queued' : 'series queued for inference');
    return { outcome: 'queued', jobId, instanceCount: c.instanceCount, instancesHash: c.hash, existed: existing };
  }

  private async finalize(key: string, expectedLast: string, fields: Record<string, string>): Promise<void> {
    if (await this.writeIfQuiet(key, expectedLast, fields)) return;
    // An instance arrived meanwhile: its settle job decides again later; keep the content record.
    await this.redis.hset(key, {
      instanceCount: fields.instanceCount ?? '',
      instancesHash: fields.instancesHash ?? '',
      ...(fields.jobId ? { jobId: fields.jobId } : {}),
    });
  }
}
