/**
 * The dispatch worker: a BullMQ Worker on the `dispatch` queue. Each job sends one result's files
 * (SR + SC, Part 10 in the spool) to one destination with the C-STORE SCU, checks every
 * instance's status, and records a DispatchState and a DispatchAttempt in Redis on every try.
 *
 * - Success and warning statuses (0001, Bxxx) count as delivered; warnings are logged.
 * - Any instance not stored fails the attempt; BullMQ retries after min(backoffSeconds·2^(n-1),
 *   maxBackoffSeconds) up to dispatch.attempts tries, then the job is parked as failed (Bull Board
 *   / Dispatcher.enqueue(record, 'admin') retries it).
 * - A retry sends only the files not delivered yet (kept in the job's progress); result UIDs are
 *   deterministic, so a resend is harmless anyway. A job run again after everything was delivered
 *   (an admin re-send of a completed job) sends every file again.
 * - A destination no longer configured, or result files missing from the spool, fail the job at
 *   once (UnrecoverableError): retrying cannot help.
 * - A target in silent mode (a job queued while it was live, or retried from Bull Board): nothing
 *   is sent; the job completes as "held" (DispatchState held, on the target's held list), and an
 *   admin's release with sendHeld runs it again for what was not delivered yet.
 */
import { access } from 'node:fs/promises';
import { basename } from 'node:path';
import { UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Config } from '../../config/schema.js';
import { sendFiles } from '../../dicom/scu/client.js';
import type { Logger } from '../../log.js';
import { DISPATCH_QUEUE, dispatchJobSchema, type DispatchJobData } from '../../queue/jobs.js';
import { throttledWarn } from '../../stores/redis.js';
import type { DispatchAttempt, DispatchState } from '../../contracts/result-record.js';
import { destinationPeer } from './destinations.js';
import { dispatchBackoffMs, type SilentTargets } from './dispatcher.js';
import { HeldDispatch } from '../../stores/held-dispatch.js';
import { DispatchStore } from '../../stores/dispatch-state.js';
import { TargetStatusStore } from '../../stores/target-status.js';
import { runNotificationJob } from './notify-job.js';
import { stowFiles } from './stow.js';
import { findTarget } from '../../config/dispatch-targets.js';

/** What a completed dispatch job returns (Bull Board shows it). */
export interface DispatchJobResult {
  destination: string;
  /** Files delivered over all attempts (= all of them). */
  delivered: number;
  /** Of those, stored with a warning status. */
  warnings: number;
  /** Files sent by the last attempt. */
  sentThisAttempt: number;
  /** The target was in silent mode: nothing was sent, the result is held. */
  held?: boolean;
  attempt: number;
  ms: number;
}

/** The job's progress: which files are delivered so far (survives retries). */
export interface DispatchProgress {
  total: number;
  delivered: string[];
  warnings: number;
}

function readProgress(p: unknown, files: readonly string[]): { delivered: Set<string>; warnings: number } {
  if (p && typeof p === 'object' && Array.isArray((p as DispatchProgress).delivered)) {
    const known = new Set(files);
    const delivered = new Set((p as DispatchProgress).delivered.filter((f) => typeof f === 'string' && known.has(f)));
    const w = (p as DispatchProgress).warnings;
    return { delivered, warnings: typeof w === 'number' && w >= 0 ? w : 0 };
  }
  return { delivered: new Set(), warnings: 0 };
}

const hex4 = (n: number | undefined): string | undefined => (n === undefined ? undefined : `0x${n.toString(16).padStart(4, '0')}`);

export interface DispatchWorkerOptions {
  config: Config;
  logger: Logger;
  /** Command connection for the state writes (createRedis(url, 'command')). */
  redis: Redis;
  /** Blocking connection for the BullMQ Worker (createRedis(url, 'worker')). */
  workerRedis: Redis;
  /** Default config.worker.dispatchConcurrency. */
  concurrency?: number;
  /** Silent mode, checked before every send; absent: every target is live. */
  modes?: SilentTargets;
}

export class DispatchWorker {
  private worker: Worker<DispatchJobData, DispatchJobResult> | undefined;
  private readonly store: DispatchStore;
  private readonly targets: TargetStatusStore;
  private readonly held: HeldDispatch;
  private readonly log: Logger;

  constructor(private readonly opts: DispatchWorkerOptions) {
    this.log = opts.logger.child({ component: 'dispatch-worker' });
    this.store = new DispatchStore(opts.redis, opts.config.redis.keyPrefix);
    this.targets = new TargetStatusStore(opts.redis, opts.config.redis.keyPrefix);
    this.held = new HeldDispatch(opts.redis, opts.config.redis.keyPrefix);
  }

