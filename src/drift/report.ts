/**
 * The drift report: the studies of a reference window against those of a current window (after
 * it), per variable, and the radiologists' agreement in both (docs/drift.md).
 * - A study is counted once: the latest row of each series, the study's highest-scoring series
 *   (as the validation report does); its time is when its first series was scored.
 * - Inputs (manufacturer, kernel, slice-thickness band, kVp band, contrast) are categories, an
 *   unknown value its own category; their PSI runs over the categories of both windows.
 * - Outputs (score, lung opacity %) get the PSI over `bins` reference-quantile bins and the
 *   two-sample KS test; a study without an opacity figure (8-bit input) is left out of that one.
 * - A variable is "stable", "moderate" or "shift" by its PSI band; it alarms when outside the
 *   stable band and beyond chance (p < alpha: the PSI's χ² approximation for inputs, KS for outputs).
 * - Agreement: the latest answer per (study, series, radiologist) with agree / disagree, by the
 *   window of its study; it has fallen when the current Wilson 95 % upper bound is below the floor,
 *   or (no floor) when Newcombe's 95 % interval of current − reference lies below zero.
 */
import type { DriftConfig } from '../config/schema.js';
import type { AgreementAnswerRow, DriftInputRow } from '../db/results-db.js';
import { wilson, type Proportion } from '../validation/metrics.js';
import { thicknessBand } from '../validation/report.js';
import { binCounts, ks2, psi, psiChancePValue, quantileEdges, type KsResult } from './statistics.js';

export const DRIFT_NOTICE = 'NOT FOR DIAGNOSTIC USE. Drift watch of a research tool on this site’s own cases.';

export type VariableName = 'manufacturer' | 'kernel' | 'thickness' | 'kvp' | 'contrast' | 'score' | 'opacity';
export type DriftLevel = 'stable' | 'moderate' | 'shift' | 'not-enough-studies';

export const VARIABLES: readonly { name: VariableName; kind: 'categorical' | 'continuous'; title: string }[] = [
  { name: 'manufacturer', kind: 'categorical', title: 'Manufacturer' },
  { name: 'kernel', kind: 'categorical', title: 'Reconstruction kernel' },
  { name: 'thickness', kind: 'categorical', title: 'Slice thickness band' },
  { name: 'kvp', kind: 'categorical', title: 'Tube voltage (kVp) band' },
  { name: 'contrast', kind: 'categorical', title: 'Contrast' },
  { name: 'score', kind: 'continuous', title: 'Score' },
  { name: 'opacity', kind: 'continuous', title: 'Lung opacity %' },
];

/** One study as the drift watch sees it. */
export interface DriftStudy {
  studyInstanceUid: string;
  /** When its first series was scored (ISO). */
  at: string;
  score: number;
  opacityPercent: number | null;
  modelVersion: string;
  manufacturer: string;
  kernel: string;
  thickness: string;
  kvp: string;
  contrast: string;
}

export interface DriftBin {
  label: string;
  reference: number;
  current: number;
}

export interface VariableDrift {
  variable: VariableName;
  kind: 'categorical' | 'continuous';
  title: string;
  /** Studies with a value in each window. */
  reference: number;
  current: number;
  level: DriftLevel;
  psi: number | null;
  /** P(PSI at least this large by chance alone), χ² approximation (Yurdakul 2018). */
  psiPValue: number | null;
  /** Continuous outputs only. */
  ks: KsResult | null;
  /** Outside the stable band and beyond chance. */
  alarm: boolean;
  bins: DriftBin[];
  /** Why there is no figure, or what the figure means. */
  note?: string;
}

export interface WindowSummary {
  description: string;
  studies: number;
  /** First and last study time in the window (ISO), null when empty. */
  from: string | null;
  to: string | null;
  /** Model versions that scored the window's studies. */
  modelVersions: string[];
}

export interface AgreementDrift {
  reference: Proportion;
  current: Proportion;
  /** The configured floor, null when compared with the reference window. */
  floor: number | null;
  status: 'ok' | 'fallen' | 'not-enough-answers';
  /** Newcombe 95 % interval of current − reference (null with a floor or too few answers). */
  difference: { value: number; ci: [number, number] } | null;
  rule: string;
  alarm: boolean;
}

export interface DriftReport {
  generatedAt: string;
  notice: string;
  windows: { reference: WindowSummary; current: WindowSummary };
  variables: VariableDrift[];
  agreement: AgreementDrift;
  /** One sentence per alarm (the banner's text); empty when nothing alarms. */
  alarms: string[];
  /** Caveats that are not alarms (e.g. the windows were scored by different model versions). */
  warnings: string[];
  method: {
    psi: string;
    bands: string;
    chance: string;
    ks: string;
    agreement: string;
    minStudies: number;
  };
}

