/**
 * Producer side of the `dispatch` queue: one BullMQ job per (result, destination), with the
 * deterministic job id of src/queue/jobs.ts, so enqueueing the same result twice is one job and
 * nothing is sent twice. Also the admin's views: re-send, and results not (yet) delivered.
 *
 * Silent mode (src/db/dispatch-modes.ts): for a silent target no job is added; the result is held
 * (DispatchState "held", src/stores/held-dispatch.ts) until an admin releases the target, which
 * sends the held results through the same job ids (releaseHeld) or withholds them for good.
 */
import { Queue, type Job, type JobsOptions, type JobState } from 'bullmq';
import type { Redis } from 'ioredis';
import { resultDestinations, type Config } from '../../config/schema.js';
import type { Logger } from '../../log.js';
import { DISPATCH_QUEUE, dispatchJobId, dispatchJobSchema, type DispatchJobData } from '../../queue/jobs.js';
import { Keys } from '../../stores/keys.js';
import { throttledWarn, whenReady } from '../../stores/redis.js';
import {
  parseStored,
  resultRecordSchema,
  type DispatchState,
  type OutputFile,
  type ResultRecord,
  resultKey,
} from '../../contracts/result-record.js';
import { selectDestinations } from './destinations.js';
import { allTargets, type DispatchTarget } from '../../config/dispatch-targets.js';
import { DispatchStore, parseDispatchStates, READY_MS } from '../../stores/dispatch-state.js';
import { HeldDispatch } from '../../stores/held-dispatch.js';
import type { ReleaseOutcome } from '../../db/dispatch-modes.js';

/** Which targets are silent now (DispatchModes of src/db/dispatch-modes.ts, read on every use). */
export interface SilentTargets {
  silent(): Promise<readonly string[]>;
}

/** Name of every dispatch job (Bull Board shows it). */
export const DISPATCH_JOB_NAME = 'send';
/** Backoff type of dispatch jobs: capped exponential, computed by dispatchBackoffMs (worker setting). */
export const DISPATCH_BACKOFF = 'dispatch-capped-exponential';

/** Delay before retry n (n = attempts made so far, from 1): min(backoffSeconds · 2^(n-1), maxBackoffSeconds). */
export function dispatchBackoffMs(
  attemptsMade: number,
  dispatch: Pick<Config['dispatch'], 'backoffSeconds' | 'maxBackoffSeconds'>,
): number {
  const n = Math.max(1, attemptsMade);
  const seconds = Math.min(dispatch.backoffSeconds * 2 ** (n - 1), dispatch.maxBackoffSeconds);
  return Math.round(seconds * 1000);
}

/** Options of every dispatch job: attempts and backoff from config, finished jobs kept for the dashboard. */
export function dispatchJobOptions(config: Config): JobsOptions {
  return {
    attempts: config.dispatch.attempts,
    backoff: { type: DISPATCH_BACKOFF, delay: Math.round(config.dispatch.backoffSeconds * 1000) },
    removeOnComplete: { age: 30 * 24 * 3600, count: 10_000 },
    // Failed jobs stay until an admin retries or removes them (Bull Board).
    removeOnFail: false,
  };
}

export type EnqueueOutcome =
  /** A new job was added. */
  | 'added'
  /** The job exists and is waiting, active or delayed (worker) or already finished (worker): nothing done. */
  | 'exists'
  /** Admin: the completed or failed job was moved back to waiting with its attempts reset. */
  | 'retried'
  /** Admin: the job was waiting for its next retry; it runs now. */
  | 'promoted'
  /** The target is in silent mode: no job, the result is held until an admin releases the target. */
  | 'held';

export interface EnqueueResult {
  destination: string;
  jobId: string;
  outcome: EnqueueOutcome;
  /** The job's state before this call (absent for added). */
  previousState?: JobState | 'unknown';
}

export interface DispatcherOptions {
  config: Config;
  logger: Logger;
  /** A command connection (createRedis(url, 'command')); the caller closes it. */
  redis: Redis;
  /** Silent mode; absent: every target is live. */
  modes?: SilentTargets;
}

export type { ReleaseOutcome } from '../../db/dispatch-modes.js';

export interface EnqueueOptions {
  /** Only these destinations (by name); default every configured one. */
  destinations?: string[];
  /** Queue even for a silent target (releaseHeld, after the admin's switch). */
  ignoreSilence?: boolean;
}

