/**
 * Spool retention: deletes a series' inputs (`<spool>/<study>/<series>/`) and its result objects
 * (`<spool>/results/<study>/<series>/`), and its Redis records, `spool.retentionDays` after it was
 * DISPATCHED — never before. "Dispatched" means:
 *
 * - destinations configured: the series' latest result (status scored, or not-scored with a
 *   not-scored SR) covers the spool's current content (same instances hash) and every configured
 *   destination's DispatchState for that content is "sent" (or "withheld": held in silent mode and
 *   released without sending); the age counts from the last sentAt (releasedAt). A result held in
 *   silent mode is kept: a release may still send it.
 * - no destinations configured: there is nowhere to send, so the work is done once the result is
 *   final for the current content: status "scored" or "not-scored"; the age counts from finishedAt.
 * - a not-scored series without result objects (results.reportNotScored false) is final at
 *   finishedAt as well (nothing to send).
 * - an ignored series (routing: not for this model) has nothing to send: it counts from the
 *   tracker's settledAt, if its content did not change since.
 *
 * Kept, whatever their age: series still receiving or queued, scoring, failed (an admin may retry),
 * with any destination not "sent", or whose spool content grew after the result (new content is
 * undispatched work). Anything unreadable is kept. One pass never throws.
 *
 * One result per study (results.perSeries false): the series of a study that were not chosen are
 * recorded ignored at the study's settle, but they are the chosen series' fallback candidates (scored
 * instead when it cannot be) and the study is one piece of work. They are kept until the study's
 * chosen series is dispatched as above, or its job failed; their age counts from the later of their
 * own time and that. A study receiving again keeps all its series.
 */
