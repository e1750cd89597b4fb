/**
 * The validation report as a self-contained HTML file (inline CSS and SVG pictures, no script, no
 * outside resource: it opens from disk or an e-mail) and as CSV (one row per figure).
 */
import type { Proportion } from './metrics.js';
import type { GroupReport, ValidationReport } from './report.js';

export function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

const pct = (v: number | null): string => (v === null ? '—' : `${(v * 100).toFixed(1)} %`);
const ci = (c: [number, number] | null): string => (c ? `${(c[0] * 100).toFixed(1)}–${(c[1] * 100).toFixed(1)} %` : '—');
const prop = (p: Proportion): string => `${pct(p.value)} <span class="ci">(${p.k}/${p.n}; 95 % CI ${ci(p.ci)})</span>`;
const num3 = (v: number | null): string => (v === null ? '—' : v.toFixed(3));

const W = 320;
const H = 320;
const PAD = 40;
const sx = (x: number): number => PAD + x * (W - 2 * PAD);
const sy = (y: number): number => H - PAD - y * (H - 2 * PAD);

function axes(xLabel: string, yLabel: string): string {
  const ticks = [0, 0.25, 0.5, 0.75, 1]
    .map(
      (t) =>
        `<line x1="${sx(t)}" y1="${sy(0)}" x2="${sx(t)}" y2="${sy(0) + 4}" stroke="#333"/><text x="${sx(t)}" y="${sy(0) + 16}" text-anchor="middle">${t}</text>` +
        `<line x1="${sx(0) - 4}" y1="${sy(t)}" x2="${sx(0)}" y2="${sy(t)}" stroke="#333"/><text x="${sx(0) - 7}" y="${sy(t) + 4}" text-anchor="end">${t}</text>`,
    )
    .join('');
  return (
    `<rect x="${sx(0)}" y="${sy(1)}" width="${sx(1) - sx(0)}" height="${sy(0) - sy(1)}" fill="none" stroke="#333"/>${ticks}` +
    `<text x="${(sx(0) + sx(1)) / 2}" y="${H - 6}" text-anchor="middle">${esc(xLabel)}</text>` +
    `<text x="12" y="${(sy(0) + sy(1)) / 2}" text-anchor="middle" transform="rotate(-90 12 ${(sy(0) + sy(1)) / 2})">${esc(yLabel)}</text>` +
    `<line x1="${sx(0)}" y1="${sy(0)}" x2="${sx(1)}" y2="${sy(1)}" stroke="#aaa" stroke-dasharray="4 4"/>`
  );
}

export function rocSvg(r: ValidationReport): string {
  const pts = r.roc.map((p) => `${sx(p.fpr).toFixed(1)},${sy(p.tpr).toFixed(1)}`).join(' ');
  const op = r.operatingPoints[0]!;
  const opX = 1 - (op.specificity.value ?? 0);
  const opY = op.sensitivity.value ?? 0;
  const body = r.roc.length
    ? `<polyline points="${pts}" fill="none" stroke="#1d3557" stroke-width="2"/>` +
      `<circle cx="${sx(opX)}" cy="${sy(opY)}" r="5" fill="#e63946"><title>operating threshold</title></circle>`
    : `<text x="${W / 2}" y="${H / 2}" text-anchor="middle">needs positive and negative cases</text>`;
  return (
    `<svg id="roc" xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11" role="img" aria-label="ROC curve">` +
    `<title>ROC curve, AUC ${num3(r.auc.value)}</title>${axes('1 − specificity', 'sensitivity')}${body}</svg>`
  );
}

export function calibrationSvg(r: ValidationReport): string {
  const bins = r.calibration.filter((b) => b.n > 0 && b.meanScore !== null);
  const dots = bins
    .map((b) => {
      const [lo, hi] = b.observed.ci ?? [0, 0];
      return (
        `<line x1="${sx(b.meanScore!)}" y1="${sy(lo)}" x2="${sx(b.meanScore!)}" y2="${sy(hi)}" stroke="#457b9d"/>` +
        `<circle cx="${sx(b.meanScore!)}" cy="${sy(b.observed.value ?? 0)}" r="${Math.min(9, 3 + Math.sqrt(b.n))}" fill="#457b9d" fill-opacity="0.7"><title>${b.n} case(s), mean score ${num3(b.meanScore)}, observed ${pct(b.observed.value)}</title></circle>`
      );
    })
    .join('');
  return (
    `<svg id="calibration" xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11" role="img" aria-label="Calibration">` +
    `<title>Calibration: observed fraction positive against mean score, by score bin</title>${axes('mean score in bin', 'observed fraction covid-pattern')}${dots}</svg>`
  );
}