const norm = (v: string | null, empty = 'unknown'): string => {
  const t = (v ?? '').trim().replace(/\s+/g, ' ');
  return t === '' ? empty : t;
};

export function kvpBand(kvp: number | null): string {
  if (kvp === null || !Number.isFinite(kvp) || kvp <= 0) return 'unknown';
  if (kvp < 90) return '< 90 kV';
  if (kvp < 110) return '90–109 kV';
  if (kvp < 130) return '110–129 kV';
  return '≥ 130 kV';
}

export function contrastCategory(contrast: string | null): string {
  if (contrast === null) return 'unknown';
  return contrast.trim() === '' ? 'none' : 'contrast';
}

/** Rows (scored, oldest first) → one study each, in order of time. */
export function driftStudies(rows: readonly DriftInputRow[]): DriftStudy[] {
  const latestBySeries = new Map<string, DriftInputRow>();
  const firstAt = new Map<string, string>();
  for (const r of rows) {
    if (r.score === null) continue;
    latestBySeries.set(`${r.study_instance_uid}/${r.series_instance_uid}`, r);
    const f = firstAt.get(r.study_instance_uid);
    if (f === undefined || r.finished_at < f) firstAt.set(r.study_instance_uid, r.finished_at);
  }
  const best = new Map<string, DriftInputRow>();
  for (const r of latestBySeries.values()) {
    const cur = best.get(r.study_instance_uid);
    if (!cur || r.score! > cur.score!) best.set(r.study_instance_uid, r);
  }
  return [...best.values()]
    .map((r) => ({
      studyInstanceUid: r.study_instance_uid,
      at: firstAt.get(r.study_instance_uid)!,
      score: r.score!,
      opacityPercent: r.opacity_percent,
      modelVersion: r.model_version,
      manufacturer: norm(r.manufacturer).toUpperCase(),
      kernel: norm(r.kernel),
      thickness: thicknessBand(r.slice_thickness_mm),
      kvp: kvpBand(r.kvp),
      contrast: contrastCategory(r.contrast),
    }))
    .sort((a, b) => a.at.localeCompare(b.at) || a.studyInstanceUid.localeCompare(b.studyInstanceUid));
}

/** End of the period: a date-only `to` includes that whole day (UTC). */
const periodEnd = (to: string): string => (/^\d{4}-\d{2}-\d{2}$/.test(to) ? `${to}T23:59:59.999Z` : new Date(to).toISOString());
const periodStart = (from: string): string => new Date(/^\d{4}-\d{2}-\d{2}$/.test(from) ? `${from}T00:00:00.000Z` : from).toISOString();

export interface Windows {
  reference: DriftStudy[];
  current: DriftStudy[];
  referenceText: string;
  currentText: string;
}

/** Splits the studies (in time order) into the reference window and the current window after it. */
export function splitWindows(studies: readonly DriftStudy[], cfg: DriftConfig, now: Date): Windows {
  let reference: DriftStudy[];
  let after: DriftStudy[];
  let referenceText: string;
  if (cfg.reference.kind === 'first') {
    reference = studies.slice(0, cfg.reference.studies);
    after = studies.slice(cfg.reference.studies);
    referenceText =
      reference.length < cfg.reference.studies
        ? `the first ${cfg.reference.studies} scored studies (still filling: ${reference.length} so far)`
        : `the first ${cfg.reference.studies} scored studies`;
  } else {
    const from = periodStart(cfg.reference.from);
    const to = periodEnd(cfg.reference.to);
    reference = studies.filter((s) => s.at >= from && s.at <= to);
    after = studies.filter((s) => s.at > to);
    referenceText = `the studies scored from ${cfg.reference.from} to ${cfg.reference.to}`;
  }
  let current: DriftStudy[];
  let currentText: string;
  if (cfg.current.kind === 'last') {
    current = after.slice(-cfg.current.studies);
    currentText = `the last ${cfg.current.studies} studies scored after the reference`;
  } else {
    const since = new Date(now.getTime() - cfg.current.days * 86_400_000).toISOString();
    current = after.filter((s) => s.at >= since);
    currentText = `the studies of the last ${cfg.current.days} day(s), after the reference`;
  }
  return { reference, current, referenceText, currentText };
}

const summary = (description: string, w: readonly DriftStudy[]): WindowSummary => ({
  description,
  studies: w.length,
  from: w[0]?.at ?? null,
  to: w[w.length - 1]?.at ?? null,
  modelVersions: [...new Set(w.map((s) => s.modelVersion))].sort(),
});

function levelOf(value: number, cfg: DriftConfig): Exclude<DriftLevel, 'not-enough-studies'> {
  if (value >= cfg.psiBands.shift) return 'shift';
  if (value >= cfg.psiBands.moderate) return 'moderate';
  return 'stable';
}

