/**
 * The local validation report: the node's study-level results against the site's reference labels
 * (the latest feedback or imported label of each study). A study's score is the highest score of
 * its scored series (its category and threshold come from that series); 'covid-pattern' is positive,
 * 'other-opacity' and 'normal' negative, 'not-assessable' left out (and counted).
 */
import { referenceClass, REFERENCE_LABELS } from '../contracts/feedback.js';
import type { FeedbackRow, ResultRow } from '../db/tables.js';
import {
  binaryMetrics,
  calibration,
  rocAuc,
  rocCurve,
  wilson,
  type Auc,
  type BinaryMetrics,
  type CalibrationBin,
  type Proportion,
  type RocPoint,
} from './metrics.js';

/** Below these a subgroup's figures carry a warning. */
export const SMALL_SUBGROUP = { cases: 20, perClass: 5 } as const;

export interface ValidationCase {
  studyInstanceUid: string;
  seriesInstanceUid: string;
  score: number;
  category: string;
  threshold: number;
  label: string;
  truth: 0 | 1;
  modelVersion: string;
  manufacturer: string | null;
  kernel: string | null;
  sliceThicknessMm: number | null;
  thicknessBand: string;
  kvp: number | null;
  labelledBy: string;
  labelSource: string;
}

export interface OperatingPoint extends BinaryMetrics {
  name: string;
  rule: string;
}

export interface GroupReport {
  name: string;
  n: number;
  positives: number;
  negatives: number;
  atThreshold: BinaryMetrics;
  auc: Auc;
  /** Set when the group is too small for its figures to mean much. */
  warning?: string;
}

export interface ValidationReport {
  generatedAt: string;
  notice: string;
  method: { positive: string; negative: string[]; excluded: string; studyScore: string; ci: string; auc: string; smallSubgroup: string };
  counts: {
    /** Studies with a stored scored result. */
    scoredStudies: number;
    /** Studies with a reference label (any). */
    labelledStudies: number;
    /** Scored and labelled positive or negative: the cases of the metrics. */
    cases: number;
    positives: number;
    negatives: number;
    notAssessable: number;
    /** Labelled but not (yet) scored. */
    labelledNotScored: number;
    /** Scored but without a reference yet. */
    scoredNotLabelled: number;
  };
  modelVersions: string[];
  /** Operating threshold of the model (the scored series' `threshold`; several when versions differ). */
  thresholds: number[];
  operatingPoints: OperatingPoint[];
  /** Rows: the node's categories; columns: reference positive / negative; with the positive fraction. */
  byCategory: { category: string; positives: number; negatives: number; positiveFraction: Proportion }[];
  auc: Auc;
  roc: RocPoint[];
  calibration: CalibrationBin[];
  subgroups: { by: 'manufacturer' | 'kernel' | 'thickness'; groups: GroupReport[] }[];
  /** Radiologist answers that said agree / disagree with the node's category. */
  agreement: Proportion;
  cases: ValidationCase[];
  labelledNotScored: string[];
}

export function thicknessBand(mm: number | null): string {
  if (mm === null) return 'unknown';
  if (mm <= 1.5) return '≤ 1.5 mm';
  if (mm <= 3) return '1.5–3 mm';
  return '> 3 mm';
}

/** The latest reference of each study (feedback rows oldest first, as ResultsDb.allFeedback gives them). */
export function referenceByStudy(feedback: readonly FeedbackRow[]): Map<string, FeedbackRow> {
  const out = new Map<string, FeedbackRow>();
  for (const f of feedback) out.set(f.study_instance_uid, f);
  return out;
}

/** The highest-scoring scored series of each study. */
export function studyResults(rows: readonly ResultRow[]): Map<string, ResultRow> {
  const out = new Map<string, ResultRow>();
  for (const r of rows) {
    if (r.status !== 'scored' || r.score === null) continue;
    const cur = out.get(r.study_instance_uid);
    if (!cur || r.score > (cur.score ?? -1)) out.set(r.study_instance_uid, r);
  }
  return out;
}

function group(name: string, cases: readonly ValidationCase[]): GroupReport {
  const truth = cases.map((c) => c.truth);
  const positives = truth.filter((t) => t === 1).length;
  const negatives = cases.length - positives;
  const g: GroupReport = {
    name,
    n: cases.length,
    positives,
    negatives,
    atThreshold: binaryMetrics(
      cases.map((c) => (c.score >= c.threshold ? 1 : 0)),
      truth,
    ),
    auc: rocAuc(
      cases.map((c) => c.score),
      truth,
    ),
  };
  if (cases.length < SMALL_SUBGROUP.cases || positives < SMALL_SUBGROUP.perClass || negatives < SMALL_SUBGROUP.perClass) {
    g.warning = `too small to conclude: ${cases.length} case(s), ${positives} positive, ${negatives} negative (needs ≥ ${SMALL_SUBGROUP.cases} cases and ≥ ${SMALL_SUBGROUP.perClass} of each); the intervals show how little is known`;
  }
  return g;
}