function groupRows(groups: readonly GroupReport[]): string {
  return groups
    .map(
      (g) =>
        `<tr${g.warning ? ' class="small"' : ''}><td>${esc(g.name)}</td><td>${g.n}</td><td>${g.positives}</td><td>${g.negatives}</td>` +
        `<td>${prop(g.atThreshold.sensitivity)}</td><td>${prop(g.atThreshold.specificity)}</td><td>${num3(g.auc.value)} <span class="ci">(${g.auc.ci ? `${num3(g.auc.ci[0])}–${num3(g.auc.ci[1])}` : '—'})</span></td>` +
        `<td>${g.warning ? `⚠ ${esc(g.warning)}` : ''}</td></tr>`,
    )
    .join('');
}

export function reportHtml(r: ValidationReport, title = 'mlsam-node — local validation report'): string {
  const c = r.counts;
  const ops = r.operatingPoints
    .map(
      (o) =>
        `<tr><td>${esc(o.rule)}</td><td>${prop(o.sensitivity)}</td><td>${prop(o.specificity)}</td><td>${prop(o.ppv)}</td><td>${prop(o.npv)}</td></tr>`,
    )
    .join('');
  const t = r.operatingPoints[0]!.confusion;
  const cats = r.byCategory
    .map((b) => `<tr><td>${b.category}</td><td>${b.positives}</td><td>${b.negatives}</td><td>${prop(b.positiveFraction)}</td></tr>`)
    .join('');
  const subgroups = r.subgroups
    .map(
      (s) =>
        `<h3>By ${s.by === 'thickness' ? 'slice thickness' : s.by}</h3><table class="grid"><tr><th>${s.by}</th><th>n</th><th>pos</th><th>neg</th><th>sensitivity</th><th>specificity</th><th>AUC (95 % CI)</th><th></th></tr>${groupRows(s.groups)}</table>`,
    )
    .join('');
  const casesRows = r.cases
    .map(
      (k) =>
        `<tr><td class="uid">${esc(k.studyInstanceUid)}</td><td>${k.score.toFixed(3)}</td><td>${esc(k.category)}</td><td>${esc(k.label)}</td><td>${esc(k.manufacturer ?? '')}</td><td>${esc(k.kernel ?? '')}</td><td>${k.sliceThicknessMm ?? ''}</td></tr>`,
    )
    .join('');
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>
<style>body{font:14px system-ui,sans-serif;margin:24px;color:#1d1d1d;max-width:1100px}h1{font-size:20px}.notice{background:#fff3cd;border:1px solid #e0c36c;padding:8px 12px;font-weight:600}
table.grid{border-collapse:collapse;margin:8px 0 16px}table.grid td,table.grid th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}.ci{color:#555;font-size:12px}
tr.small td{background:#fff8e6}.uid{font-family:monospace;font-size:12px}.pics{display:flex;gap:24px;flex-wrap:wrap}figure{margin:0}figcaption{font-size:12px;color:#444}</style></head>
<body><h1>${esc(title)}</h1><p class="notice">${esc(r.notice)}</p>
<p>Generated ${esc(r.generatedAt)}; model version(s) ${esc(r.modelVersions.join(', ') || '—')}; operating threshold ${esc(r.thresholds.join(', ') || '—')}.</p>
<table class="grid" id="counts"><tr><th>scored studies</th><th>labelled studies</th><th>cases (scored and labelled)</th><th>covid-pattern</th><th>other-opacity / normal</th><th>not assessable</th><th>labelled, not scored</th><th>scored, not labelled</th></tr>
<tr><td>${c.scoredStudies}</td><td>${c.labelledStudies}</td><td>${c.cases}</td><td>${c.positives}</td><td>${c.negatives}</td><td>${c.notAssessable}</td><td>${c.labelledNotScored}</td><td>${c.scoredNotLabelled}</td></tr></table>
${c.cases < 20 ? `<p class="notice">Only ${c.cases} case(s): every figure below is too uncertain to decide on; read the intervals.</p>` : ''}
<h2>Accuracy</h2><table class="grid" id="operating-points"><tr><th>called positive when</th><th>sensitivity</th><th>specificity</th><th>PPV</th><th>NPV</th></tr>${ops}</table>
<p>ROC AUC <b id="auc">${num3(r.auc.value)}</b> <span class="ci">(95 % CI ${r.auc.ci ? `${num3(r.auc.ci[0])}–${num3(r.auc.ci[1])}` : '—'}, DeLong; ${r.auc.positives} positive, ${r.auc.negatives} negative)</span>.
Radiologists agreed with the node's category in ${prop(r.agreement)}.</p>
<h3>Confusion table at the operating threshold</h3><table class="grid" id="confusion"><tr><th></th><th>reference covid-pattern</th><th>reference other / normal</th></tr>
<tr><th>node positive</th><td>${t.tp}</td><td>${t.fp}</td></tr><tr><th>node negative</th><td>${t.fn}</td><td>${t.tn}</td></tr></table>
<h3>By the node's category</h3><table class="grid" id="categories"><tr><th>category</th><th>covid-pattern</th><th>other / normal</th><th>fraction covid-pattern</th></tr>${cats}</table>
<div class="pics"><figure>${rocSvg(r)}<figcaption>ROC curve; the red dot is the operating threshold.</figcaption></figure>
<figure>${calibrationSvg(r)}<figcaption>Calibration: each dot a score bin (size: cases; bar: Wilson 95 % CI).</figcaption></figure></div>
<h2>Subgroups</h2>${subgroups}
<h2>Method</h2><ul><li>Positive: ${esc(r.method.positive)}; negative: ${esc(r.method.negative.join(', '))}; left out: ${esc(r.method.excluded)}.</li><li>Study score: ${esc(r.method.studyScore)}.</li><li>${esc(r.method.ci)}; ${esc(r.method.auc)}.</li><li>Subgroups: ${esc(r.method.smallSubgroup)}.</li></ul>
<h2>Cases</h2><table class="grid" id="cases"><tr><th>StudyInstanceUID</th><th>score</th><th>category</th><th>reference</th><th>manufacturer</th><th>kernel</th><th>thickness mm</th></tr>${casesRows}</table>
${r.labelledNotScored.length ? `<p>Labelled but not scored: ${r.labelledNotScored.map((u) => `<span class="uid">${esc(u)}</span>`).join(', ')}</p>` : ''}
</body></html>`;
}

const csvCell = (v: string | number | null | undefined): string => {
  const s = v === null || v === undefined ? '' : String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
};

/** One row per figure: section, group, metric, value, k, n, ci_low, ci_high. */
export function reportCsv(r: ValidationReport): string {
  const rows: (string | number | null)[][] = [['section', 'group', 'metric', 'value', 'k', 'n', 'ci_low', 'ci_high']];
  const p = (section: string, g: string, metric: string, x: Proportion): void => {
    rows.push([section, g, metric, x.value, x.k, x.n, x.ci?.[0] ?? null, x.ci?.[1] ?? null]);
  };
  for (const [k, v] of Object.entries(r.counts)) rows.push(['counts', 'all', k, v, null, null, null, null]);
  for (const o of r.operatingPoints) {
    for (const m of ['sensitivity', 'specificity', 'ppv', 'npv'] as const) p('operating-point', o.name, m, o[m]);
    for (const [k, v] of Object.entries(o.confusion)) rows.push(['operating-point', o.name, k, v, null, null, null, null]);
  }
  rows.push([
    'auc',
    'all',
    'roc_auc_delong',
    r.auc.value,
    r.auc.positives,
    r.auc.positives + r.auc.negatives,
    r.auc.ci?.[0] ?? null,
    r.auc.ci?.[1] ?? null,
  ]);
  for (const b of r.byCategory) p('category', b.category, 'fraction_covid_pattern', b.positiveFraction);
  for (const b of r.calibration) p('calibration', `${b.from}-${b.to}`, 'observed_fraction', b.observed);
  p('agreement', 'all', 'radiologist_agreement', r.agreement);
  for (const s of r.subgroups) {
    for (const g of s.groups) {
      p(`subgroup-${s.by}`, g.name, 'sensitivity', g.atThreshold.sensitivity);
      p(`subgroup-${s.by}`, g.name, 'specificity', g.atThreshold.specificity);
      rows.push([
        `subgroup-${s.by}`,
        g.name,
        'roc_auc_delong',
        g.auc.value,
        g.auc.positives,
        g.n,
        g.auc.ci?.[0] ?? null,
        g.auc.ci?.[1] ?? null,
      ]);
      if (g.warning) rows.push([`subgroup-${s.by}`, g.name, 'warning', g.warning, null, g.n, null, null]);
    }
  }
  return `${rows.map((r) => r.map(csvCell).join(',')).join('\n')}\n`;
}
