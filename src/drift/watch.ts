/**
 * Keeps the drift report fresh and cheap to ask for: it is computed from two narrow queries (the
 * scored rows' inputs and outputs, the agree / disagree answers), at most once per
 * drift.refreshSeconds (a timer, and whoever asks for a stale report waits for one computation
 * shared by all askers). /metrics, /api/drift and every dashboard page's banner read the cache, so
 * a scrape or a page view does not touch the database more often than that.
 */
import type { DriftConfig } from '../config/schema.js';
import type { StoreHandle } from '../db/handle.js';
import type { Logger } from '../log.js';
import { buildDriftReport, type DriftReport } from './report.js';

export interface DriftWatchOptions {
  store: StoreHandle;
  config: DriftConfig;
  logger?: Logger;
  now?: () => Date;
}

export class DriftWatch {
  private cached: DriftReport | undefined;
  private computedAt = 0;
  private computing: Promise<DriftReport> | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** Why the last computation failed (the store unreachable), cleared by the next success. */
  lastError: string | undefined;
  /** How many times the report was computed (each is one pair of queries). */
  computations = 0;

  constructor(private readonly opts: DriftWatchOptions) {}

  get refreshMs(): number {
    return this.opts.config.refreshSeconds * 1000;
  }

  /** The last report computed, without waiting (undefined before the first one). */
  latest(): DriftReport | undefined {
    return this.cached;
  }

  /** The report, recomputed first when older than refreshSeconds; the last good one when the store fails. */
  async report(): Promise<DriftReport | undefined> {
    if (this.cached && Date.now() - this.computedAt < this.refreshMs) return this.cached;
    try {
      return await this.refresh();
    } catch {
      return this.cached;
    }
  }

  /**
   * The last report without waiting; when it is stale a recomputation starts in the background
   * (for the page banner: a page never waits on the database).
   */
  peek(): DriftReport | undefined {
    if (!this.cached || Date.now() - this.computedAt >= this.refreshMs) void this.refresh().catch(() => undefined);
    return this.cached;
  }

  /** Computes now (one computation at a time; concurrent callers share it). */
  refresh(): Promise<DriftReport> {
    this.computing ??= this.compute().finally(() => (this.computing = undefined));
    return this.computing;
  }

  private async compute(): Promise<DriftReport> {
    try {
      const { rows, answers } = await this.opts.store.use(async (db) => ({
        rows: await db.driftInputs(),
        answers: await db.agreementAnswers(),
      }));
      const report = buildDriftReport(rows, answers, this.opts.config, this.opts.now?.() ?? new Date());
      this.computations++;
      if (report.alarms.length && report.alarms.join() !== this.cached?.alarms.join())
        this.opts.logger?.warn({ alarms: report.alarms }, 'drift watch: alarm');
      this.cached = report;
      this.computedAt = Date.now();
      this.lastError = undefined;
      return report;
    } catch (err) {
      const msg = (err as Error).message;
      if (msg !== this.lastError) this.opts.logger?.warn({ err: msg }, 'drift watch: cannot read the results store');
      this.lastError = msg;
      throw err;
    }
  }

  /** Computes at once, then every refreshSeconds. */
  start(): void {
    const tick = (): void => {
      void this.refresh()
        .catch(() => undefined)
        .finally(() => {
          if (this.timer !== undefined) this.timer = setTimeout(tick, this.refreshMs).unref();
        });
    };
    this.timer = setTimeout(tick, 0).unref();
  }

  async stop(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.computing?.catch(() => undefined);
  }
}