const fmt = (v: number): string => (Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(3));

function categorical(name: VariableName, title: string, ref: readonly string[], cur: readonly string[], cfg: DriftConfig): VariableDrift {
  const labels = [...new Set([...ref, ...cur])].sort();
  const count = (xs: readonly string[], l: string): number => xs.filter((x) => x === l).length;
  const bins = labels
    .map((label) => ({ label, reference: count(ref, label), current: count(cur, label) }))
    .sort((a, b) => b.reference - a.reference || b.current - a.current || a.label.localeCompare(b.label));
  const base = { variable: name, kind: 'categorical' as const, title, reference: ref.length, current: cur.length, ks: null, bins };
  if (ref.length < cfg.minStudies || cur.length < cfg.minStudies) {
    return { ...base, level: 'not-enough-studies', psi: null, psiPValue: null, alarm: false, note: notEnough(ref.length, cur.length, cfg) };
  }
  const value = psi(
    bins.map((b) => b.reference),
    bins.map((b) => b.current),
  ).value;
  const p = psiChancePValue(value, bins.length, ref.length, cur.length);
  const level = levelOf(value, cfg);
  return { ...base, level, psi: value, psiPValue: p, alarm: level !== 'stable' && p < cfg.alpha };
}

function continuous(name: VariableName, title: string, ref: readonly number[], cur: readonly number[], cfg: DriftConfig): VariableDrift {
  const base = { variable: name, kind: 'continuous' as const, title, reference: ref.length, current: cur.length };
  if (ref.length < cfg.minStudies || cur.length < cfg.minStudies) {
    return {
      ...base,
      level: 'not-enough-studies',
      psi: null,
      psiPValue: null,
      ks: null,
      alarm: false,
      bins: [],
      note: notEnough(ref.length, cur.length, cfg),
    };
  }
  const edges = quantileEdges(ref, cfg.bins);
  const rc = binCounts(ref, edges);
  const cc = binCounts(cur, edges);
  const label = (i: number): string =>
    i === 0
      ? `≤ ${fmt(edges[0] ?? Infinity)}`
      : i === edges.length
        ? `> ${fmt(edges[i - 1]!)}`
        : `${fmt(edges[i - 1]!)} – ${fmt(edges[i]!)}`;
  const bins = rc.map((r, i) => ({ label: edges.length === 0 ? 'all' : label(i), reference: r, current: cc[i]! }));
  const value = psi(rc, cc).value;
  const used = bins.filter((b) => b.reference + b.current > 0).length;
  const ks = ks2(ref, cur);
  const level = levelOf(value, cfg);
  return {
    ...base,
    level,
    psi: value,
    psiPValue: psiChancePValue(value, used, ref.length, cur.length),
    ks,
    alarm: level !== 'stable' && ks.pValue < cfg.alpha,
    bins,
    ...(edges.length + 1 < cfg.bins ? { note: `${edges.length + 1} bins: tied reference quantiles were merged` } : {}),
  };
}

function notEnough(n: number, m: number, cfg: DriftConfig): string {
  return `not enough studies: ${n} in the reference and ${m} in the current window (needs ≥ ${cfg.minStudies} in each)`;
}

/** Newcombe's hybrid score interval (method 10, from the two Wilson intervals) for p₂ − p₁. */
export function newcombeDifference(p1: Proportion, p2: Proportion): { value: number; ci: [number, number] } | null {
  if (p1.value === null || p2.value === null || !p1.ci || !p2.ci) return null;
  const [l1, u1] = p1.ci;
  const [l2, u2] = p2.ci;
  const d = p2.value - p1.value;
  return {
    value: d,
    ci: [d - Math.sqrt((p2.value - l2) ** 2 + (u1 - p1.value) ** 2), d + Math.sqrt((u2 - p2.value) ** 2 + (p1.value - l1) ** 2)],
  };
}

