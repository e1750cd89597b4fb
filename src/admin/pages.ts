/**
 * Server-rendered HTML of the dashboard: no framework, every value escaped (esc) or embedded as
 * JSON that cannot close its <script> element (jsonForScript).
 */
import { dirname } from 'node:path';
import type { AssociationRecord } from '../dicom/received-instance.js';
import { bandsLegend, categoryBand } from '../model/category-band.js';
import type { OpacityMeasure, ResultRecord, SeriesOpacity } from '../contracts/result-record.js';
import type { ActionName } from './actions.js';
import { patternSection } from './pattern-section.js';
import { zonesHtml } from './zones-view.js';
import type { SeriesDetail, SeriesSummary, StageTimings } from './data.js';
import type { SrDocument, SrNode } from './dicom-view.js';
import { srReportHtml } from './sr-report.js';
import { sopClassName, transferSyntaxName } from '../dicom/uids.js';
import type { WorkerInfo } from '../stores/worker-registry.js';

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
.s-scored,.s-sent{background:#dcf5e3;color:#11663a}.s-failed{background:#fde2e1;color:#a61b1b}.s-ignored,.s-not-scored{background:#ececec;color:#555}.s-held{background:#ede4ff;color:#5b21b6}
.silent-banner{background:#5b21b6;color:#fff;padding:8px 12px;margin:0 0 12px;font-weight:600;border-radius:4px}.silent-banner a{color:#fff}
.c-likely{color:#a61b1b;font-weight:600}.c-indeterminate{color:#92600a;font-weight:600}.c-unlikely{color:#11663a;font-weight:600}
.reason{color:#6b7280;font-size:12px}.muted{color:#6b7280}.bar{height:6px;background:#e5e8eb;border-radius:3px;width:90px;margin-top:3px}.bar>div{height:6px;background:#d99a0b;border-radius:3px}
.card{background:#fff;padding:12px 16px;box-shadow:0 1px 2px rgba(0,0,0,.08);margin-bottom:12px}
dl.kv{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px;margin:0}dl.kv dt{color:#6b7280}dl.kv dd{margin:0}
.actions form{display:inline-block;margin-right:8px}button{padding:6px 12px;border:1px solid #1d3557;background:#fff;color:#1d3557;border-radius:4px;cursor:pointer;font-weight:600}
button:hover{background:#1d3557;color:#fff}.flash{padding:8px 12px;margin-bottom:12px;border-radius:4px}.flash.ok{background:#dcf5e3}.flash.err{background:#fde2e1}
.heatmaps{display:flex;flex-wrap:wrap;gap:12px}.heatmaps figure{margin:0;background:#fff;padding:8px;box-shadow:0 1px 2px rgba(0,0,0,.08)}
.heatmaps img{display:block;width:300px;height:auto}.heatmaps figure.summary img{width:600px}.heatmaps figcaption{font-size:12px;color:#4a5560;margin-top:4px}
pre.sr{background:#fff;padding:12px;box-shadow:0 1px 2px rgba(0,0,0,.08);overflow:auto;font-size:12px;margin:0}
#sr h3{margin:0 0 4px;display:inline}#sr h4{margin:12px 0 4px;font-size:14px}#sr .sr-note{margin:4px 0}#sr details{margin-top:12px}
#chart .u-legend th{text-transform:none;font-size:12px;background:none}#chart{background:#fff;padding:8px;box-shadow:0 1px 2px rgba(0,0,0,.08);min-height:300px}.phi{background:#fff8e1;border-left:3px solid #d99a0b}
header .who{margin-left:auto;color:#dfe8f3;font-size:13px}header form.logout{display:inline}header form.logout button{padding:3px 10px;background:transparent;color:#fff;border-color:#dfe8f3}
.bar-top{background:#1d3557;color:#fff;padding:10px 20px;font-weight:700}input[type=password],input[name=username]{padding:6px;width:100%;font:inherit}
.notice{font-size:12px;color:#a61b1b;font-weight:600}.nowrap{white-space:nowrap}
.note{font-size:12px;color:#6b7280;margin:6px 0}.info{background:#eef6ff;border-left:3px solid #1d4ed8}table.opacity{width:auto}table.opacity td,table.opacity th{text-align:right}table.opacity td:first-child,table.opacity th:first-child{text-align:left}
`;

export interface LayoutOptions {
  /** Plain meta refresh (pages without live updates). */
  refreshSeconds?: number;
  head?: string;
  /**
   * Server-sent events URL: the page's live parts are replaced as they change (static/live.js);
   * without JavaScript the page reloads every 10 s instead.
   */
  live?: string;
  /** Without the navigation (the login page). */
  bare?: boolean;
}

export function layout(title: string, body: string, opts: LayoutOptions = {}): string {
  const refresh = opts.refreshSeconds ? `<meta http-equiv="refresh" content="${opts.refreshSeconds}">` : '';
  const live = opts.live ? `<noscript><meta http-equiv="refresh" content="10"></noscript>` : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
${refresh}${live}
<title>${esc(title)} · mlsam-node</title><style>${CSS}</style>${opts.head ?? ''}</head>
<body${opts.live ? ` data-live="${esc(opts.live)}"` : ''}>${
    opts.bare
      ? '<div class="bar-top"><span class="brand">mlsam-node</span></div>'
      : `<header><span class="brand">mlsam-node</span><a href="/admin/studies">Studies</a><a href="/admin">Series</a><a href="/admin/associations">Associations</a><a href="/admin/targets">Targets</a><a href="/admin/dispatch">Dispatch mode</a>
<a href="/admin/review">Review</a><a href="/admin/validation">Validation</a><a href="/admin/drift">Drift</a><a href="/admin/queues">Queues</a><a href="/metrics">Metrics</a><a href="/readyz">Ready?</a></header>`
  }
<main>${body}</main>${opts.live ? '<script src="/admin/static/live.js"></script>' : ''}</body></html>`;
}

const fmtMs = (ms: number | undefined): string =>
  ms === undefined
    ? ''
    : ms >= 10_000
      ? `${(ms / 1000).toFixed(0)} s`
      : ms >= 1000
        ? `${(ms / 1000).toFixed(1)} s`
        : `${Math.round(ms)} ms`;

export function timingsText(t: StageTimings): string {
  const parts: [string, number | undefined][] = [
    ['wait', t.waitMs],
    ['read', t.readMs],
    ['decode', t.decodeMs],
    ['lungs', t.lungMs],
    ['preprocess', t.preprocessMs],
    ['infer', t.inferMs],
    ['aggregate', t.aggregateMs],
    ['key slices', t.keySlicesMs],
    ['results', t.resultsMs],
    ['total', t.totalMs],
    ['send', t.dispatchMs],
  ];
  return joinTimings(parts);
}

/** `name time · name time …` of the stages that have a time. */
function joinTimings(parts: [string, number | undefined][]): string {
  return parts
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k} ${fmtMs(v)}`)
    .join(' · ');
}

/** Why the stage times do not add up (shown under every table or list of them). */
export const TIMINGS_NOTE =
  'Stage times overlap: read, decode, lungs (segmentation and opacity) and preprocess run in worker threads while ONNX Runtime infers the previous batch, ' +
  'so they (busy time summed over the threads) can add up to more than total. ' +
  'wait is from the last instance to the job start (it includes the quiet period); total is the inference job (scoring and result objects); send comes after it.';

/** The list's short form: waited, took, sent (every stage in the cell's title and on the series page). */
export function timingsShort(t: StageTimings): string {
  const parts: [string, number | undefined][] = [
    ['wait', t.waitMs],
    ['total', t.totalMs],
    ['send', t.dispatchMs],
  ];
  return joinTimings(parts);
}

const fmtTime = (s: string | undefined): string => (s ? s.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '');
const shortUid = (uid: string): string => (uid.length > 28 ? `…${uid.slice(-26)}` : uid);

export function statusCell(s: SeriesSummary): string {
  let extra = '';
  if (s.status === 'scoring' && s.progress !== undefined) {
    extra = `<div class="bar" title="${esc(Math.round(s.progress))}%"><div style="width:${esc(Math.round(s.progress))}%"></div></div>`;
  }
  if (s.status === 'waiting' && s.quietRemainingSeconds !== undefined)
    extra = `<div class="reason">${esc(s.quietRemainingSeconds)} s left</div>`;
  if (s.reason) extra += `<div class="reason">${esc(s.reason)}</div>`;
  return `<span class="badge s-${esc(s.status)}">${esc(s.statusText)}${s.status === 'scoring' && s.progress !== undefined ? ` ${esc(Math.round(s.progress))}%` : ''}</span>${extra}`;
}

function workersLine(workers: readonly WorkerInfo[]): string {
  if (workers.length === 0) return '<p class="muted" id="workers">No inference worker is running.</p>';
  const items = workers.map(
    (w) =>
      `<span class="nowrap worker">${esc(w.provider.toUpperCase())} on host <b>${esc(w.host)}</b> <span class="muted">(pid ${esc(w.pid)}, ${esc(w.model)} ${esc(w.version)}, ${esc(w.concurrency)} series at once)</span></span>`,
  );
  return `<p id="workers">Inference workers (execution provider on host): ${items.join(' · ')}</p>`;
}

/** DICOM DA (YYYYMMDD) as YYYY-MM-DD. */
export const fmtDate = (da: string | undefined): string =>
  da && /^\d{8}$/.test(da) ? `${da.slice(0, 4)}-${da.slice(4, 6)}-${da.slice(6)}` : (da ?? '');

export interface SeriesListOptions {
  limit: number;
  workers?: readonly WorkerInfo[];
  /** Patient name and ID columns (config.http.showPhi). */
  showPhi: boolean;
  /** Names of the configured destinations. */
  destinations: readonly string[];
  /** Where result objects stay (config spool.dir + /results). */
  resultsDir: string;
}

const listColumns = (showPhi: boolean): string[] => [
  'Series',
  'Study date',
  'Description',
  'Modality',
  'Series #',
  ...(showPhi ? ['Patient'] : []),
  'Calling AE',
  'Status',
  'Slices',
  'Score',
  'Category',
  'Timings',
  'Last received',
];

/** The category with the band of scores it covers: "indeterminate (0.35–0.65)" (issue 26: a score above the threshold can be indeterminate). */
function categoryHtml(s: Pick<SeriesSummary, 'category' | 'threshold' | 'indeterminateMargin'>): string {
  if (!s.category) return '';
  const band =
    s.threshold !== undefined && s.indeterminateMargin !== undefined
      ? ` <span class="muted band">(${esc(categoryBand(s.category, { threshold: s.threshold, indeterminateMargin: s.indeterminateMargin }))})</span>`
      : '';
  return `<span class="c-${esc(s.category)}">${esc(s.category)}</span>${band}`;
}

/** The rows of the series list (the <tbody> the live updates replace). */
export function seriesRows(list: readonly SeriesSummary[], showPhi: boolean): string {
  const rows = list.map(
    (s) => `<tr data-series-uid="${esc(s.seriesInstanceUid)}" data-status="${esc(s.status)}">
<td class="mono nowrap"><a href="/admin/series/${esc(s.seriesInstanceUid)}" title="${esc(s.seriesInstanceUid)}">${esc(shortUid(s.seriesInstanceUid))}</a></td>
<td class="nowrap">${esc(fmtDate(s.info.studyDate))}</td><td>${esc(s.info.seriesDescription ?? '')}</td><td>${esc(s.info.modality ?? '')}</td><td>${esc(s.info.seriesNumber ?? '')}</td>
${showPhi ? `<td class="phi">${s.patient ? `${esc(s.patient.patientName)} <span class="muted">${esc(s.patient.patientId)}</span>` : ''}</td>` : ''}
<td>${esc(s.callingAeTitle)}</td><td>${statusCell(s)}</td>
<td class="nowrap">${s.sliceCount !== undefined ? `${esc(s.sliceCount)} <span class="muted">/ ${esc(s.instancesReceived)}</span>` : esc(s.instancesReceived)}</td>
<td>${s.score !== undefined ? esc(s.score.toFixed(3)) : ''}</td>
<td class="nowrap">${categoryHtml(s)}</td>
<td class="reason" title="${esc(timingsText(s.timings))}">${esc(timingsShort(s.timings))}</td>
<td class="mono nowrap">${esc(fmtTime(s.lastReceivedAt ?? s.finishedAt))}</td></tr>`,
  );
  return rows.join('\n') || `<tr><td colspan="${listColumns(showPhi).length}" class="muted">No series received yet.</td></tr>`;
}

/** Where results go: the destinations, or (none configured) the spool folder they stay in. */
function destinationsLine(destinations: readonly string[], resultsDir: string): string {
  return destinations.length
    ? `<p id="destinations">Results are sent to: ${destinations.map((d) => `<b>${esc(d)}</b>`).join(', ')}.</p>`
    : `<p class="card info" id="destinations">No destinations are configured: results (SR, KOS, SEG, Secondary Captures, presentation states) stay in the spool, under <span class="mono">${esc(resultsDir)}</span> (<a href="/api/results/undispatched">list of files</a>). Add a destination (config key <span class="mono">destinations</span>) to have them sent back to your PACS.</p>`;
}

export function seriesListPage(list: SeriesSummary[], opts: SeriesListOptions): string {
  const cols = listColumns(opts.showPhi);
  const body = `<h1>Series</h1>
${workersLine(opts.workers ?? [])}
${destinationsLine(opts.destinations, opts.resultsDir)}
<p class="muted">The ${esc(opts.limit)} most recent series, updated live (every second while a series is received, queued, scored or sent). Slices: scored / received.</p>
<table id="series"><thead><tr>${cols.map((c) => `<th${c === 'Timings' ? ` title="${esc(TIMINGS_NOTE)}"` : ''}>${esc(c)}</th>`).join('')}</tr></thead>
<tbody id="series-rows">${seriesRows(list, opts.showPhi)}</tbody></table>
<p class="note" id="timings-note">Timings: hover a cell for every stage. ${esc(TIMINGS_NOTE)}</p>`;
  return layout('Series', body, { live: `/admin/live?limit=${opts.limit}` });
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
  return srReportHtml(doc, srNodes(doc.content));
}

export interface SeriesPageExtras {
  sr?: SrDocument;
  srError?: string;
  flash?: { ok: boolean; message: string };
  showPhi: boolean;
  /** Names of the configured destinations. */
  destinations: readonly string[];
}

/** The per-slice chart's data (read by static/series-chart.js). */
export interface ChartData {
  /** 1-based slice numbers in scored order, as the heatmaps' burned-in text and the SR say. */
  slice: number[];
  /** mm along the slice normal (null where unknown): the x axis when every slice has one, as on the summary image. */
  pos: (number | null)[];
  p: number[];
  /** Lung opacity, % of the slice's lung area (null where not measured). */
  opacity: (number | null)[] | null;
  /** Slice numbers with too little lung to drive the score. */
  ineligible: number[];
  threshold: number | null;
  key: number[];
}

export function chartData(r: ResultRecord | undefined): ChartData {
  const slices = r?.slices ?? [];
  const hasOpacity = slices.some((s) => s.opacityPercent !== undefined);
  return {
    slice: slices.map((s) => s.index + 1),
    pos: slices.map((s) => s.position),
    p: slices.map((s) => s.probability),
    opacity: hasOpacity ? slices.map((s) => s.opacityPercent ?? null) : null,
    ineligible: slices.filter((s) => s.eligible === false).map((s) => s.index + 1),
    threshold: r?.threshold ?? null,
    key: (r?.keySlices ?? []).map((k) => k.index + 1),
  };
}

const pct = (v: number): string => `${v.toFixed(1)} %`;

/** Slice thickness and the ground-glass opening the measurement used (thick slices: a wider opening). */
function thicknessNote(o: SeriesOpacity): string {
  if (o.sliceThicknessMm === undefined) return '';
  const open = o.groundGlassOpenMm !== undefined ? `, ground-glass opening ${esc(o.groundGlassOpenMm)} mm` : '';
  return ` Measured on ${esc(o.sliceThicknessMm)} mm slices${open}.`;
}

/** Lung volumes and opacity burden per lung (records from the HU opacity quantification). */
function opacityTable(o: SeriesOpacity): string {
  const row = (label: string, m: OpacityMeasure): string =>
    `<tr><td>${esc(label)}</td><td>${esc(m.lungMl.toFixed(0))}</td><td>${esc(m.opacityMl.toFixed(1))}</td><td>${esc(pct(m.percentOpacity))}</td><td>${esc(pct(m.percentHighOpacity))}</td></tr>`;
  return `<h2>Lung opacity</h2><table id="opacity" class="opacity"><thead><tr><th>Lung</th><th>Lung volume (mL)</th><th>Opacity (mL)</th><th>Opacity</th><th>High opacity</th></tr></thead>
<tbody>${row('both', o.total)}${row('right', o.right)}${row('left', o.left)}</tbody></table>
<p class="note">Opacity: ground glass and consolidation, ${esc(o.opacityHu[0])} to ${esc(o.opacityHu[1])} HU inside the lung mask, vessels removed; high opacity: ${esc(o.highOpacityHu[0])} to ${esc(o.highOpacityHu[1])} HU. Percentages of that lung's volume (method ${esc(o.method)}).${thicknessNote(o)}</p>`;
}

/** The status shown on the series page (the part its live updates replace). */
export function seriesStatusHtml(d: SeriesSummary): string {
  return statusCell(d);
}

/** Which actions make sense in a state: force only while the series may still grow, re-score once settled, re-send with something to send. */
export function availableActions(d: SeriesDetail, destinations: readonly string[]): ActionName[] {
  const out: ActionName[] = [];
  if (d.status === 'receiving' || d.status === 'waiting') out.push('force');
  if (d.tracker && !['receiving', 'waiting', 'queued', 'scoring'].includes(d.status)) out.push('rescore');
  if (destinations.length > 0 && d.result?.outputs?.length && ['scored', 'sent', 'held', 'failed', 'dispatching'].includes(d.status))
    out.push('resend');
  return out;
}

const ACTION_LABELS: Record<ActionName, [string, string]> = {
  force: ['Force completion', 'Settle now without waiting for the quiet period'],
  rescore: ['Re-score', 'Run the model again on the same instances'],
  resend: ['Re-send', 'Send the latest result objects to every destination again'],
};

export function seriesPage(d: SeriesDetail, x: SeriesPageExtras): string {
  const r = d.result;
  const uid = d.seriesInstanceUid;
  const kv = (k: string, v: string): string => (v ? `<dt>${esc(k)}</dt><dd>${v}</dd>` : '');
  const phi =
    x.showPhi && d.patient
      ? `<div class="card phi"><dl class="kv">${kv('Patient name', esc(d.patient.patientName))}${kv('Patient ID', esc(d.patient.patientId))}</dl></div>`
      : '';
  const flash = x.flash ? `<div class="flash ${x.flash.ok ? 'ok' : 'err'}">${esc(x.flash.message)}</div>` : '';
  const fusion = r?.fusion
    ? ` <span class="muted" id="fusion">fusion ${esc(r.fusion)}${r.fusion === 'cnn+opacity' && r.cnnScore !== undefined ? `, CNN alone ${esc(r.cnnScore.toFixed(3))}` : ''}</span>`
    : '';
  const summary = `<div class="card"><dl class="kv">
${kv('Series UID', `<span class="mono">${esc(uid)}</span>`)}${kv('Study UID', `<span class="mono">${esc(d.studyInstanceUid)}</span>`)}
${kv('Study date', esc(fmtDate(d.info.studyDate)))}${kv('Series', esc([d.info.seriesNumber ? `#${d.info.seriesNumber}` : '', d.info.seriesDescription ?? '', d.info.modality ?? ''].filter(Boolean).join(' · ')))}
${kv('Status', `<span id="series-status">${seriesStatusHtml(d)}</span>`)}${kv('Calling AE', esc(d.callingAeTitle))}
${kv('Instances received', esc(d.instancesReceived))}${kv('Slices scored', d.sliceCount !== undefined ? esc(d.sliceCount) : '')}
${kv('Score', d.score !== undefined ? `<span id="score-band">${esc(d.score.toFixed(4))}${d.category ? ` — ${categoryHtml(d)}` : ''}</span>${d.threshold !== undefined && d.indeterminateMargin !== undefined ? ` <div class="note" id="bands">${esc(bandsLegend({ threshold: d.threshold, indeterminateMargin: d.indeterminateMargin }))} (threshold ${esc(d.threshold)} ± ${esc(d.indeterminateMargin)})</div>` : ''}${fusion}` : '')}
${kv('Category', d.category ? categoryHtml(d) : '')}
${kv('Model', d.model ? esc(`${d.model.name} ${d.model.version}${r ? ` on ${r.provider}` : ''}`) : '')}
${kv('Timings', d.timings.totalMs !== undefined || d.timings.waitMs !== undefined ? `${esc(timingsText(d.timings))}<div class="note">${esc(TIMINGS_NOTE)}</div>` : '')}
${kv('First received', esc(fmtTime(d.firstReceivedAt)))}${kv('Last received', esc(fmtTime(d.lastReceivedAt)))}
${kv('Finished', esc(fmtTime(d.finishedAt)))}${kv('Job', d.job ? `<span class="mono">${esc(d.job.id)}</span> (${esc(d.job.state)}, attempts ${esc(d.job.attemptsMade)}${d.job.enqueuedBy ? `, by ${esc(d.job.enqueuedBy)}` : ''})` : d.jobId ? `<span class="mono">${esc(d.jobId)}</span>` : '')}
</dl></div>`;
  const offered = availableActions(d, x.destinations);
  const actions = `<div class="actions card" id="actions">${
    offered.length
      ? offered
          .map(
            (a) =>
              `<form method="post" action="/admin/series/${esc(uid)}/${esc(a)}"><button type="submit" title="${esc(ACTION_LABELS[a][1])}">${esc(ACTION_LABELS[a][0])}</button></form>`,
          )
          .join('\n')
      : `<span class="muted">No actions while the series is ${esc(d.statusText)}.</span>`
  }</div>`;

  const slices = r?.slices ?? [];
  const cd = chartData(r);
  const chart = slices.length
    ? `<h2>Per-slice probability${cd.opacity ? ' and lung opacity' : ''}</h2><div id="chart" data-slices="${esc(slices.length)}"></div>
<p class="note">${cd.pos.every((p) => p !== null) && slices.length > 1 ? 'x: position along the scan in mm along the slice normal, superior on the left (as on the summary image); the legend also names the slice number. ' : 'x: slice number in scored order, superior first. '}${cd.opacity ? "Right axis: lung opacity, % of the slice's lung area, scaled to the eligible slices. " : ''}${cd.ineligible.length ? `Grey: ${esc(cd.ineligible.length)} slice(s) with too little lung to count (they do not drive the score and are never key slices; their opacity, over a few mm² of lung, can read high and is cut off above the axis).` : ''}</p>
<script type="application/json" id="chart-data">${jsonForScript(cd)}</script>
<script src="/admin/static/uPlot.iife.min.js"></script><script src="/admin/static/series-chart.js"></script>`
    : '';
  const opacity =
    (r?.opacity ? opacityTable(r.opacity) : '') + (r?.zones ? zonesHtml(r.zones) : '') + (r?.pattern ? patternSection(r.pattern) : '');

  const heatmaps = (r?.outputs ?? []).filter((o) => o.kind === 'heatmap' || o.kind === 'summary');
  const sliceBySop = new Map(slices.map((s) => [s.sopInstanceUid, s]));
  const images = heatmaps.length
    ? `<h2>Heatmaps</h2><div class="heatmaps">${heatmaps
        .map((o) => {
          const s = o.sourceSopInstanceUid ? sliceBySop.get(o.sourceSopInstanceUid) : undefined;
          const cap =
            o.kind === 'summary'
              ? 'Summary: probability along the scan'
              : s
                ? `Slice ${s.index + 1}/${slices.length}${s.instanceNumber !== null ? ` (instance ${s.instanceNumber})` : ''}, p = ${s.probability.toFixed(3)}${s.opacityPercent !== undefined ? `, opacity ${pct(s.opacityPercent)}` : ''}`
                : 'Heatmap';
          const src = `/api/series/${esc(uid)}/images/${esc(o.sopInstanceUid)}.png`;
          return `<figure class="${o.kind === 'summary' ? 'summary' : ''}"><a href="${src}" target="_blank" rel="noopener"><img class="heatmap" alt="${esc(cap)}" src="${src}" loading="lazy"></a><figcaption>${esc(cap)}</figcaption></figure>`;
        })
        .join('')}</div>`
    : '';
  const sr = x.sr
    ? `<h2>Structured report</h2>${srHtml(x.sr)}`
    : x.srError
      ? `<h2>Structured report</h2><p class="reason">${esc(x.srError)}</p>`
      : '';

  const dispatchRows = d.dispatch.map(
    (
      s,
    ) => `<tr><td>${esc(s.destination)}</td><td><span class="badge s-${s.status === 'sent' ? 'sent' : s.status === 'failed' ? 'failed' : s.status === 'held' || s.status === 'withheld' ? 'held' : 'dispatching'}">${esc(s.status)}</span></td>
<td>${esc(s.attempts)}</td><td>${esc(s.instancesSent)}</td><td>${esc(s.warnings)}</td><td>${esc(fmtTime(s.lastAttemptAt))}</td><td>${esc(fmtTime(s.sentAt))}</td><td class="reason">${esc(s.lastError ?? '')}</td></tr>`,
  );
  const attemptRows = d.attempts.map(
    (a) => `<tr><td class="mono nowrap">${esc(fmtTime(a.at))}</td><td>${esc(a.destination)}</td><td>${esc(a.attempt)}</td>
<td><span class="badge s-${a.outcome === 'sent' ? 'sent' : 'failed'}">${esc(a.outcome)}</span></td><td>${esc(a.sent)}</td><td>${esc(a.warnings)}</td><td>${esc(a.failed)}</td><td>${esc(fmtMs(a.ms))}</td><td class="reason">${esc(a.error ?? '')}</td></tr>`,
  );
  const resultsDir = r?.outputs?.[0] ? dirname(r.outputs[0].path) : undefined;
  const nothingSent =
    x.destinations.length === 0
      ? `<p class="card info" id="dispatch-note">No destinations are configured: the results stay in the spool${resultsDir ? `, in <span class="mono">${esc(resultsDir)}</span> (${esc(r?.outputs?.length ?? 0)} files)` : ''}. Add a destination (config key <span class="mono">destinations</span>) to have them sent to your PACS.</p>`
      : `<p class="muted" id="dispatch-note">${r?.outputs?.length ? `Not sent yet to ${esc(x.destinations.join(', '))}.` : 'No result objects to send yet.'}</p>`;
  const dispatch = `<h2>Dispatch</h2>${dispatchRows.length ? `<table id="dispatch"><thead><tr><th>Destination</th><th>Status</th><th>Attempts</th><th>Sent</th><th>Warnings</th><th>Last attempt</th><th>Sent at</th><th>Last error</th></tr></thead><tbody>${dispatchRows.join('')}</tbody></table>` : nothingSent}
${attemptRows.length ? `<h2>Dispatch attempts</h2><table id="attempts"><thead><tr><th>At</th><th>Destination</th><th>#</th><th>Outcome</th><th>Sent</th><th>Warnings</th><th>Failed</th><th>Took</th><th>Error</th></tr></thead><tbody>${attemptRows.join('')}</tbody></table>` : ''}`;
  const dropped = r?.dropped.length
    ? `<h2>Instances not scored (${esc(r.dropped.length)})</h2><table><thead><tr><th>SOP Instance UID</th><th>Reason</th></tr></thead><tbody>${r.dropped
        .slice(0, 200)
        .map((x2) => `<tr><td class="mono">${esc(x2.sopInstanceUid ?? '')}</td><td>${esc(x2.reason)}</td></tr>`)
        .join('')}</tbody></table>`
    : '';
  const head = slices.length ? '<link rel="stylesheet" href="/admin/static/uPlot.min.css">' : '';
  const body = `<h1>Series <span class="mono">${esc(shortUid(uid))}</span>${d.info.seriesDescription ? ` <span class="muted">${esc(d.info.seriesDescription)}</span>` : ''}</h1>${flash}${phi}${summary}${actions}
<p class="notice">NOT FOR DIAGNOSTIC USE</p>${chart}${opacity}${images}${sr}${dispatch}${dropped}`;
  return layout(`Series ${uid}`, body, { head, live: `/admin/series/${uid}/live?status=${encodeURIComponent(d.status)}` });
}

/** What an association did: C-ECHO (verification), C-STORE (instances), both, or nothing. */
export function associationServices(a: AssociationRecord): string {
  const parts: string[] = [];
  if (a.echoes) parts.push(a.echoes > 1 ? `C-ECHO ×${a.echoes}` : 'C-ECHO');
  if (a.instances > 0) {
    parts.push(
      `C-STORE ${a.instances} instance${a.instances === 1 ? '' : 's'}${a.unscored ? ` (${a.unscored} of SOP classes stored unscored)` : ''}`,
    );
  }
  const refused = refusedText(a);
  if (parts.length) return parts.join(' + ') + (refused ? `; ${refused}` : '');
  // An SCU left with no accepted context often aborts: the refusal is still the story.
  if (refused) return `nothing stored: ${refused}`;
  if (!a.outcome.startsWith('accepted')) return '—';
  return a.echoes === undefined ? 'no instances' : 'nothing (no request)';
}

/** "refused MR Image Storage (SOP class not supported), …": the presentation contexts we said no to. */
export function refusedText(a: AssociationRecord): string {
  if (!a.refused?.length) return '';
  const shown = 3;
  const more = a.refused.length - shown + (a.refusedMore ?? 0);
  return `refused ${a.refused
    .slice(0, shown)
    .map(
      (r) =>
        `${sopClassName(r.sopClassUid)} (${r.reason}${r.reason.startsWith('none of the transfer') ? `: ${r.transferSyntaxUids.map(transferSyntaxName).join(', ')}` : ''})`,
    )
    .join(', ')}${more > 0 ? ` and ${more} more SOP classes the peer proposed` : ''}`;
}

export function associationsPage(list: AssociationRecord[]): string {
  const rows = list.map(
    (
      a,
    ) => `<tr><td class="mono">${esc(fmtTime(new Date(a.startedAt).toISOString()))}</td><td>${esc(a.callingAeTitle)}</td><td>${esc(a.calledAeTitle)}</td>
<td class="mono">${esc(a.callingHost)}</td><td class="service"${a.refused?.length ? ` title="${esc(`Refused: ${a.refused.map((r) => `${sopClassName(r.sopClassUid)} (${r.reason})`).join('; ')}`)}"` : ''}>${esc(associationServices(a))}</td><td>${esc(formatBytes(a.bytes))}</td><td>${esc(fmtMs(a.endedAt - a.startedAt))}</td>
<td><span class="badge ${a.outcome.startsWith('accepted') ? 's-sent' : 's-failed'}">${esc(a.outcome)}</span></td></tr>`,
  );
  const body = `<h1>Associations</h1><p class="muted">The listener's audit trail, newest first. C-ECHO is a verification (a PACS or an admin checking the node answers); C-STORE sends instances.</p>
<table id="associations"><thead><tr><th>Started</th><th>Calling AE</th><th>Called AE</th><th>Host</th><th>Service</th><th>Bytes</th><th>Duration</th><th>Outcome</th></tr></thead>
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
