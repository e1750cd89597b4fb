/**
 * The drift banner on every dashboard page: when a variable of the drift watch leaves its stable
 * band beyond chance, or the radiologists' agreement fell, every page rendered by layout() (the
 * <main> element) starts with a red banner naming them and linking to /admin/drift. Added by an
 * onSend hook on the admin server from the watch's last computed report (never waiting on the
 * database; a stale report is refreshed in the background), so that the page builders stay
 * synchronous and this is the only place that knows about it.
 */
import type { onSendAsyncHookHandler } from 'fastify';
import type { DriftReport } from '../drift/report.js';
import type { DriftWatch } from '../drift/watch.js';
import { atTopOfMain, isHtmlPage } from './page-banner.js';
import { esc } from './pages.js';

const STYLE = 'background:#fde2e1;border-left:4px solid #a61b1b;color:#5c0f0f;padding:8px 12px;margin:0 0 12px;border-radius:4px';

/** The banner's HTML, '' when nothing alarms. */
export function driftBannerHtml(report: DriftReport | undefined): string {
  if (!report || report.alarms.length === 0) return '';
  const items = report.alarms.map((a) => `<li>${esc(a)}</li>`).join('');
  return `<div id="drift-banner" role="alert" style="${STYLE}"><b>Drift watch:</b> the node's inputs or outputs have changed against the reference (${esc(report.windows.reference.description)}), or the radiologists agree less. Check before relying on its results. <a href="/admin/drift">Details</a><ul style="margin:4px 0 0 18px;padding:0">${items}</ul></div>`;
}

/** Dashboard pages (layout()'s <main>), not Bull Board, static files or downloads. */
const isDashboardPage = (url: string): boolean =>
  url.startsWith('/admin') && !url.startsWith('/admin/queues') && !url.startsWith('/admin/static');

/** onSend hook: puts the banner at the top of <main> of the dashboard's HTML pages. */
export function driftBannerHook(watch: DriftWatch): onSendAsyncHookHandler<unknown> {
  return async (req, reply, payload) => {
    if (!isHtmlPage(reply, payload) || !isDashboardPage(req.url)) return payload;
    return atTopOfMain(payload, driftBannerHtml(watch.peek()));
  };
}