function agreementDrift(answers: readonly AgreementAnswerRow[], w: Windows, cfg: DriftConfig): AgreementDrift {
  const latest = new Map<string, AgreementAnswerRow>();
  for (const a of answers) latest.set(`${a.study_instance_uid}/${a.series_instance_uid}/${a.user_name}`, a);
  const inRef = new Set(w.reference.map((s) => s.studyInstanceUid));
  const inCur = new Set(w.current.map((s) => s.studyInstanceUid));
  const tally = (set: Set<string>): Proportion => {
    const xs = [...latest.values()].filter((a) => set.has(a.study_instance_uid));
    return wilson(xs.filter((a) => a.agree === 1).length, xs.length);
  };
  const reference = tally(inRef);
  const current = tally(inCur);
  const min = cfg.agreement.minAnswers;
  const floor = cfg.agreement.floor;
  if (floor !== null) {
    const rule = `fallen when the current window has ≥ ${min} answers and its Wilson 95 % upper bound is below the floor ${floor}`;
    if (current.n < min) return { reference, current, floor, status: 'not-enough-answers', difference: null, rule, alarm: false };
    const fallen = current.ci![1] < floor;
    return { reference, current, floor, status: fallen ? 'fallen' : 'ok', difference: null, rule, alarm: fallen };
  }
  const rule = `fallen when both windows have ≥ ${min} answers and Newcombe's 95 % interval of (current − reference) lies below zero`;
  if (current.n < min || reference.n < min)
    return { reference, current, floor, status: 'not-enough-answers', difference: null, rule, alarm: false };
  const difference = newcombeDifference(reference, current);
  const fallen = difference !== null && difference.ci[1] < 0;
  return { reference, current, floor, status: fallen ? 'fallen' : 'ok', difference, rule, alarm: fallen };
}

const pctText = (p: Proportion): string => (p.value === null ? '—' : `${(p.value * 100).toFixed(0)} % (${p.k}/${p.n})`);

export function buildDriftReport(
  rows: readonly DriftInputRow[],
  answers: readonly AgreementAnswerRow[],
  cfg: DriftConfig,
  now = new Date(),
): DriftReport {
  const w = splitWindows(driftStudies(rows), cfg, now);
  const variables = VARIABLES.map((v) => {
    if (v.kind === 'categorical') {
      const key = v.name as 'manufacturer' | 'kernel' | 'thickness' | 'kvp' | 'contrast';
      return categorical(
        v.name,
        v.title,
        w.reference.map((s) => s[key]),
        w.current.map((s) => s[key]),
        cfg,
      );
    }
    const get = (s: DriftStudy): number | null => (v.name === 'score' ? s.score : s.opacityPercent);
    const vals = (xs: readonly DriftStudy[]): number[] => xs.map(get).filter((x): x is number => x !== null && Number.isFinite(x));
    return continuous(v.name, v.title, vals(w.reference), vals(w.current), cfg);
  });
  const agreement = agreementDrift(answers, w, cfg);
  const alarms = variables
    .filter((v) => v.alarm)
    .map(
      (v) =>
        `${v.title}: PSI ${v.psi!.toFixed(3)} (${v.level === 'shift' ? 'shift' : 'moderate change'}${v.ks ? `; KS D ${v.ks.statistic.toFixed(3)}, p ${pText(v.ks.pValue)}` : `; p ${pText(v.psiPValue!)}`}) over ${v.current} current against ${v.reference} reference studies`,
    );
  if (agreement.alarm) {
    alarms.push(
      `Agreement with radiologists fell: ${pctText(agreement.current)} in the current window against ${agreement.floor !== null ? `the floor ${(agreement.floor * 100).toFixed(0)} %` : `${pctText(agreement.reference)} in the reference`}`,
    );
  }
  const windows = { reference: summary(w.referenceText, w.reference), current: summary(w.currentText, w.current) };
  const warnings: string[] = [];
  const refVersions = windows.reference.modelVersions.join(', ');
  const curVersions = windows.current.modelVersions.join(', ');
  if (w.current.length > 0 && refVersions !== curVersions) {
    warnings.push(
      `the windows were scored by different model versions (reference ${refVersions || '—'}, current ${curVersions}): score and opacity may differ because the model changed; after a model update set drift.reference to a period after it`,
    );
  }
  return {
    generatedAt: now.toISOString(),
    notice: DRIFT_NOTICE,
    windows,
    variables,
    agreement,
    alarms,
    warnings,
    method: {
      psi: `PSI = Σ (current share − reference share) · ln(current share / reference share); an empty bin's share counts as 0.0001. Inputs: one bin per category (unknown is a category); score and opacity: ${cfg.bins} bins at the reference's quantiles.`,
      bands: `stable below ${cfg.psiBands.moderate}, moderate ${cfg.psiBands.moderate}–${cfg.psiBands.shift}, shift from ${cfg.psiBands.shift} (the usual credit-scoring bands, Siddiqi 2006)`,
      chance: `a variable alarms only outside the stable band and beyond chance at p < ${cfg.alpha}: for inputs P(χ²(B − 1) ≥ PSI / (1/n + 1/m)) (Yurdakul 2018), for score and opacity the two-sample Kolmogorov–Smirnov test`,
      ks: 'two-sample Kolmogorov–Smirnov D = sup |F_reference − F_current|, two-sided p exact (lattice paths) up to n·m = 4,000,000, else Kolmogorov’s limit',
      agreement: agreement.rule,
      minStudies: cfg.minStudies,
    },
  };
}

export function pText(p: number): string {
  if (p < 1e-4) return '< 0.0001';
  return p.toFixed(4);
}
