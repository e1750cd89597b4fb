/**
 * Server-rendered HTML of the dashboard: no framework, every value escaped (esc) or embedded as
 * JSON that cannot close its <script> element (jsonForScript).
 */
import type { AssociationRecord } from '../dicom/received-instance.js';
import type { SeriesDetail, SeriesSummary, StageTimings } from './data.js';
import type { SrDocument, SrNode } from './dicom-view.js';
import type { WorkerInfo } from '../queue/worker-registry.js';

export function esc(v: unknown): string {
  return String(v ?? '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

/** JSON for a <script type="application/json"> element. */
export function jsonForScript(v: unknown): string {
  return JSON.stringify(v).replace(/</g, '\\u003c').replace(/>/g, '\\u003e').replace(/&/g, '\\u0026');
}

const CSS = `
*{box-sizing:border-box}body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d232a;background:#f4f6f8}
header{background:#1d3557;color:#fff;padding:10px 20px;display:flex;gap:24px;align-items:center}
header a{color:#dfe8f3;text-decoration:none;font-weight:500}header a:hover{color:#fff}header .brand{font-weight:700;color:#fff;margin-right:12px}
main{padding:16px 20px;max-width:1400px}h1{font-size:20px;margin:4px 0 12px}h2{font-size:16px;margin:20px 0 8px}
table{border-collapse:collapse;width:100%;background:#fff;box-shadow:0 1px 2px rgba(0,0,0,.08)}
th,td{text-align:left;padding:6px 8px;border-bottom:1px solid #e5e8eb;vertical-align:top}th{background:#eef1f4;font-weight:600;font-size:12px;text-transform:uppercase;color:#4a5560}
tr:hover td{background:#fafbfc}.mono{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;white-space:nowrap}
.s-receiving,.s-waiting{background:#e0ecff;color:#1d4ed8}.s-queued{background:#eef1f4;color:#374151}.s-scoring,.s-dispatching{background:#fff4d6;color:#92600a}
.s-scored,.s-sent{background:#dcf5e3;color:#11663a}.s-failed{background:#fde2e1;color:#a61b1b}.s-ignored,.s-not-scored{background:#ececec;color:#555}
.c-likely{color:#a61b1b;font-weight:600}.c-indeterminate{color:#92600a;font-weight:600}.c-unlikely{color:#11663a;font-weight:600}
.reason{color:#6b7280;font-size:12px}.muted{color:#6b7280}.bar{height:6px;background:#e5e8eb;border-radius:3px;width:90px;margin-top:3px}.bar>div{height:6px;background:#d99a0b;border-radius:3px}
.card{background:#fff;padding:12px 16px;box-shadow:0 1px 2px rgba(0,0,0,.08);margin-bottom:12px}
dl.kv{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px;margin:0}dl.kv dt{color:#6b7280}dl.kv dd{margin:0}
.actions form{display:inline-block;margin-right:8px}button{padding:6px 12px;border:1px solid #1d3557;background:#fff;color:#1d3557;border-radius:4px;cursor:pointer;font-weight:600}
button:hover{background:#1d3557;color:#fff}.flash{padding:8px 12px;margin-bottom:12px;border-radius:4px}.flash.ok{background:#dcf5e3}.flash.err{background:#fde2e1}
.heatmaps{display:flex;flex-wrap:wrap;gap:12px}.heatmaps figure{margin:0;background:#fff;padding:8px;box-shadow:0 1px 2px rgba(0,0,0,.08)}
.heatmaps img{display:block;width:300px;height:auto}.heatmaps figure.summary img{width:600px}.heatmaps figcaption{font-size:12px;color:#4a5560;margin-top:4px}
pre.sr{background:#fff;padding:12px;box-shadow:0 1px 2px rgba(0,0,0,.08);overflow:auto;font-size:12px;margin:0}
#chart{background:#fff;padding:8px;box-shadow:0 1px 2px rgba(0,0,0,.08);min-height:300px}.phi{background:#fff8e1;border-left:3px solid #d99a0b}
.notice{font-size:12px;color:#a61b1b;font-weight:600}.nowrap{white-space:nowrap}
`;

export function layout(title: string, body: string, opts: { refreshSeconds?: number; head?: string } = {}): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
${opts.refreshSeconds ? `<meta http-equiv="refresh" content="${opts.refreshSeconds}">` : ''}
<title>${esc(title)} · mlsam-node</title><style>${CSS}</style>${opts.head ?? ''}</head>
<body><header><span class="brand">mlsam-node</span><a href="/admin">Series</a><a href="/admin/associations">Associations</a>
<a href="/admin/queues">Queues</a><a href="/metrics">Metrics</a><a href="/readyz">Ready?</a></header>
<main>${body}</main></body></html>`;
}

const fmtMs = (ms: number | undefined): string => (ms === undefined ? '' : ms >= 10_000 ? `${(ms / 1000).toFixed(0)} s` : ms >= 1000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`);

export function timingsText(t: StageTimings): string {
  const parts: [string, number | undefined][] = [
    ['wait', t.waitMs], ['read', t.readMs], ['decode', t.decodeMs], ['preprocess', t.preprocessMs], ['infer', t.inferMs],
    ['aggregate', t.aggregateMs], ['results', t.resultsMs], ['total', t.totalMs], ['send', t.dispatchMs],
  ];
  return parts.filter(([, v]) => v !== undefined).map(([k, v]) => `${k} ${fmtMs(v)}`).join(' · ');
}

const fmtTime = (s: string | undefined): string => (s ? s.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '');
const shortUid = (uid: string): string => (uid.length > 28 ? `…${uid.slice(-26)}` : uid);

export function statusCell(s: SeriesSummary): string {
  let extra = '';
  if (s.status === 'scoring' && s.progress !== undefined) {
    extra = `<div class="bar" title="${esc(Math.round(s.progress))}%"><div style="width:${esc(Math.round(s.progress))}%"></div></div>`;
  }
  if (s.status === 'waiting' && s.quietRemainingSeconds !== undefined) extra = `<div class="reason">${esc(s.quietRemainingSeconds)} s left</div>`;
  if (s.reason) extra += `<div class="reason">${esc(s.reason)}</div>`;
  return `<span class="badge s-${esc(s.status)}">${esc(s.statusText)}${s.status === 'scoring' && s.progress !== undefined ? ` ${esc(Math.round(s.progress))}%` : ''}</span>${extra}`;
}

function workersLine(workers: readonly WorkerInfo[]): string {
  if (workers.length === 0) return '<p class="muted" id="workers">No inference worker is running.</p>';
  const items = workers.map((w) =>
    `<span class="nowrap"><b>${esc(w.provider)}</b> ${esc(w.host)} <span class="muted">(pid ${esc(w.pid)}, ${esc(w.model)} ${esc(w.version)}, ${esc(w.concurrency)} at once)</span></span>`);
  return `<p id="workers">Inference workers: ${items.join(' · ')}</p>`;
}

export function seriesListPage(list: SeriesSummary[], opts: { limit: number; workers?: readonly WorkerInfo[] }): string {
  const rows = list.map((s) => `<tr data-series-uid="${esc(s.seriesInstanceUid)}">
<td class="mono nowrap"><a href="/admin/series/${esc(s.seriesInstanceUid)}" title="${esc(s.seriesInstanceUid)}">${esc(shortUid(s.seriesInstanceUid))}</a></td>
<td>${esc(s.callingAeTitle)}</td><td>${statusCell(s)}</td>
<td class="nowrap">${s.sliceCount !== undefined ? `${esc(s.sliceCount)} <span class="muted">/ ${esc(s.instancesReceived)}</span>` : esc(s.instancesReceived)}</td>
<td>${s.score !== undefined ? esc(s.score.toFixed(3)) : ''}</td>
<td>${s.category ? `<span class="c-${esc(s.category)}">${esc(s.category)}</span>` : ''}</td>
<td class="reason">${esc(timingsText(s.timings))}</td>
<td class="mono nowrap">${esc(fmtTime(s.lastReceivedAt ?? s.finishedAt))}</td></tr>`);
  const body = `<h1>Series</h1>
${workersLine(opts.workers ?? [])}
<p class="muted">The ${esc(opts.limit)} most recent series; this page refreshes every 10 s. Slices: scored / received.</p>
<table id="series"><thead><tr><th>Series</th><th>Calling AE</th><th>Status</th><th>Slices</th><th>Score</th><th>Category</th><th>Timings</th><th>Last received</th></tr></thead>
<tbody>${rows.join('\n') || '<tr><td colspan="8" class="muted">No series received yet.</td></tr>'}</tbody></table>`;
  return layout('Series', body, { refreshSeconds: 10 });
}

function srNodes(nodes: SrNode[]): string {
  return nodes
    .map((n) => {
      const head = [n.relationship, n.valueType].filter(Boolean).join(' ');
      const line = `<span class="muted">${esc(head)}</span> ${n.name ? `<b>${esc(n.name)}</b>` : ''}${n.value !== undefined ? ` = ${esc(n.value)}` : ''}`;
      return `<li>${line}${n.children.length ? `<ul>${srNodes(n.children)}</ul>` : ''}</li>`;
    })
    .join('');
}

export function srHtml(doc: SrDocument): string {
  const flags = [doc.completionFlag, doc.verificationFlag].filter(Boolean).join(' · ');
  return `<div class="card sr" id="sr"><b>${esc(doc.title)}</b> <span class="muted">${esc(flags)}</span>
${doc.seriesDescription ? `<div class="muted">${esc(doc.seriesDescription)}</div>` : ''}<ul>${srNodes(doc.content)}</ul></div>`;
}

export interface SeriesPageExtras {
  sr?: SrDocument;
  srError?: string;
  flash?: { ok: boolean; message: string };
  showPhi: boolean;
}

export function seriesPage(d: SeriesDetail, x: SeriesPageExtras): string {
  const r = d.result;
  const uid = d.seriesInstanceUid;
  const kv = (k: string, v: string): string => (v ? `<dt>${esc(k)}</dt><dd>${v}</dd>` : '');
  const phi = x.showPhi && d.patient
    ? `<div class="card phi"><dl class="kv">${kv('Patient name', esc(d.patient.patientName))}${kv('Patient ID', esc(d.patient.patientId))}</dl></div>`
    : '';
  const flash = x.flash ? `<div class="flash ${x.flash.ok ? 'ok' : 'err'}">${esc(x.flash.message)}</div>` : '';
  const action = (name: string, label: string, title: string): string =>
    `<form method="post" action="/admin/series/${esc(uid)}/${esc(name)}"><button type="submit" title="${esc(title)}">${esc(label)}</button></form>`;
  const summary = `<div class="card"><dl class="kv">
${kv('Series UID', `<span class="mono">${esc(uid)}</span>`)}${kv('Study UID', `<span class="mono">${esc(d.studyInstanceUid)}</span>`)}
${kv('Status', statusCell(d))}${kv('Calling AE', esc(d.callingAeTitle))}
${kv('Instances received', esc(d.instancesReceived))}${kv('Slices scored', d.sliceCount !== undefined ? esc(d.sliceCount) : '')}
${kv('Score', d.score !== undefined ? `${esc(d.score.toFixed(4))}${d.threshold !== undefined ? ` <span class="muted">(threshold ${esc(d.threshold)})</span>` : ''}` : '')}
${kv('Category', d.category ? `<span class="c-${esc(d.category)}">${esc(d.category)}</span>` : '')}
${kv('Model', d.model ? esc(`${d.model.name} ${d.model.version}${r ? ` on ${r.provider}` : ''}`) : '')}
${kv('Timings', esc(timingsText(d.timings)))}${kv('First received', esc(fmtTime(d.firstReceivedAt)))}${kv('Last received', esc(fmtTime(d.lastReceivedAt)))}
${kv('Finished', esc(fmtTime(d.finishedAt)))}${kv('Job', d.job ? `<span class="mono">${esc(d.job.id)}</span> (${esc(d.job.state)}, attempts ${esc(d.job.attemptsMade)}${d.job.enqueuedBy ? `, by ${esc(d.job.enqueuedBy)}` : ''})` : d.jobId ? `<span class="mono">${esc(d.jobId)}</span>` : '')}
</dl></div>`;
  const actions = `<div class="actions card">${action('force', 'Force completion', 'Settle now without waiting for the quiet period')}
${action('rescore', 'Re-score', 'Run the model again on the same instances')}${action('resend', 'Re-send', 'Send the latest result objects to every destination again')}</div>`;

  const slices = r?.slices ?? [];
  const chartData = {
    // 1-based slice numbers, as the burned-in text of the heatmaps and the SR say.
    x: slices.map((s) => s.index + 1),
    p: slices.map((s) => s.probability),
    pos: slices.map((s) => s.position),
    threshold: r?.threshold ?? null,
    key: (r?.keySlices ?? []).map((k) => k.index + 1),
  };
  const chart = slices.length
    ? `<h2>Per-slice probability</h2><div id="chart" data-slices="${esc(slices.length)}"></div>
<script type="application/json" id="chart-data">${jsonForScript(chartData)}</script>
<script src="/admin/static/uPlot.iife.min.js"></script><script src="/admin/static/series-chart.js"></script>`
    : '';

  const heatmaps = (r?.outputs ?? []).filter((o) => o.kind === 'heatmap' || o.kind === 'summary');
  const sliceBySop = new Map(slices.map((s) => [s.sopInstanceUid, s]));
  const images = heatmaps.length
    ? `<h2>Heatmaps</h2><div class="heatmaps">${heatmaps
        .map((o) => {
          const s = o.sourceSopInstanceUid ? sliceBySop.get(o.sourceSopInstanceUid) : undefined;
          const cap = o.kind === 'summary'
            ? 'Summary: probability along the scan'
            : s ? `Slice ${s.index + 1}/${slices.length}${s.instanceNumber !== null ? ` (instance ${s.instanceNumber})` : ''}, p = ${s.probability.toFixed(3)}` : 'Heatmap';
          const src = `/api/series/${esc(uid)}/images/${esc(o.sopInstanceUid)}.png`;
          return `<figure class="${o.kind === 'summary' ? 'summary' : ''}"><a href="${src}" target="_blank" rel="noopener"><img class="heatmap" alt="${esc(cap)}" src="${src}" loading="lazy"></a><figcaption>${esc(cap)}</figcaption></figure>`;
        })
        .join('')}</div>`
    : '';
  const sr = x.sr ? `<h2>Structured report</h2>${srHtml(x.sr)}` : x.srError ? `<h2>Structured report</h2><p class="reason">${esc(x.srError)}</p>` : '';

  const dispatchRows = d.dispatch.map((s) => `<tr><td>${esc(s.destination)}</td><td><span class="badge s-${s.status === 'sent' ? 'sent' : s.status === 'failed' ? 'failed' : 'dispatching'}">${esc(s.status)}</span></td>
<td>${esc(s.attempts)}</td><td>${esc(s.instancesSent)}</td><td>${esc(s.warnings)}</td><td>${esc(fmtTime(s.lastAttemptAt))}</td><td>${esc(fmtTime(s.sentAt))}</td><td class="reason">${esc(s.lastError ?? '')}</td></tr>`);
  const attemptRows = d.attempts.map((a) => `<tr><td class="mono nowrap">${esc(fmtTime(a.at))}</td><td>${esc(a.destination)}</td><td>${esc(a.attempt)}</td>
<td><span class="badge s-${a.outcome === 'sent' ? 'sent' : 'failed'}">${esc(a.outcome)}</span></td><td>${esc(a.sent)}</td><td>${esc(a.warnings)}</td><td>${esc(a.failed)}</td><td>${esc(fmtMs(a.ms))}</td><td class="reason">${esc(a.error ?? '')}</td></tr>`);
  const dispatch = `<h2>Dispatch</h2>${dispatchRows.length ? `<table id="dispatch"><thead><tr><th>Destination</th><th>Status</th><th>Attempts</th><th>Sent</th><th>Warnings</th><th>Last attempt</th><th>Sent at</th><th>Last error</th></tr></thead><tbody>${dispatchRows.join('')}</tbody></table>` : '<p class="muted">Nothing sent yet.</p>'}
${attemptRows.length ? `<h2>Dispatch attempts</h2><table id="attempts"><thead><tr><th>At</th><th>Destination</th><th>#</th><th>Outcome</th><th>Sent</th><th>Warnings</th><th>Failed</th><th>Took</th><th>Error</th></tr></thead><tbody>${attemptRows.join('')}</tbody></table>` : ''}`;
  const dropped = r?.dropped.length
    ? `<h2>Instances not scored (${esc(r.dropped.length)})</h2><table><thead><tr><th>SOP Instance UID</th><th>Reason</th></tr></thead><tbody>${r.dropped
        .slice(0, 200)
        .map((x2) => `<tr><td class="mono">${esc(x2.sopInstanceUid ?? '')}</td><td>${esc(x2.reason)}</td></tr>`)
        .join('')}</tbody></table>`
    : '';
  const head = slices.length ? '<link rel="stylesheet" href="/admin/static/uPlot.min.css">' : '';
  const body = `<h1>Series <span class="mono">${esc(shortUid(uid))}</span></h1>${flash}${phi}${summary}${actions}
<p class="notice">NOT FOR DIAGNOSTIC USE</p>${chart}${images}${sr}${dispatch}${dropped}`;
  return layout(`Series ${uid}`, body, { head });
}

export function associationsPage(list: AssociationRecord[]): string {
  const rows = list.map((a) => `<tr><td class="mono">${esc(fmtTime(new Date(a.startedAt).toISOString()))}</td><td>${esc(a.callingAeTitle)}</td><td>${esc(a.calledAeTitle)}</td>
<td class="mono">${esc(a.callingHost)}</td><td>${esc(a.instances)}</td><td>${esc(formatBytes(a.bytes))}</td><td>${esc(fmtMs(a.endedAt - a.startedAt))}</td>
<td><span class="badge ${a.outcome.startsWith('accepted') ? 's-sent' : 's-failed'}">${esc(a.outcome)}</span></td></tr>`);
  const body = `<h1>Associations</h1><p class="muted">The listener's audit trail, newest first.</p>
<table id="associations"><thead><tr><th>Started</th><th>Calling AE</th><th>Called AE</th><th>Host</th><th>Instances</th><th>Bytes</th><th>Duration</th><th>Outcome</th></tr></thead>
<tbody>${rows.join('') || '<tr><td colspan="8" class="muted">No associations recorded.</td></tr>'}</tbody></table>`;
  return layout('Associations', body, { refreshSeconds: 30 });
}

export function formatBytes(n: number): string {
  if (n >= 1 << 30) return `${(n / (1 << 30)).toFixed(2)} GiB`;
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${n} B`;
}

export function notFoundPage(what: string): string {
  return layout('Not found', `<h1>Not found</h1><p>${esc(what)}</p><p><a href="/admin">Back to the series list</a></p>`);
}

/** The chart script (served as /admin/static/series-chart.js): reads #chart-data, draws with uPlot. */
export const SERIES_CHART_JS = `(function(){
  var el=document.getElementById('chart');var src=document.getElementById('chart-data');
  if(!el||!src||typeof uPlot==='undefined'){return;}
  var d=JSON.parse(src.textContent);
  var thr=d.threshold;var keys=new Set(d.key);
  var key=d.x.map(function(x,i){return keys.has(x)?d.p[i]:null;});
  var series=[{label:'slice'},{label:'probability',stroke:'#1d3557',width:2,points:{show:false}},
    {label:'key slices',stroke:'#c0392b',width:0,paths:function(){return null;},points:{show:true,size:8,fill:'#c0392b'}}];
  var data=[d.x,d.p,key];
  if(thr!==null){series.push({label:'threshold',stroke:'#d99a0b',dash:[6,4],width:1,points:{show:false}});data.push(d.x.map(function(){return thr;}));}
  var width=Math.max(320,Math.min(el.clientWidth-16,1200));
  var u=new uPlot({width:width,height:280,series:series,legend:{live:false},scales:{x:{time:false},y:{range:[0,1]}},
    axes:[{label:'slice number (scored order, superior → inferior)'},{label:'probability'}]},data,el);
  el.setAttribute('data-ready','1');
})();`;