/** One result whose objects have not reached every destination (admin listing). */
export interface UndispatchedResult {
  studyInstanceUid: string;
  seriesInstanceUid: string;
  instancesHash: string;
  modelVersion: string;
  resultStatus: ResultRecord['status'];
  finishedAt?: string;
  /** Result files in the spool, in send order. */
  files: string[];
  /** Why it is listed: no destinations at all, or per destination not sent. */
  reason: 'no-destinations' | 'not-sent';
  /** Destinations still owed this result, with their dispatch state (absent: never queued). */
  destinations: Array<{
    name: string;
    status: DispatchState['status'] | 'not-queued';
    attempts: number;
    lastError?: string;
    jobId: string;
  }>;
}

export class Dispatcher {
  readonly queue: Queue<DispatchJobData>;
  readonly store: DispatchStore;
  readonly held: HeldDispatch;
  readonly keys: Keys;
  private readonly log: Logger;

  constructor(private readonly opts: DispatcherOptions) {
    const { config, redis } = opts;
    this.log = opts.logger.child({ component: 'dispatcher' });
    this.keys = new Keys(config.redis.keyPrefix);
    this.store = new DispatchStore(redis, config.redis.keyPrefix);
    this.held = new HeldDispatch(redis, config.redis.keyPrefix);
    this.queue = new Queue<DispatchJobData>(DISPATCH_QUEUE, { connection: redis, prefix: config.redis.keyPrefix });
    const warn = throttledWarn(this.log);
    this.queue.on('error', (err) => warn({ err: err.message, queue: DISPATCH_QUEUE }, 'queue error'));
  }

  /** Every target (destinations and notifications), or the named ones. */
  private destinations(names?: string[]): DispatchTarget[] {
    return selectDestinations(allTargets(this.opts.config), names);
  }

  /**
   * Queues the record's result objects (`outputs`) for every configured destination: one job per
   * (result, destination), id dispatchJobId(series, hash, model version, destination).
   *
   * - by 'worker': adds the jobs that do not exist yet; an existing job (in any state, completed
   *   and failed included) is left alone, so a re-run of the same inference job sends nothing again.
   * - by 'admin' (re-send): a completed or failed job is RETRIED in place (same id, data refreshed
   *   from the record, attempts reset: the full backoff schedule again), not replaced; a delayed job
   *   (waiting for its next retry) is promoted to run now; a waiting or active job is left alone.
   *   A retried completed job sends every file again (the worker treats "nothing left to send" as a
   *   re-send); a retried failed job sends only what was not delivered yet.
   *
   * With no destinations configured, nothing is queued: the results stay in the spool and
   * listUndispatched() lists them. Returns one entry per destination handled.
   *
   * A silent target (opts.modes) gets no new job: the result is held ('held'), by the worker and by
   * an admin's re-send alike; a job that exists already is left to the dispatch worker, which
   * holds it instead of sending while the target is silent.
   */
  async enqueue(record: ResultRecord, by: 'worker' | 'admin', opts: EnqueueOptions = {}): Promise<EnqueueResult[]> {
    const outputs = record.outputs ?? [];
    const ids = { series: record.seriesInstanceUid, instancesHash: resultKey(record), modelVersion: record.model.version };
    if (outputs.length === 0) {
      this.log.debug({ ...ids, by }, 'no result objects to dispatch');
      return [];
    }
    const destinations = this.destinations(opts.destinations);
    if (destinations.length === 0) {
      this.log.info({ ...ids, files: outputs.length, by }, 'no destinations configured: results stay in the spool');
      return [];
    }
    const files = outputs.map((o) => o.path);
    await whenReady(this.opts.redis, READY_MS);
    const silent = opts.ignoreSilence || !this.opts.modes ? [] : await this.opts.modes.silent();
    const results: EnqueueResult[] = [];
    for (const dest of destinations) {
      const jobId = dispatchJobId(record.seriesInstanceUid, resultKey(record), record.model.version, dest.name);
      if (by === 'worker') {
        // Withheld at a release (silent mode, sendHeld false): a re-run of the inference job does not send it after all.
        const st = await this.store.getState(record.seriesInstanceUid, dest.name);
        if (st?.jobId === jobId && st.status === 'withheld') {
          results.push({ destination: dest.name, jobId, outcome: 'exists', previousState: 'unknown' });
          continue;
        }
      }
      if (silent.includes(dest.name) && (await this.holdIfSilent(record, dest.name, jobId, by))) {
        results.push({ destination: dest.name, jobId, outcome: 'held' });
        continue;
      }
      // Validated here, so a bad record (e.g. relative paths) fails the caller, not N retries later.
      const data: DispatchJobData = dispatchJobSchema.parse({
        studyInstanceUid: record.studyInstanceUid,
        seriesInstanceUid: record.seriesInstanceUid,
        instancesHash: resultKey(record),
        destination: dest.name,
        files,
        enqueuedBy: by,
      });
      const pending: DispatchState = {
        destination: dest.name,
        instancesHash: resultKey(record),
        status: 'pending',
        attempts: 0,
        instancesSent: 0,
        warnings: 0,
        jobId,
      };
      const existing = (await this.queue.getJob(jobId)) as Job<DispatchJobData> | undefined;
      if (!existing) {
        // State first: the worker may pick the job up at once and must find its own jobId there.
        await this.store.setState(record.seriesInstanceUid, pending);
        await this.queue.add(DISPATCH_JOB_NAME, data, { ...dispatchJobOptions(this.opts.config), jobId });
        results.push({ destination: dest.name, jobId, outcome: 'added' });
        this.log.info({ ...ids, destination: dest.name, jobId, files: files.length, by }, 'dispatch queued');
        continue;
      }
      const state = await existing.getState();
      if (by === 'admin' && (state === 'completed' || state === 'failed')) {
        await existing.updateData(data);
        await this.store.setState(record.seriesInstanceUid, pending);
        await existing.retry(state, { resetAttemptsMade: true, resetAttemptsStarted: true });
        results.push({ destination: dest.name, jobId, outcome: 'retried', previousState: state });
        this.log.info({ ...ids, destination: dest.name, jobId, previousState: state }, 'dispatch re-queued by admin');
      } else if (by === 'admin' && state === 'delayed') {
        await existing.promote();
        results.push({ destination: dest.name, jobId, outcome: 'promoted', previousState: state });
        this.log.info({ ...ids, destination: dest.name, jobId }, 'dispatch retry promoted by admin');
      } else {
        results.push({ destination: dest.name, jobId, outcome: 'exists', previousState: state });
        this.log.debug({ ...ids, destination: dest.name, jobId, state, by }, 'dispatch job exists');
      }
    }
    return results;
  }