  /**
   * True when the target is silent: the job's state becomes "held" (run again on release: heldBy
   * admin, since the job exists) and the series goes on the target's held list. As in
   * Dispatcher.enqueue, a release that came in meanwhile is caught by reading the mode again.
   */
  private async heldBySilence(data: DispatchJobData, st: DispatchState, log: Logger): Promise<boolean> {
    if (!this.opts.modes || !(await this.opts.modes.silent()).includes(data.destination)) return false;
    const at = new Date();
    await this.store.updateState(data.seriesInstanceUid, { ...st, status: 'held', heldAt: at.toISOString(), heldBy: 'admin' });
    await this.held.hold(data.destination, data.seriesInstanceUid, at.getTime());
    if (!(await this.opts.modes.silent()).includes(data.destination) && (await this.held.claim(data.destination, data.seriesInstanceUid)))
      return false;
    log.info('silent mode: dispatch job held, nothing sent');
    return true;
  }

  /** Starts taking jobs. */
  start(): void {
    if (this.worker) return;
    const { config } = this.opts;
    this.worker = new Worker<DispatchJobData, DispatchJobResult>(DISPATCH_QUEUE, (job) => this.process(job), {
      connection: this.opts.workerRedis,
      prefix: config.redis.keyPrefix,
      concurrency: this.opts.concurrency ?? config.worker.dispatchConcurrency,
      // A worker killed mid-send leaves its job to another one once the lock expires (as for inference).
      lockDuration: Math.round(config.worker.lockDurationSeconds * 1000),
      stalledInterval: Math.round(config.worker.stalledIntervalSeconds * 1000),
      settings: {
        // Used for jobs whose backoff type is not built in, i.e. DISPATCH_BACKOFF (dispatchJobOptions).
        backoffStrategy: (attemptsMade: number) => dispatchBackoffMs(attemptsMade, config.dispatch),
      },
    });
    const warn = throttledWarn(this.log);
    this.worker.on('error', (err) => warn({ err: err.message }, 'dispatch worker error'));
    this.worker.on('failed', (job, err) => {
      if (!job) return;
      const parked = err instanceof UnrecoverableError || err.name === 'UnrecoverableError' || job.attemptsMade >= (job.opts.attempts ?? 1);
      if (parked) {
        this.log.error(
          {
            jobId: job.id,
            series: job.data.seriesInstanceUid,
            destination: job.data.destination,
            attempts: job.attemptsMade,
            err: err.message,
          },
          'dispatch failed: parked as a failed job (retry from the dashboard or the admin API)',
        );
      }
    });
  }

  /** Stops taking jobs; waits for running sends to finish unless `force`. */
  async close(force = false): Promise<void> {
    await this.worker?.close(force);
    this.worker = undefined;
  }

  get running(): boolean {
    return this.worker?.isRunning() ?? false;
  }

