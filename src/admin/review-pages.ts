/**
 * The radiologist's pages: the review page (one study at a time: the node's answer, the opacity and
 * the key-slice heatmaps at a glance, one click or one key per reference finding) and the
 * validation report page (the report's HTML inside the dashboard, with its exports).
 */
import { REFERENCE_LABELS } from '../contracts/feedback.js';
import type { FeedbackRow, ResultRow } from '../db/tables.js';
import { esc, layout } from './pages.js';

const LABEL_TEXT: Record<string, string> = {
  'covid-pattern': 'COVID-19 pattern',
  'other-opacity': 'Other opacity',
  normal: 'Normal',
  'not-assessable': 'Not assessable',
};

/** Keys 1-4 press the label buttons, a / d set agree / disagree, n skips to the next study. */
const REVIEW_JS = `document.addEventListener('keydown',function(e){if(e.target&&(e.target.tagName==='TEXTAREA'||e.target.tagName==='INPUT'))return;
if(e.ctrlKey||e.metaKey||e.altKey)return;var b=document.querySelector('[data-key="'+e.key.toLowerCase()+'"]');if(b){e.preventDefault();b.click();}});`;

export interface ReviewView {
  study: string;
  series: ResultRow[];
  feedback: FeedbackRow[];
  /** Studies still without a reference (for the "next" link and the count). */
  pending: string[];
  user: string;
  canAnswer: boolean;
  flash?: string;
}

