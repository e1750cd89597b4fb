/** HTML of silent mode: the banner every dashboard page carries, and the /admin/dispatch page with the admin's switch. */
import type { DispatchModesWithHeld } from '../db/dispatch-modes.js';
import { atTopOfMain } from './page-banner.js';
import { esc, layout } from './pages.js';

/** The banner ('' when every target is live): put right after <main> by the server's onSend hook. */
export function silentBanner(v: Pick<DispatchModesWithHeld, 'silent' | 'readFrom' | 'error'>): string {
  if (v.silent.length === 0) return '';
  const stale =
    v.readFrom === 'store'
      ? ''
      : ` (the results store cannot be read: ${v.readFrom === 'redis copy' ? 'the last switches read are used' : "the config file's modes are used"})`;
  return `<div id="silent-banner" class="silent-banner" role="status">SILENT MODE — results are not sent to ${esc(v.silent.join(', '))}. They are computed, stored and shown here only${esc(stale)}; an admin releases them on <a href="/admin/dispatch">Dispatch mode</a>.</div>`;
}

/** Inline style for pages without our stylesheet (Bull Board). */
const STANDALONE =
  'position:fixed;left:0;right:0;top:0;z-index:2000;background:#5b21b6;color:#fff;padding:6px 12px;font:600 13px system-ui,sans-serif';

/** Puts the banner into a page: after <main> (our layout), else at the top of <body> (Bull Board). */
export function withBanner(page: string, banner: string): string {
  if (!banner) return page;
  if (page.includes('<main>')) return atTopOfMain(page, banner);
  return page.replace(
    /<body([^>]*)>/,
    (_m, attrs: string) => `<body${attrs}>${banner.replace('class="silent-banner"', `style="${STANDALONE}"`)}`,
  );
}

const sourceText: Record<string, string> = {
  setting: 'admin switch',
  config: 'config file (this target)',
  'global setting': 'admin switch (all targets)',
  'global config': 'config file (dispatch.mode)',
};

export function dispatchModePage(v: DispatchModesWithHeld, opts: { canSwitch: boolean; flash?: { ok: boolean; message: string } }): string {
  const sendHeldBox = (id: string) =>
    `<label><input type="checkbox" name="sendHeld" value="1" id="${esc(id)}"> also send the results held so far</label>`;
  const rows = v.targets.map((t) => {
    const held = v.held[t.name] ?? 0;
    const control = !opts.canSwitch
      ? ''
      : t.mode === 'silent'
        ? `<form method="post" action="/admin/dispatch/release"><input type="hidden" name="destination" value="${esc(t.name)}">${sendHeldBox(`send-held-${t.name}`)} <button type="submit">Release (go live)</button></form>`
        : `<form method="post" action="/admin/dispatch/silence"><input type="hidden" name="destination" value="${esc(t.name)}"><button type="submit">Switch to silent</button></form>`;
    const by = t.changedBy ? ` — ${esc(t.changedBy)}, ${esc((t.changedAt ?? '').replace('T', ' ').slice(0, 19))} UTC` : '';
    return `<tr data-target="${esc(t.name)}"><td><b>${esc(t.name)}</b></td><td class="mono">${esc(t.description)}</td><td><span class="badge ${t.mode === 'silent' ? 's-held' : 's-sent'}">${esc(t.mode)}</span></td><td>${esc(sourceText[t.source] ?? t.source)}${by}</td><td>${esc(held)}</td><td class="actions">${control}</td></tr>`;
  });
  const all = opts.canSwitch
    ? `<div class="card actions" id="switch-all"><b>All targets:</b>
<form method="post" action="/admin/dispatch/release">${sendHeldBox('send-held-all')} <button type="submit">Release all (go live)</button></form>
<form method="post" action="/admin/dispatch/silence"><button type="submit">Switch all to silent</button></form></div>`
    : '<p class="muted">Only an admin switches the dispatch mode.</p>';
  const flash = opts.flash ? `<div class="flash ${opts.flash.ok ? 'ok' : 'err'}">${esc(opts.flash.message)}</div>` : '';
  const body = `${flash}<h1>Dispatch mode</h1>
<p><b>Live</b>: results go to the target. <b>Silent</b>: results are computed, stored and shown on this dashboard, but nothing is sent to the target (no C-STORE, STOW-RS, HL7, FHIR or webhook) — the way a site runs the node before go-live.
The config file (<span class="mono">dispatch.mode</span>, a target's <span class="mono">mode</span>) gives the first state; an admin's switch here (or <span class="mono">POST /api/dispatch/release</span>, <span class="mono">/silence</span>) is kept in the results store and wins, also after a restart. Every switch is in the audit table with the user.</p>
<p>Releasing a target sends only new results, unless "also send the results held so far" is ticked: then each held result goes out once. Held results not sent stay on their series page, where <i>Re-send</i> still sends one.</p>
${v.error ? `<p class="flash err">The results store cannot be read (${esc(v.error)}): ${v.readFrom === 'redis copy' ? 'the last switches read are used' : "the config file's modes are used"}.</p>` : ''}
${
  v.targets.length
    ? `<table id="dispatch-modes"><thead><tr><th>Target</th><th>Where</th><th>Mode</th><th>Set by</th><th>Held</th><th></th></tr></thead><tbody>${rows.join('')}</tbody></table>`
    : '<p class="card info">No destinations or notifications are configured.</p>'
}
${v.targets.length ? all : ''}
<p class="notice">NOT FOR DIAGNOSTIC USE</p>`;
  return layout('Dispatch mode', body);
}
