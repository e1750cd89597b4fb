/**
 * The series decision for scoreFiles: from the slices' CNN probabilities and lung measurements to the
 * slice probabilities, the series score, its category and the key slices.
 */
import type { DicomHeader } from '../dicom/decode/index.js';
import { aggregateSeries, seriesPolicy } from '../model/aggregate.js';
import { fuseSeries } from '../model/fusion.js';
import type { ModelMetadata } from '../model/metadata.js';
import type { PlannedSeries } from './plan.js';
import type { PreparedSlice } from './slice-preparer.js';
import { seriesOpacity } from './series-opacity.js';
import { seriesPattern } from './series-pattern.js';
import type { ScoredSeries } from './types.js';

/** A slice the CNN scored, with what its preparation measured. */
export interface ScoredInput {
  file: string;
  header: DicomHeader | null;
  position: number | null;
  cnn: number;
  info: PreparedSlice;
}

export interface SliceOutcome {
  probability: number;
  lungAreaMm2?: number;
  opacityPercent?: number;
  highOpacityPercent?: number;
  eligible?: boolean;
  ineligibleReason?: string;
}

export type SeriesDecision = Pick<
  ScoredSeries,
  | 'score'
  | 'category'
  | 'threshold'
  | 'indeterminateMargin'
  | 'fusion'
  | 'cnnScore'
  | 'k'
  | 'eligibleSlices'
  | 'minLungFraction'
  | 'opacity'
  | 'pattern'
> & {
  slices: SliceOutcome[];
  /** Key slice indices, best first. */
  key: number[];
};

const pct = (part: number, whole: number): number => (whole > 0 ? Math.min(100, (100 * part) / whole) : 0);

/**
 * The series' outcome from its slices' CNN probabilities and lung measurements: fused when the model has a
 * fusion and every slice has lung measurements (HU with pixel spacing), the CNN alone otherwise.
 */
export function decideSeries(s: PlannedSeries, scored: readonly ScoredInput[], meta: ModelMetadata): SeriesDecision | { reason: string } {
  const policy = seriesPolicy(meta);
  const fusion = meta.fusion;
  const measured = s.source === 'dicom' && scored.every((x) => x.info.lungs);
  if (fusion && measured) {
    const iop = scored[0]?.header?.imageOrientationPatient ?? null;
    const opacity = seriesOpacity(
      scored.map((x) => ({
        lungs: x.info.lungs as NonNullable<PreparedSlice['lungs']>,
        position: x.position,
        thicknessMm: x.header?.sliceThickness ?? null,
      })),
      iop,
      meta,
    );
    const fused = fuseSeries(
      scored.map((x) => ({ cnn: x.cnn, lungAreaMm2: x.info.lungs?.total.lungMm2 ?? 0, opacityMm2: x.info.lungs?.total.opacityMm2 ?? 0 })),
      opacity.total.percentOpacity,
      fusion,
      policy.aggregation,
    );
    if (!fused)
      return {
        reason: `no lungs found (largest lung area on any slice below ${fusion.eligibility.minSeriesLungMm2} mm²): not a chest CT the model can score`,
      };
    const pattern = seriesPattern(
      scored.map((x) => ({ ...(x.info.pattern ? { pattern: x.info.pattern } : {}), position: x.position })),
      iop,
      opacity.sliceSpacingMm,
    );
    return {
      slices: scored.map((x, i) => {
        const f = fused.slices[i] as (typeof fused.slices)[number];
        const t = x.info.lungs?.total ?? { lungMm2: 0, opacityMm2: 0, highMm2: 0 };
        return {
          probability: f.probability,
          lungAreaMm2: t.lungMm2,
          opacityPercent: pct(t.opacityMm2, t.lungMm2),
          highOpacityPercent: pct(t.highMm2, t.lungMm2),
          eligible: f.eligible,
          ...(f.ineligibleReason ? { ineligibleReason: f.ineligibleReason } : {}),
        };
      }),
      key: fused.ranked.slice(0, policy.keySlices),
      score: fused.score,
      category: fused.category,
      threshold: fused.threshold,
      indeterminateMargin: fusion.indeterminateMargin,
      fusion: 'cnn+opacity',
      cnnScore: fused.cnnScore,
      k: fused.k,
      eligibleSlices: fused.ranked.length,
      minLungFraction: fusion.eligibility.minLungFraction,
      opacity,
      ...(pattern ? { pattern } : {}),
    };
  }
  const agg = aggregateSeries(
    scored.map((x) => x.cnn),
    policy,
  );
  return {
    slices: scored.map((x) => ({ probability: x.cnn })),
    key: agg.keySlices.map((k) => k.index),
    score: agg.score,
    category: agg.category,
    threshold: agg.threshold,
    indeterminateMargin: policy.indeterminateMargin,
    fusion: 'cnn-only',
    cnnScore: agg.score,
    k: agg.k,
    eligibleSlices: scored.length,
  };
}