export function buildReport(results: readonly ResultRow[], feedback: readonly FeedbackRow[], now = new Date()): ValidationReport {
  const studies = studyResults(results);
  const refs = referenceByStudy(feedback);
  const cases: ValidationCase[] = [];
  let notAssessable = 0;
  for (const [study, ref] of refs) {
    const r = studies.get(study);
    if (!r) continue;
    const truth = referenceClass(ref.label);
    if (truth === null) {
      notAssessable++;
      continue;
    }
    cases.push({
      studyInstanceUid: study,
      seriesInstanceUid: r.series_instance_uid,
      score: r.score!,
      category: r.category ?? 'indeterminate',
      threshold: r.threshold ?? 0.5,
      label: ref.label,
      truth,
      modelVersion: r.model_version,
      manufacturer: r.manufacturer,
      kernel: r.kernel,
      sliceThicknessMm: r.slice_thickness_mm,
      thicknessBand: thicknessBand(r.slice_thickness_mm),
      kvp: r.kvp,
      labelledBy: ref.user_name,
      labelSource: ref.source,
    });
  }
  cases.sort((a, b) => a.studyInstanceUid.localeCompare(b.studyInstanceUid));
  const truth = cases.map((c) => c.truth);
  const scores = cases.map((c) => c.score);
  const positives = truth.filter((t) => t === 1).length;
  const op = (name: string, rule: string, f: (c: ValidationCase) => boolean): OperatingPoint => ({
    name,
    rule,
    ...binaryMetrics(
      cases.map((c) => (f(c) ? 1 : 0)),
      truth,
    ),
  });
  const byGroup = (by: 'manufacturer' | 'kernel' | 'thickness', key: (c: ValidationCase) => string) => {
    const m = new Map<string, ValidationCase[]>();
    for (const c of cases) m.set(key(c), [...(m.get(key(c)) ?? []), c]);
    return {
      by,
      groups: [...m.entries()].sort((a, b) => b[1].length - a[1].length || a[0].localeCompare(b[0])).map(([n, cs]) => group(n, cs)),
    };
  };
  const answered = feedback.filter((f) => f.agree !== null);
  const latestAnswers = [...new Map(answered.map((f) => [`${f.study_instance_uid}/${f.series_instance_uid}/${f.user_name}`, f])).values()];
  const labelledNotScored = [...refs.keys()].filter((s) => !studies.has(s)).sort();
  return {
    generatedAt: now.toISOString(),
    notice: "NOT FOR DIAGNOSTIC USE. A local validation of a research tool on this site's own cases.",
    method: {
      positive: 'covid-pattern',
      negative: ['other-opacity', 'normal'],
      excluded: 'not-assessable',
      studyScore: "highest score of the study's scored series (category and threshold of that series)",
      ci: 'Wilson score 95 % intervals for proportions',
      auc: 'ROC AUC (Mann-Whitney) with a DeLong 95 % interval',
      smallSubgroup: `warning below ${SMALL_SUBGROUP.cases} cases or ${SMALL_SUBGROUP.perClass} of either class`,
    },
    counts: {
      scoredStudies: studies.size,
      labelledStudies: refs.size,
      cases: cases.length,
      positives,
      negatives: cases.length - positives,
      notAssessable,
      labelledNotScored: labelledNotScored.length,
      scoredNotLabelled: [...studies.keys()].filter((s) => !refs.has(s)).length,
    },
    modelVersions: [...new Set(cases.map((c) => c.modelVersion))].sort(),
    thresholds: [...new Set(cases.map((c) => c.threshold))].sort((a, b) => a - b),
    operatingPoints: [
      op('threshold', "score ≥ the model's operating threshold", (c) => c.score >= c.threshold),
      op('likely', 'category "likely" called positive', (c) => c.category === 'likely'),
      op('likely-or-indeterminate', 'category "likely" or "indeterminate" called positive', (c) => c.category !== 'unlikely'),
    ],
    byCategory: ['likely', 'indeterminate', 'unlikely'].map((category) => {
      const cs = cases.filter((c) => c.category === category);
      const p = cs.filter((c) => c.truth === 1).length;
      return { category, positives: p, negatives: cs.length - p, positiveFraction: wilson(p, cs.length) };
    }),
    auc: rocAuc(scores, truth),
    roc: rocCurve(scores, truth),
    calibration: calibration(scores, truth),
    subgroups: [
      byGroup('manufacturer', (c) => c.manufacturer ?? 'unknown'),
      byGroup('kernel', (c) => c.kernel ?? 'unknown'),
      byGroup('thickness', (c) => c.thicknessBand),
    ],
    agreement: wilson(latestAnswers.filter((f) => f.agree === 1).length, latestAnswers.length),
    cases,
    labelledNotScored,
  };
}

export const ALL_LABELS = REFERENCE_LABELS;
