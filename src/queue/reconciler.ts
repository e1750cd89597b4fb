import type { Config } from '../config/schema.js';
import { resolvePath } from '../config/load.js';
import type { Logger } from '../log.js';
import { inferenceJobId, instancesHash } from './jobs.js';
import { isRedisUnavailable, withTimeout } from '../stores/redis.js';
import { ScheduledPass } from '../scheduled-pass.js';
import type { SeriesTracker } from './series-tracker.js';
import type { SettleResult } from './settle-outcome.js';
import { listSeriesInstances, listSpooledSeries, type SpooledSeries } from '../dicom/spool/reader.js';

export interface ReconcileReport {
  /** Series directories looked at. */
  scanned: number;
  /** Still inside their quiet period (left to the tracker). */
  pending: number;
  /** Already queued or ignored with the same content. */
  upToDate: number;
  /** Settled now by the reconciler. */
  queued: number;
  ignored: number;
  deferred: number;
  errors: number;
}

export interface ReconcilerOptions {
  config: Config;
  logger: Logger;
  tracker: SeriesTracker;
}

/**
 * Finds spooled series that have no inference job for their current content and are not recorded
 * ignored for it, and settles them (enqueuedBy "reconciler"): covers Redis being down while
 * instances arrived and a process killed during the quiet period. Runs at start-up and on
 * series.reconcileCron; runs never overlap within a process, and several processes are harmless
 * (the inference job id is derived from the content).
 */
export class Reconciler {
  private readonly schedule: ScheduledPass<ReconcileReport>;
  private readonly log: Logger;
  private readonly spoolDir: string;
  private readonly quietMs: number;

  constructor(private readonly opts: ReconcilerOptions) {
    this.log = opts.logger.child({ component: 'reconciler' });
    this.spoolDir = resolvePath(opts.config.spool.dir);
    this.quietMs = opts.config.series.quietPeriodSeconds * 1000;
    this.schedule = new ScheduledPass({
      cronKey: 'series.reconcileCron',
      cron: opts.config.series.reconcileCron,
      name: 'spool-reconciler',
      run: () => this.pass(),
      onError: (err) => {
        this.log.warn({ err: err.message }, 'reconcile pass failed');
        return { scanned: 0, pending: 0, upToDate: 0, queued: 0, ignored: 0, deferred: 0, errors: 1 };
      },
    });
  }

  /** Runs once now (in the background) and then on the cron schedule. */
  start(): void {
    void this.runOnce();
    this.schedule.start();
  }

  stop(): Promise<void> {
    return this.schedule.stop();
  }

  /** One pass over the spool; never throws (a failed pass is logged and retried next time). */
  runOnce(): Promise<ReconcileReport> {
    return this.schedule.runOnce();
  }

  private async pass(): Promise<ReconcileReport> {
    const report: ReconcileReport = { scanned: 0, pending: 0, upToDate: 0, queued: 0, ignored: 0, deferred: 0, errors: 0 };
    const series = await listSpooledSeries(this.spoolDir);
    for (const s of series) {
      report.scanned++;
      if (Date.now() - s.lastChangeMs < this.quietMs) {
        report.pending++;
        continue;
      }
      try {
        // A hung Redis call must not stall every later pass (runs never overlap).
        const outcome = await withTimeout(this.reconcileSeries(s), 60_000, 'reconcile series');
        if (outcome === 'up-to-date') report.upToDate++;
        else if (outcome === 'queued') report.queued++;
        else if (outcome === 'ignored') report.ignored++;
        else if (outcome === 'deferred') report.deferred++;
      } catch (err) {
        report.errors++;
        this.log.warn({ seriesInstanceUid: s.seriesInstanceUid, err: (err as Error).message }, 'could not reconcile series');
        // Redis down: no point in trying the other series now.
        if (isRedisUnavailable(err)) break;
      }
    }
    if (report.queued || report.ignored || report.errors) this.log.info(report, 'reconcile pass done');
    return report;
  }

  private async reconcileSeries(s: SpooledSeries): Promise<'empty' | 'up-to-date' | SettleResult['outcome']> {
    const { tracker } = this.opts;
    const sops = await listSeriesInstances(s.dir);
    if (sops.length === 0) return 'empty';
    const hash = instancesHash(sops);
    const state = await tracker.getSeries(s.seriesInstanceUid);
    const sameContent = state?.instancesHash === hash && (state.status === 'queued' || state.status === 'ignored');
    if (sameContent || state?.queuedHash === hash) return 'up-to-date';
    if (await tracker.inferenceQueue.getJob(inferenceJobId(s.seriesInstanceUid, hash))) return 'up-to-date';
    if (!state) await tracker.adoptSpooledSeries(s.studyInstanceUid, s.seriesInstanceUid, s.dir, s.lastChangeMs);
    const result = await tracker.settle(s.seriesInstanceUid, 'reconciler');
    this.log.info({ seriesInstanceUid: s.seriesInstanceUid, outcome: result.outcome }, 'reconciled spooled series');
    return result.outcome;
  }
}
