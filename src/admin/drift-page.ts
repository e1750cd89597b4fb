/** The drift watch's dashboard page (/admin/drift): windows, one row per variable, agreement, method. */
import { pText, type DriftReport, type VariableDrift } from '../drift/report.js';
import type { Proportion } from '../validation/metrics.js';
import { esc, layout } from './pages.js';

const LEVEL_TEXT: Record<VariableDrift['level'], string> = {
  stable: 'stable',
  moderate: 'moderate change',
  shift: 'shift',
  'not-enough-studies': 'not enough studies',
};
const LEVEL_CLASS: Record<VariableDrift['level'], string> = {
  stable: 's-sent',
  moderate: 's-scoring',
  shift: 's-failed',
  'not-enough-studies': 's-ignored',
};

const num = (v: number | null, d = 3): string => (v === null ? '—' : v.toFixed(d));
const share = (k: number, n: number): string => (n === 0 ? '—' : `${((100 * k) / n).toFixed(1)} %`);
const prop = (p: Proportion): string =>
  p.value === null
    ? '— (no answers)'
    : `${(p.value * 100).toFixed(1)} % <span class="muted">(${p.k}/${p.n}; 95 % CI ${((p.ci?.[0] ?? 0) * 100).toFixed(1)}–${((p.ci?.[1] ?? 0) * 100).toFixed(1)} %)</span>`;

function binsTable(v: VariableDrift): string {
  if (v.bins.length === 0) return '';
  const rows = v.bins
    .map(
      (b) =>
        `<tr><td>${esc(b.label)}</td><td>${b.reference}</td><td>${share(b.reference, v.reference)}</td><td>${b.current}</td><td>${share(b.current, v.current)}</td></tr>`,
    )
    .join('');
  return `<details><summary>${v.kind === 'categorical' ? 'categories' : 'bins'} (${v.bins.length})</summary><table class="opacity"><thead><tr><th>${v.kind === 'categorical' ? 'category' : 'bin (reference quantiles)'}</th><th>reference</th><th>share</th><th>current</th><th>share</th></tr></thead><tbody>${rows}</tbody></table></details>`;
}

export function driftPage(r: DriftReport | undefined, error?: string): string {
  if (!r) {
    return layout(
      'Drift',
      `<h1>Drift watch</h1><p class="notice">NOT FOR DIAGNOSTIC USE</p><div class="card"><p id="drift-empty">No drift figures yet${error ? `: ${esc(error)}` : ''}.</p></div>`,
    );
  }
  const rows = r.variables
    .map(
      (v) =>
        `<tr data-variable="${esc(v.variable)}" data-level="${esc(v.level)}"><td>${esc(v.title)}<div class="reason">${esc(v.kind === 'categorical' ? 'input, categories' : 'output, continuous')}</div></td>` +
        `<td>${v.reference}</td><td>${v.current}</td><td class="psi">${num(v.psi)}</td><td><span class="badge ${LEVEL_CLASS[v.level]}">${esc(LEVEL_TEXT[v.level])}</span>${v.alarm ? ' <b class="c-likely">alarm</b>' : ''}</td>` +
        `<td>${v.psiPValue === null ? '—' : esc(pText(v.psiPValue))}</td><td>${v.ks ? num(v.ks.statistic) : '—'}</td><td>${v.ks ? `${esc(pText(v.ks.pValue))} <span class="muted">${esc(v.ks.method)}</span>` : '—'}</td>` +
        `<td>${v.note ? `<div class="reason">${esc(v.note)}</div>` : ''}${binsTable(v)}</td></tr>`,
    )
    .join('');
  const a = r.agreement;
  const w = r.windows;
  const win = (x: typeof w.reference): string =>
    `${esc(x.description)}: <b>${x.studies}</b> studies${x.from ? ` <span class="muted">(${esc(x.from.slice(0, 10))} to ${esc((x.to ?? '').slice(0, 10))}; model ${esc(x.modelVersions.join(', '))})</span>` : ''}`;
  const body = `<h1>Drift watch</h1><p class="notice">${esc(r.notice)}</p>
<p><a href="/api/drift">JSON</a> · <a href="/metrics">Prometheus gauges</a> (mlsam_drift_*) · computed ${esc(r.generatedAt.replace('T', ' ').slice(0, 19))} UTC</p>
<div class="card"><dl class="kv"><dt>Reference</dt><dd id="window-reference">${win(w.reference)}</dd><dt>Current</dt><dd id="window-current">${win(w.current)}</dd></dl></div>
${r.warnings.map((t) => `<p class="card info warning">Note: ${esc(t)}.</p>`).join('')}
${r.alarms.length ? '' : '<p class="card info" id="drift-ok">No alarm: every variable with enough studies is in its stable band or within chance, and the agreement has not fallen.</p>'}
<h2>Inputs and outputs</h2><table id="drift"><thead><tr><th>Variable</th><th>Reference</th><th>Current</th><th>PSI</th><th>Band</th><th>p (chance)</th><th>KS D</th><th>KS p</th><th></th></tr></thead><tbody>${rows}</tbody></table>
<h2>Agreement with radiologists</h2><table id="agreement" class="opacity"><tbody>
<tr><td>Reference window</td><td>${prop(a.reference)}</td></tr><tr><td>Current window</td><td>${prop(a.current)}</td></tr>
${a.floor !== null ? `<tr><td>Floor</td><td>${(a.floor * 100).toFixed(0)} %</td></tr>` : ''}
${a.difference ? `<tr><td>Current − reference</td><td>${(a.difference.value * 100).toFixed(1)} points <span class="muted">(Newcombe 95 % CI ${(a.difference.ci[0] * 100).toFixed(1)} to ${(a.difference.ci[1] * 100).toFixed(1)})</span></td></tr>` : ''}
<tr><td>Status</td><td id="agreement-status"><span class="badge ${a.status === 'fallen' ? 's-failed' : a.status === 'ok' ? 's-sent' : 's-ignored'}">${esc(a.status === 'not-enough-answers' ? 'not enough answers' : a.status)}</span></td></tr></tbody></table>
<h2>Method</h2><ul class="note"><li>${esc(r.method.psi)}</li><li>Bands: ${esc(r.method.bands)}.</li><li>Alarm: ${esc(r.method.chance)}.</li><li>KS: ${esc(r.method.ks)}.</li><li>Agreement: ${esc(r.method.agreement)}.</li><li>Fewer than ${r.method.minStudies} studies with a value in either window: not enough studies, no figure, no alarm.</li></ul>`;
  return layout('Drift', body);
}