  /**
   * Holds the result for a silent target: state "held" (with the job id it will have), then the
   * series on the target's held list. True when held. A job that exists already for a worker's
   * enqueue is not held here (it was queued while live; the dispatch worker holds it if it runs
   * while silent). After holding, the mode is read again: a release that came in between has
   * read the held list before this entry was on it, so the entry is claimed back and sent now.
   */
  private async holdIfSilent(record: ResultRecord, target: string, jobId: string, by: 'worker' | 'admin'): Promise<boolean> {
    const existing = (await this.queue.getJob(jobId)) as Job<DispatchJobData> | undefined;
    if (existing && by === 'worker') return false;
    const at = new Date();
    await this.store.setState(record.seriesInstanceUid, {
      destination: target,
      instancesHash: resultKey(record),
      status: 'held',
      attempts: 0,
      instancesSent: 0,
      warnings: 0,
      jobId,
      heldAt: at.toISOString(),
      // An existing job (admin re-send of a finished one) is retried on release; a new one is added once.
      heldBy: existing ? 'admin' : by,
    });
    await this.held.hold(target, record.seriesInstanceUid, at.getTime());
    const stillSilent = (await this.opts.modes?.silent())?.includes(target) ?? false;
    if (!stillSilent && (await this.held.claim(target, record.seriesInstanceUid))) {
      this.log.info({ series: record.seriesInstanceUid, destination: target }, 'target released while holding: sent now');
      return false;
    }
    this.log.info(
      { series: record.seriesInstanceUid, instancesHash: resultKey(record), destination: target, jobId, by },
      'silent mode: result held, not sent',
    );
    return true;
  }

  /**
   * After an admin released `target` (its mode is live now): every result held for it is claimed
   * once and either queued (sendHeld: through its dispatch job id, so at most once — a job that
   * exists already is left alone, except one an admin's re-send asked to run again) or marked
   * "withheld" (never sent; the series' re-send action still sends it on request).
   */
  async releaseHeld(target: string, sendHeld: boolean): Promise<ReleaseOutcome> {
    const out: ReleaseOutcome = { target, sent: 0, withheld: 0, skipped: 0 };
    for (const seriesUid of await this.held.list(target)) {
      if (!(await this.held.claim(target, seriesUid))) continue;
      const [record, state] = await Promise.all([this.readRecord(seriesUid), this.store.getState(seriesUid, target)]);
      const jobId = record ? dispatchJobId(seriesUid, resultKey(record), record.model.version, target) : undefined;
      if (!record?.outputs?.length || state?.status !== 'held' || state.jobId !== jobId) {
        out.skipped++;
        continue;
      }
      if (sendHeld) {
        await this.enqueue(record, state.heldBy ?? 'worker', { destinations: [target], ignoreSilence: true });
        out.sent++;
      } else {
        await this.store.updateState(seriesUid, { ...state, status: 'withheld', releasedAt: new Date().toISOString() });
        out.withheld++;
      }
    }
    this.log.info({ ...out, sendHeld }, 'held results released');
    return out;
  }