import { readdir, rm, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import type { Config } from '../config/schema.js';
import { resolvePath } from '../config/load.js';
import { RESULTS_DIR_NAME } from '../dicom/spool/spool-layout.js';
import type { Logger } from '../log.js';
import { instancesHash } from '../queue/jobs.js';
import { Keys } from '../stores/keys.js';
import { isRedisUnavailable } from '../stores/redis.js';
import { ScheduledPass } from '../scheduled-pass.js';
import { dispatchStateSchema, parseStored, resultKey, resultRecordSchema, type ResultRecord } from '../contracts/result-record.js';
import { listSeriesInstances, listSpooledSeries, seriesDirOf } from '../dicom/spool/reader.js';
import { resultDestinations } from '../config/schema.js';

export interface RetentionReport {
  scanned: number;
  deleted: number;
  /** Why each kept series was kept, counted by reason. */
  kept: Record<string, number>;
  errors: number;
  deletedSeries: string[];
}

export interface RetentionOptions {
  config: Config;
  logger: Logger;
  redis: Redis;
  /** Clock, for tests. */
  now?: () => number;
}

type Verdict = { delete: true; dispatchedAt: number } | { delete: false; reason: string; failedAt?: number };

export class SpoolRetention {
  private readonly schedule: ScheduledPass<RetentionReport>;
  private readonly keys: Keys;
  private readonly log: Logger;
  private readonly spoolDir: string;

  constructor(private readonly opts: RetentionOptions) {
    this.keys = new Keys(opts.config.redis.keyPrefix);
    this.log = opts.logger.child({ component: 'retention' });
    this.spoolDir = resolvePath(opts.config.spool.dir);
    this.schedule = new ScheduledPass({
      cronKey: 'spool.retentionCron',
      cron: opts.config.spool.retentionCron,
      name: 'spool-retention',
      run: () => this.pass(),
      onError: (err) => {
        this.log.warn({ err: err.message }, 'retention pass failed');
        return { scanned: 0, deleted: 0, kept: {}, errors: 1, deletedSeries: [] };
      },
    });
  }

  start(): void {
    this.schedule.start();
  }

  stop(): Promise<void> {
    return this.schedule.stop();
  }

  /** One sweep (never rejects; a call during a sweep gets that sweep). */
  runOnce(): Promise<RetentionReport> {
    return this.schedule.runOnce();
  }

  private async pass(): Promise<RetentionReport> {
    const report: RetentionReport = { scanned: 0, deleted: 0, kept: {}, errors: 0, deletedSeries: [] };
    const now = (this.opts.now ?? Date.now)();
    const maxAgeMs = this.opts.config.spool.retentionDays * 86_400_000;
    for (const s of await listSpooledSeries(this.spoolDir)) {
      report.scanned++;
      try {
        const v = await this.verdict(s.seriesInstanceUid, s.dir);
        const keep = (reason: string): void => {
          report.kept[reason] = (report.kept[reason] ?? 0) + 1;
        };
        if (!v.delete) keep(v.reason);
        else if (now - v.dispatchedAt < maxAgeMs) keep('younger than retentionDays');
        else {
          await this.remove(s.studyInstanceUid, s.seriesInstanceUid, s.dir);
          report.deleted++;
          report.deletedSeries.push(s.seriesInstanceUid);
          this.log.info(
            { seriesInstanceUid: s.seriesInstanceUid, dispatchedAt: new Date(v.dispatchedAt).toISOString() },
            'retention: series deleted from the spool',
          );
        }
      } catch (err) {
        report.errors++;
        this.log.warn({ seriesInstanceUid: s.seriesInstanceUid, err: (err as Error).message }, 'retention: series kept (error)');
        if (isRedisUnavailable(err)) break;
      }
    }
    if (report.deleted || report.errors) this.log.info({ ...report, deletedSeries: undefined }, 'retention pass done');
    return report;
  }

  /** Whether a spooled series is dispatched (see the file comment), and since when; in study mode with its study. */
  async verdict(seriesUid: string, dir: string): Promise<Verdict> {
    const own = await this.seriesVerdict(seriesUid, dir);
    if (!own.delete) return own;
    const study = await this.studyVerdict(seriesUid);
    if (!study) return own;
    if (!study.delete) return study;
    return { delete: true, dispatchedAt: Math.max(own.dispatchedAt, study.dispatchedAt) };
  }

  /**
   * Study mode, for a series that is not its study's chosen one: whether the chosen series is
   * dispatched or failed, and since when. Undefined when there is nothing to wait for (per-series
   * mode, a study with no chosen series, the chosen series itself, or one already removed).
   */
  private async studyVerdict(seriesUid: string): Promise<Verdict | undefined> {
    const r = this.opts.redis;
    const [studyUid, role] = await r.hmget(this.keys.series(seriesUid), 'studyInstanceUid', 'role');
    if (!studyUid || !role) return undefined;
    const study = await r.hgetall(this.keys.study(studyUid));
    if (study.status === 'receiving') return { delete: false, reason: 'study receiving' };
    const chosen = study.chosenSeries;
    if (!chosen || chosen === seriesUid) return undefined;
    const chosenDir = (await r.hget(this.keys.series(chosen), 'seriesDir')) ?? seriesDirOf(this.spoolDir, studyUid, chosen);
    // Removed by an earlier sweep (after it was dispatched): nothing left to wait for.
    if ((await listSeriesInstances(chosenDir)).length === 0 && !(await r.exists(this.keys.result(chosen)))) return undefined;
    const raw = await r.get(this.keys.result(chosen));
    const rec = raw ? parseStored(resultRecordSchema, raw) : undefined;
    if (rec?.study && study.contentHash && rec.study.contentHash !== study.contentHash) {
      return { delete: false, reason: "the study's chosen series is not dispatched yet" };
    }
    const v = await this.seriesVerdict(chosen, chosenDir);
    if (v.delete) return v;
    if (v.failedAt !== undefined) return { delete: true, dispatchedAt: v.failedAt };
    return { delete: false, reason: "the study's chosen series is not dispatched yet" };
  }

  /** Whether a spooled series' own work is dispatched (see the file comment), and since when. */
  private async seriesVerdict(seriesUid: string, dir: string): Promise<Verdict> {
    const r = this.opts.redis;
    const sops = await listSeriesInstances(dir);
    if (sops.length === 0) return { delete: false, reason: 'empty series folder' };
    const hash = instancesHash(sops);
    const [series, raw, dispatchRaw] = await Promise.all([
      r.hgetall(this.keys.series(seriesUid)),
      r.get(this.keys.result(seriesUid)),
      r.hgetall(this.keys.dispatch(seriesUid)),
    ]);
    if (series.status === 'ignored') {
      if (series.instancesHash !== hash) return { delete: false, reason: 'content changed after it was ignored' };
      const at = Number(series.settledAt || 0);
      return at > 0 ? { delete: true, dispatchedAt: at } : { delete: false, reason: 'ignored without a settle time' };
    }
    if (!raw) return { delete: false, reason: 'no result' };
    const rec: ResultRecord | undefined = parseStored(resultRecordSchema, raw);
    if (!rec) return { delete: false, reason: 'unreadable result record' };
    if (rec.instancesHash !== hash) return { delete: false, reason: 'content changed after the result' };
    if (series.status === 'receiving') return { delete: false, reason: 'receiving' };
    // A newer inference job than the result's (e.g. an admin re-score) is still to come.
    if (series.jobId && rec.jobId && series.jobId !== rec.jobId) return { delete: false, reason: 'a newer job is pending' };
    if (rec.status === 'scoring') return { delete: false, reason: 'scoring' };
    const finishedAt = rec.finishedAt ? Date.parse(rec.finishedAt) : NaN;
    if (rec.status === 'failed')
      return { delete: false, reason: 'failed', ...(Number.isFinite(finishedAt) ? { failedAt: finishedAt } : {}) };
    // DIMSE and DICOMweb destinations alike (notifications carry no files: they do not hold the spool).
    const destinations = resultDestinations(this.opts.config).map((d) => d.name);
    const nothingToSend = !rec.outputs?.length;
    if (destinations.length === 0 || (rec.status === 'not-scored' && nothingToSend)) {
      return Number.isFinite(finishedAt) ? { delete: true, dispatchedAt: finishedAt } : { delete: false, reason: 'no finish time' };
    }
    if (nothingToSend) return { delete: false, reason: 'scored without result objects' };
    let last = 0;
    for (const name of destinations) {
      const st = parseStored(dispatchStateSchema, dispatchRaw[name]);
      if (st?.status === 'held' && st.instancesHash === resultKey(rec)) return { delete: false, reason: 'held (silent mode)' };
      // Withheld at a release (silent mode, sendHeld false): done as if sent, counted from the release.
      const done = st?.status === 'sent' || st?.status === 'withheld';
      if (!st || st.instancesHash !== resultKey(rec) || !done) {
        return { delete: false, reason: 'not sent to every destination' };
      }
      const at = st.status === 'withheld' ? (st.releasedAt ? Date.parse(st.releasedAt) : NaN) : st.sentAt ? Date.parse(st.sentAt) : NaN;
      if (!Number.isFinite(at)) return { delete: false, reason: 'sent without a time' };
      last = Math.max(last, at);
    }
    return { delete: true, dispatchedAt: last };
  }

  private async remove(studyUid: string, seriesUid: string, dir: string): Promise<void> {
    // Results first: a crash in between leaves inputs (re-scored, same UIDs), never orphaned outputs only.
    const resultsDir = join(this.spoolDir, RESULTS_DIR_NAME, studyUid, seriesUid);
    await rm(resultsDir, { recursive: true, force: true });
    await rm(dir, { recursive: true, force: true });
    await rmdirIfEmpty(join(this.spoolDir, RESULTS_DIR_NAME, studyUid));
    await rmdirIfEmpty(join(this.spoolDir, studyUid));
    const k = this.keys;
    await this.opts.redis
      .multi()
      .del(k.series(seriesUid), k.seriesInstances(seriesUid), k.result(seriesUid), k.dispatch(seriesUid), k.dispatchLog(seriesUid))
      .zrem(k.seriesIndex(), seriesUid)
      .zrem(k.resultIndex(), seriesUid)
      .srem(k.studySeries(studyUid), seriesUid)
      .exec();
    // The study's state goes with its last series.
    if ((await this.opts.redis.scard(k.studySeries(studyUid))) === 0) {
      await this.opts.redis.multi().del(k.study(studyUid), k.studySeries(studyUid)).zrem(k.studyIndex(), studyUid).exec();
    }
  }
}

async function rmdirIfEmpty(dir: string): Promise<void> {
  try {
    if ((await readdir(dir)).length === 0) await rmdir(dir);
  } catch {
    /* gone or not empty meanwhile */
  }
}
