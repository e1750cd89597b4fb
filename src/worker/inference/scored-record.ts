/**
 * The 'scored' part of a result record from what scoreFiles returned for one series: the fields the
 * results stage, the dashboard and the API read (score, category, fusion, opacity, slices, key slices).
 */
import path from 'node:path';
import type { ResultRecord } from '../../contracts/result-record.js';
import type { ScoredSeries, ScoredSlice } from '../../scoring/score.js';

export type ScoredFields = Pick<
  ResultRecord,
  | 'score'
  | 'category'
  | 'threshold'
  | 'indeterminateMargin'
  | 'k'
  | 'cnnScore'
  | 'fusion'
  | 'opacity'
  | 'pattern'
  | 'zones'
  | 'slices'
  | 'keySlices'
>;

/** `slices` are the series' own slices (scoreFiles lists every series' slices together). */
export function scoredFields(series: ScoredSeries, slices: readonly ScoredSlice[], sopClassUid?: string): ScoredFields {
  return {
    score: series.score,
    category: series.category,
    threshold: series.threshold,
    indeterminateMargin: series.indeterminateMargin,
    k: series.k,
    cnnScore: series.cnnScore,
    fusion: series.fusion,
    ...(series.opacity ? { opacity: series.opacity } : {}),
    ...(series.pattern ? { pattern: series.pattern } : {}),
    ...(series.zones ? { zones: series.zones } : {}),
    slices: slices.map((s) => ({
      index: s.index,
      sopInstanceUid: s.sopInstanceUid as string,
      sopClassUid: sopClassUid ?? (s.sopClassUid as string),
      file: path.resolve(s.file),
      probability: s.probability,
      position: s.position,
      instanceNumber: s.instanceNumber,
      cnnProbability: s.cnnProbability,
      ...(s.lungAreaMm2 !== undefined
        ? { lungAreaMm2: s.lungAreaMm2, opacityPercent: s.opacityPercent, highOpacityPercent: s.highOpacityPercent, eligible: s.eligible }
        : {}),
      ...(s.ineligibleReason ? { ineligibleReason: s.ineligibleReason } : {}),
    })),
    keySlices: series.keySlices.map((k) => ({
      index: k.index,
      sopInstanceUid: k.sopInstanceUid as string,
      probability: k.probability,
      cnnProbability: k.cnnProbability,
      ...(k.opacityPercent !== undefined ? { opacityPercent: k.opacityPercent, highOpacityPercent: k.highOpacityPercent } : {}),
      ...(k.attention ? { attention: k.attention } : {}),
      ...(k.region ? { region: k.region } : {}),
    })),
  };
}