  /** How many results are held per target (the dashboard's dispatch-mode page). */
  async heldCounts(targets: readonly string[]): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const t of targets) out[t] = await this.held.count(t);
    return out;
  }

  /** Admin re-send of a series' latest result (read from Redis); throws if there is none with outputs. */
  async resend(seriesInstanceUid: string, opts: EnqueueOptions = {}): Promise<EnqueueResult[]> {
    const record = await this.readRecord(seriesInstanceUid);
    if (!record) throw new Error(`no result record for series ${seriesInstanceUid}`);
    if (!record.outputs?.length) throw new Error(`series ${seriesInstanceUid} has no result objects to send`);
    return this.enqueue(record, 'admin', opts);
  }

  private async readRecord(seriesUid: string): Promise<ResultRecord | undefined> {
    await whenReady(this.opts.redis, READY_MS);
    return parseStored(resultRecordSchema, await this.opts.redis.get(this.keys.result(seriesUid)));
  }

  /**
   * Results with result objects that have not reached every configured destination (all of them
   * when no destination is configured), newest first, looking at the `limit` most recent results.
   * "Reached" means the destination's DispatchState is `sent` for this very job (series, content
   * hash, model version); anything else (never queued, pending, sending, failed, an older result's
   * state) is listed.
   */
  async listUndispatched(limit = 1000): Promise<UndispatchedResult[]> {
    const { redis } = this.opts;
    // Result objects are owed to every destination, DIMSE and DICOMweb (notifications are not objects).
    const config = { destinations: resultDestinations(this.opts.config) };
    await whenReady(redis, READY_MS);
    const uids = await redis.zrevrange(this.keys.resultIndex(), 0, Math.max(0, limit - 1));
    if (uids.length === 0) return [];
    // Two round trips in all: the records (MGET), then the dispatch states of those with outputs.
    const records = (await redis.mget(...uids.map((u) => this.keys.result(u))))
      .map((raw) => parseStored(resultRecordSchema, raw))
      .filter((r): r is ResultRecord & { outputs: OutputFile[] } => Boolean(r?.outputs?.length));
    const statesOf = new Map<string, Map<string, DispatchState>>();
    if (config.destinations.length > 0 && records.length > 0) {
      const p = redis.pipeline();
      for (const r of records) p.hgetall(this.keys.dispatch(r.seriesInstanceUid));
      const res = (await p.exec()) ?? [];
      records.forEach((r, i) => {
        const states = parseDispatchStates((res[i]?.[1] as Record<string, string> | null) ?? {});
        statesOf.set(r.seriesInstanceUid, new Map(states.map((st) => [st.destination, st])));
      });
    }
    const out: UndispatchedResult[] = [];
    for (const record of records) {
      const base = {
        studyInstanceUid: record.studyInstanceUid,
        seriesInstanceUid: record.seriesInstanceUid,
        instancesHash: resultKey(record),
        modelVersion: record.model.version,
        resultStatus: record.status,
        ...(record.finishedAt ? { finishedAt: record.finishedAt } : {}),
        files: record.outputs.map((o) => o.path),
      };
      if (config.destinations.length === 0) {
        out.push({ ...base, reason: 'no-destinations', destinations: [] });
        continue;
      }
      const states = statesOf.get(record.seriesInstanceUid) ?? new Map<string, DispatchState>();
      const owed: UndispatchedResult['destinations'] = [];
      for (const d of config.destinations) {
        const jobId = dispatchJobId(record.seriesInstanceUid, resultKey(record), record.model.version, d.name);
        const s = states.get(d.name);
        if (s && s.jobId === jobId && s.status === 'sent') continue;
        const mine = s && s.jobId === jobId ? s : undefined;
        owed.push({
          name: d.name,
          status: mine?.status ?? 'not-queued',
          attempts: mine?.attempts ?? 0,
          ...(mine?.lastError ? { lastError: mine.lastError } : {}),
          jobId,
        });
      }
      if (owed.length) out.push({ ...base, reason: 'not-sent', destinations: owed });
    }
    return out;
  }

  async close(): Promise<void> {
    await this.queue.close();
  }
}