export function reviewPage(v: ReviewView | undefined, pendingCount: number, flash?: string): string {
  if (!v) {
    return layout(
      'Review',
      `<h1>Review</h1><p class="notice">NOT FOR DIAGNOSTIC USE</p>${flash ? `<div class="flash ok" id="flash">${esc(flash)}</div>` : ''}<div class="card"><p id="review-empty">No scored study waits for a reference finding${pendingCount ? '' : ' (all reviewed)'}.</p>
<p><a href="/admin/validation">Open the local validation report</a></p></div>`,
    );
  }
  const top = [...v.series].filter((s) => s.score !== null).sort((a, b) => (b.score ?? 0) - (a.score ?? 0))[0] ?? v.series[0]!;
  const seriesRows = v.series
    .map(
      (s) =>
        `<tr><td class="mono"><a href="/admin/series/${esc(s.series_instance_uid)}">${esc(s.series_instance_uid)}</a></td><td>${esc(s.status)}</td>` +
        `<td>${s.score === null ? '—' : s.score.toFixed(3)}</td><td class="c-${esc(s.category ?? '')}">${esc(s.category ?? '—')}</td>` +
        `<td>${s.opacity_percent === null ? '—' : `${s.opacity_percent.toFixed(1)} %`}</td><td>${esc([s.manufacturer, s.kernel, s.slice_thickness_mm ? `${s.slice_thickness_mm} mm` : ''].filter(Boolean).join(' · '))}</td></tr>`,
    )
    .join('');
  const outputs = JSON.parse(top.outputs) as { kind: string; sopInstanceUid: string }[];
  const images = outputs
    .filter((o) => o.kind === 'heatmap')
    .slice(0, 4)
    .map(
      (o) =>
        `<figure><img src="/api/series/${esc(top.series_instance_uid)}/images/${esc(o.sopInstanceUid)}.png" alt="key slice heatmap" loading="lazy"></figure>`,
    )
    .join('');
  const keySlices = (JSON.parse(top.key_slices) as { index: number; probability: number; opacityPercent?: number }[])
    .map(
      (k) =>
        `slice ${k.index + 1}: ${k.probability.toFixed(2)}${k.opacityPercent !== undefined ? `, opacity ${k.opacityPercent.toFixed(1)} %` : ''}`,
    )
    .join(' · ');
  const history = v.feedback
    .map(
      (f) =>
        `<tr><td>${esc(f.created_at.replace('T', ' ').slice(0, 19))}</td><td>${esc(f.user_name)}</td><td>${esc(f.label)}</td><td>${f.agree === null ? '—' : f.agree ? 'agree' : 'disagree'}</td><td>${esc(f.source)}</td><td>${esc(f.comment ?? '')}</td></tr>`,
    )
    .join('');
  const buttons = REFERENCE_LABELS.map(
    (l, i) =>
      `<button type="submit" name="label" value="${l}" data-key="${i + 1}" accesskey="${i + 1}" id="label-${l}"${i === 0 ? ' autofocus' : ''}>${i + 1} · ${esc(LABEL_TEXT[l] ?? l)}</button>`,
  ).join(' ');
  const form = v.canAnswer
    ? `<form method="post" action="/admin/review/${esc(v.study)}" id="feedback-form" class="card">
<fieldset style="border:0;padding:0;margin:0 0 8px"><legend>Do you agree with the node's category (<b>${esc(top.category ?? '—')}</b>)?</legend>
<label><input type="radio" name="agree" value="" checked> from my finding</label>
<label><input type="radio" name="agree" value="yes" data-key="a"> agree (a)</label>
<label><input type="radio" name="agree" value="no" data-key="d"> disagree (d)</label></fieldset>
<p><label for="comment">Comment (optional)</label><br><textarea id="comment" name="comment" rows="2" cols="60" maxlength="2000"></textarea></p>
<p>Reference finding (press 1–4): ${buttons}</p></form>`
    : `<p class="card">You can read this study; answering needs the radiologist or admin role.</p>`;
  const next = v.pending.find((s) => s !== v.study);
  const body = `<h1>Review <span class="mono">${esc(v.study)}</span></h1><p class="notice">NOT FOR DIAGNOSTIC USE</p>
${v.flash ? `<div class="flash ok" id="flash">${esc(v.flash)}</div>` : ''}
<div class="card"><dl class="kv"><dt>Node's answer</dt><dd><b class="c-${esc(top.category ?? '')}" id="category">${esc(top.category ?? top.status)}</b> (score ${top.score === null ? '—' : top.score.toFixed(3)}, threshold ${top.threshold ?? '—'})</dd>
<dt>Opacity</dt><dd>${top.opacity_percent === null ? '—' : `${top.opacity_percent.toFixed(1)} % of the lungs (${(top.high_opacity_percent ?? 0).toFixed(1)} % consolidation)`}</dd>
<dt>Key slices</dt><dd>${esc(keySlices || '—')}</dd><dt>Waiting for review</dt><dd>${v.pending.length} stud${v.pending.length === 1 ? 'y' : 'ies'}${next ? ` · <a href="/admin/review?study=${esc(next)}" data-key="n" id="next">next (n)</a>` : ''}</dd></dl></div>
<div class="heatmaps">${images}</div>
${form}
<h2>Series</h2><table><tr><th>Series</th><th>Status</th><th>Score</th><th>Category</th><th>Opacity</th><th>Scanner · kernel · thickness</th></tr>${seriesRows}</table>
<h2>Answers so far</h2><table id="history"><tr><th>When</th><th>Who</th><th>Reference</th><th>Agree</th><th>Source</th><th>Comment</th></tr>${history || '<tr><td colspan="6" class="muted">none yet</td></tr>'}</table>`;
  return layout('Review', body, { head: `<script>${REVIEW_JS}</script>` });
}

/** The report inside the dashboard: its own self-contained HTML's body, plus the export links. */
export function validationPage(reportBody: string): string {
  const inner = reportBody.replace(/^[\s\S]*<body>/, '').replace(/<\/body>[\s\S]*$/, '');
  const style = /<style>([\s\S]*?)<\/style>/.exec(reportBody)?.[1] ?? '';
  return layout(
    'Validation',
    `<p><a href="/api/validation.html" download>Download HTML</a> · <a href="/api/validation.csv">Download CSV</a> · <a href="/api/validation">JSON</a> · <a href="/admin/review">Review studies</a></p>
<div class="card">${inner}</div>`,
    { head: `<style>${style.replace(/body\{[^}]*\}/, '')}</style>` },
  );
}
