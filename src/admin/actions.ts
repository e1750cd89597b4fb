/**
 * Admin actions on one series (dashboard buttons and POST /api/series/:uid/...):
 * - force: settle the series now, without waiting for the quiet period (tracker.settle force);
 * - rescore: a new inference job for the series' current content, with a distinct job id
 *   `<inferenceJobId>-admin-<epoch ms>` and enqueuedBy "admin" (the original job stays in the
 *   history; the result UIDs are deterministic, so a re-score of the same content gives the same
 *   objects — a re-send after it replaces nothing in the PACS);
 * - resend: the dispatcher sends the latest result again to every destination (a target in silent
 *   mode holds it instead: nothing leaves the node until an admin releases it).
 */
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { ResultRecord } from '../contracts/result-record.js';
import type { SeriesTracker } from '../queue/series-tracker.js';
import { resultDestinations } from '../config/schema.js';

export type ActionName = 'force' | 'rescore' | 'resend';

export interface ActionResult {
  ok: boolean;
  action: ActionName;
  message: string;
  [k: string]: unknown;
}

/** Re-sends a result to every destination (the dispatcher's `enqueue(record, 'admin')`); `held`: targets in silent mode. */
export type ResendFn = (record: ResultRecord) => Promise<{ jobIds: string[]; held?: string[] }>;

export interface ActionsOptions {
  config: Config;
  logger: Logger;
  tracker: SeriesTracker;
  resend: ResendFn;
  getResult(seriesUid: string): Promise<ResultRecord | undefined>;
}

export class AdminActions {
  private readonly log: Logger;

  constructor(private readonly opts: ActionsOptions) {
    this.log = opts.logger.child({ component: 'admin-actions' });
  }

  async run(action: ActionName, seriesUid: string): Promise<ActionResult> {
    const r =
      action === 'force'
        ? await this.force(seriesUid)
        : action === 'rescore'
          ? await this.rescore(seriesUid)
          : await this.resend(seriesUid);
    this.log.info({ action, seriesInstanceUid: seriesUid, ok: r.ok, message: r.message }, 'admin action');
    return r;
  }

  async force(seriesUid: string): Promise<ActionResult> {
    const res = await this.opts.tracker.settle(seriesUid, 'admin', { force: true });
    switch (res.outcome) {
      case 'not-found':
        return { ok: false, action: 'force', message: 'series not found' };
      case 'queued':
        return { ok: true, action: 'force', message: `queued for scoring (${res.instanceCount} instances)`, jobId: res.jobId };
      case 'ignored':
        return { ok: true, action: 'force', message: `completed and ignored: ${res.reason}` };
      default:
        return { ok: false, action: 'force', message: `not settled (${res.outcome})` };
    }
  }

  async rescore(seriesUid: string): Promise<ActionResult> {
    const state = await this.opts.tracker.getSeries(seriesUid);
    if (!state) return { ok: false, action: 'rescore', message: 'series not found' };
    const queued = await this.opts.tracker.requeue(seriesUid);
    if (!queued) return { ok: false, action: 'rescore', message: 'series not complete yet: use "force completion" first' };
    return { ok: true, action: 'rescore', message: 'queued for scoring again', jobId: queued.jobId };
  }

  async resend(seriesUid: string): Promise<ActionResult> {
    const record = await this.opts.getResult(seriesUid);
    if (!record) return { ok: false, action: 'resend', message: 'no result for this series' };
    if (!record.outputs?.length)
      return { ok: false, action: 'resend', message: `nothing to send (result ${record.status}, no result objects)` };
    const { config } = this.opts;
    if (resultDestinations(config).length + config.notifications.length === 0)
      return { ok: false, action: 'resend', message: 'no destinations or notifications configured' };
    const { jobIds, held = [] } = await this.opts.resend(record);
    const sending = jobIds.length - held.length;
    const heldText = held.length ? `; held, not sent (silent mode): ${held.join(', ')}` : '';
    return {
      ok: true,
      action: 'resend',
      message: `re-sending to ${sending} destination(s)${heldText}`,
      jobIds,
      ...(held.length ? { held } : {}),
    };
  }
}