  /** One try of one job (the Worker's processor). */
  async process(job: Job<DispatchJobData, DispatchJobResult>): Promise<DispatchJobResult> {
    const t0 = Date.now();
    const at = new Date(t0).toISOString();
    const parsed = dispatchJobSchema.safeParse(job.data);
    if (!parsed.success)
      throw new UnrecoverableError(
        `invalid dispatch job data: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
      );
    const data = parsed.data;
    const jobId = job.id ?? '';
    const attempt = job.attemptsMade + 1;
    const finalTry = attempt >= (job.opts.attempts ?? 1);
    const log = this.log.child({ jobId, series: data.seriesInstanceUid, destination: data.destination, attempt });
    const progress = readProgress(job.progress, data.files);
    const state = (s: Pick<DispatchState, 'status'> & Partial<DispatchState>): DispatchState => ({
      destination: data.destination,
      instancesHash: data.instancesHash,
      attempts: attempt,
      instancesSent: progress.delivered.size,
      warnings: progress.warnings,
      lastAttemptAt: at,
      jobId,
      ...s,
    });
    const record = async (
      st: DispatchState,
      a: Omit<DispatchAttempt, 'destination' | 'instancesHash' | 'attempt' | 'at' | 'ms'>,
    ): Promise<void> => {
      // Three independent writes, the state last: whoever sees the state (a dashboard, a test, an admin
      // waiting for "failed") also sees the attempt in the log and in the target's counts, and a write
      // that fails (Redis away for a moment) does not take the others with it.
      const write = async (what: string, f: () => Promise<unknown>): Promise<void> => {
        try {
          await f();
        } catch (err) {
          log.warn({ err: (err as Error).message, what }, 'could not record the dispatch state');
        }
      };
      // The target's latest outcome and counts (dashboard targets page, per-target metrics).
      await write('target status', () =>
        this.targets.record(data.destination, {
          at: new Date().toISOString(),
          outcome: a.outcome,
          studyInstanceUid: data.studyInstanceUid,
          seriesInstanceUid: data.seriesInstanceUid,
          attempt,
          ...(a.error ? { error: a.error } : {}),
          ...(st.status === 'failed' ? { parked: true } : {}),
        }),
      );
      await write('attempt log', () =>
        this.store.logAttempt(data.seriesInstanceUid, {
          destination: data.destination,
          instancesHash: data.instancesHash,
          attempt,
          at,
          ms: Date.now() - t0,
          ...a,
        }),
      );
      await write('state', () => this.store.updateState(data.seriesInstanceUid, st));
    };
    const giveUp = async (reason: string): Promise<never> => {
      await record(state({ status: 'failed', lastError: reason }), { outcome: 'failed', sent: 0, warnings: 0, failed: 0, error: reason });
      throw new UnrecoverableError(reason);
    };

    const target = findTarget(this.opts.config, data.destination);
    if (!target) return giveUp(`destination "${data.destination}" is not configured`);
    if (await this.heldBySilence(data, state({ status: 'held' }), log)) {
      return {
        destination: data.destination,
        delivered: progress.delivered.size,
        warnings: progress.warnings,
        sentThisAttempt: 0,
        attempt,
        ms: Date.now() - t0,
        held: true,
      };
    }
    if (target.kind === 'notification') {
      // HL7 / FHIR / webhook: one message about the result, not its files (notify-job.ts).
      const out = await runNotificationJob({
        redis: this.opts.redis,
        config: this.opts.config,
        notification: target.notification,
        data,
        attempt,
        finalTry,
        log,
        recordState: (st, a) => record(state(st), a),
        giveUp,
      });
      return {
        destination: data.destination,
        delivered: out.delivered,
        warnings: 0,
        sentThisAttempt: out.delivered,
        attempt,
        ms: Date.now() - t0,
      };
    }

    let todo = data.files.filter((f) => !progress.delivered.has(f));
    if (todo.length === 0) {
      // Everything was delivered before: this run is a re-send (admin retry of a completed job).
      progress.delivered.clear();
      progress.warnings = 0;
      todo = [...data.files];
    }
    const missing: string[] = [];
    for (const f of todo) await access(f).catch(() => missing.push(f));
    if (missing.length) return giveUp(`${missing.length} result file(s) missing from the spool (first: ${basename(missing[0]!)})`);

    try {
      await this.store.updateState(data.seriesInstanceUid, state({ status: 'sending' }));
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'could not record the dispatch state');
    }
    const onResult = (r: { file: string; outcome: string; status?: number | undefined; reason?: string | undefined }): void => {
      if (r.outcome === 'failed') return;
      progress.delivered.add(r.file);
      if (r.outcome === 'warning') {
        log.warn(
          { file: basename(r.file), status: hex4(r.status), reason: r.reason },
          'instance stored with a warning status (counted delivered)',
        );
      }
    };
    const sent =
      target.kind === 'dimse'
        ? await sendFiles(destinationPeer(this.opts.config, target.dest), todo, { onResult })
        : // DICOMweb: one STOW-RS request, per-instance outcome from the response dataset (stow.ts).
          {
            ...(await stowFiles(target.dest, todo, { timeoutMs: Math.round(this.opts.config.dispatch.timeoutSeconds * 1000), onResult })),
            associations: 0,
          };
    const warnings = sent.warnings;
    progress.warnings += warnings;
    try {
      await job.updateProgress({
        total: data.files.length,
        delivered: [...progress.delivered],
        warnings: progress.warnings,
      } satisfies DispatchProgress);
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'could not record the delivered files');
    }
    const sentNow = sent.sent;
    if (sent.failed.length === 0 && progress.delivered.size === data.files.length) {
      const done = new Date().toISOString();
      await record(state({ status: 'sent', sentAt: done, instancesSent: progress.delivered.size, warnings: progress.warnings }), {
        outcome: 'sent',
        sent: sentNow,
        warnings,
        failed: 0,
      });
      log.info(
        { files: data.files.length, sentNow, warnings: progress.warnings, ms: Date.now() - t0, associations: sent.associations },
        'results dispatched',
      );
      return {
        destination: data.destination,
        delivered: progress.delivered.size,
        warnings: progress.warnings,
        sentThisAttempt: sentNow,
        attempt,
        ms: Date.now() - t0,
      };
    }
    const nFailed = sent.failed.length;
    const reason = `${nFailed} of ${todo.length} instance(s) not stored: ${sent.failed[0]?.reason ?? 'no response'}`;
    await record(
      state({
        status: finalTry ? 'failed' : 'pending',
        lastError: reason,
        instancesSent: progress.delivered.size,
        warnings: progress.warnings,
      }),
      {
        outcome: 'failed',
        sent: sentNow,
        warnings,
        failed: nFailed,
        error: reason,
      },
    );
    log.warn(
      {
        sentNow,
        failed: nFailed,
        delivered: progress.delivered.size,
        total: data.files.length,
        finalTry,
        err: reason,
        ...(finalTry ? {} : { retryInMs: dispatchBackoffMs(attempt, this.opts.config.dispatch) }),
      },
      finalTry ? 'dispatch attempt failed: no attempts left' : 'dispatch attempt failed: will retry',
    );
    throw new Error(reason);
  }
}
