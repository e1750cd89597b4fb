/**
 * One fused result from the CNN and the opacity measurement (model metadata `fusion`, method 'gated-v1').
 *
 * HU series (fusion 'cnn+opacity'):
 *   eligible_i  = lungAreaMm2_i ≥ minLungFraction × max_j lungAreaMm2_j  (apex tips, bases, abdomen are not)
 *   cal(p)      = σ(intercept + slope · logit(p))              the CNN's COVID-19-pattern probability, calibrated
 *   gate_i      = σ(slope_s · (ln(opacityMm2_i + offsetMm2) − centre_s))   P(opacity on the slice is disease)
 *   p_i         = gate_i × (1 − cnnShare + cnnShare · cal(cnn_i))         the node's slice probability: the CNN
 *                 can lower it by at most cnnShare (opacity the CNN finds unlike COVID-19 is still opacity)
 *   key slices  = the eligible slices with the highest p_i; k = topK(n_eligible) of them make up
 *   cnnScore    = mean cal(cnn_i) over those k slices          the CNN's view of the most opaque slices
 *   burdenGate  = σ(slope_b · (ln(percentOpacity + offsetPercent) − centre_b))   P(pneumonia | lung volume %)
 *   score       = burdenGate × cnnScore; category from fusion.threshold ± fusion.indeterminateMargin
 * No HU (8-bit images; fusion 'cnn-only'): p_i = cnn_i, score = top-k mean, category from series.threshold.
 * The numbers and what they were fitted on are in the metadata (and MODEL_CARD.md).
 */
import { z } from 'zod';
import { categorize, topK, type SeriesCategory } from './aggregate.js';

export const fusionSpecSchema = z.object({
  method: z.literal('gated-v1'),
  eligibility: z.object({ minLungFraction: z.number().min(0).max(1), minSeriesLungMm2: z.number().min(0) }),
  cnnCalibration: z.object({ intercept: z.number(), slope: z.number() }),
  sliceGate: z.object({ centre: z.number(), slope: z.number(), offsetMm2: z.number().positive(), cnnShare: z.number().min(0).max(1) }),
  burdenGate: z.object({ centre: z.number(), slope: z.number(), offsetPercent: z.number().positive() }),
  threshold: z.number().min(0).max(1),
  indeterminateMargin: z.number().min(0).max(0.5),
});
export type FusionSpec = z.infer<typeof fusionSpecSchema>;

const sigmoid = (x: number): number => 1 / (1 + Math.exp(-x));
const logit = (p: number): number => {
  const q = Math.min(1 - 1e-7, Math.max(1e-7, p));
  return Math.log(q / (1 - q));
};

export function calibrate(p: number, f: FusionSpec): number {
  return sigmoid(f.cnnCalibration.intercept + f.cnnCalibration.slope * logit(p));
}

export function sliceGate(opacityMm2: number, f: FusionSpec): number {
  const g = f.sliceGate;
  return sigmoid(g.slope * (Math.log(opacityMm2 + g.offsetMm2) - g.centre));
}

export function burdenGate(percentOpacity: number, f: FusionSpec): number {
  const g = f.burdenGate;
  return sigmoid(g.slope * (Math.log(percentOpacity + g.offsetPercent) - g.centre));
}

export interface FusionSliceInput {
  cnn: number;
  lungAreaMm2: number;
  opacityMm2: number;
}

export interface FusedSlice {
  probability: number;
  eligible: boolean;
  ineligibleReason?: string;
}

export interface FusedSeries {
  slices: FusedSlice[];
  /** Indices of the eligible slices, best first (ties: lower index first). */
  ranked: number[];
  k: number;
  cnnScore: number;
  burdenGate: number;
  score: number;
  category: SeriesCategory;
  threshold: number;
}

/**
 * Fuse a whole HU series; `percentOpacity` is the series' opacity as % of its lung volume. Returns null when
 * the series holds (almost) no lung: it cannot be scored as a chest CT.
 */
export function fuseSeries(
  slices: readonly FusionSliceInput[],
  percentOpacity: number,
  f: FusionSpec,
  aggregation: { kFraction: number; kMin: number },
): FusedSeries | null {
  const maxLung = Math.max(0, ...slices.map((s) => s.lungAreaMm2));
  if (!(maxLung >= f.eligibility.minSeriesLungMm2)) return null;
  const minArea = f.eligibility.minLungFraction * maxLung;
  const fused: FusedSlice[] = slices.map((s) => {
    const share = f.sliceGate.cnnShare;
    const probability = sliceGate(s.opacityMm2, f) * (1 - share + share * calibrate(s.cnn, f));
    if (s.lungAreaMm2 >= minArea) return { probability, eligible: true };
    const pct = Math.round((100 * s.lungAreaMm2) / maxLung);
    return {
      probability,
      eligible: false,
      ineligibleReason: `little lung on this slice (${pct} % of the series' largest lung area, below ${Math.round(100 * f.eligibility.minLungFraction)} %)`,
    };
  });
  const ranked = fused
    .map((s, i) => ({ i, p: s.probability, e: s.eligible }))
    .filter((x) => x.e)
    .sort((a, b) => b.p - a.p || a.i - b.i)
    .map((x) => x.i);
  const k = topK(ranked.length, aggregation);
  let sum = 0;
  for (let j = 0; j < k; j++) sum += calibrate((slices[ranked[j] as number] as FusionSliceInput).cnn, f);
  const cnnScore = k > 0 ? sum / k : 0;
  const gate = burdenGate(percentOpacity, f);
  const score = gate * cnnScore;
  return {
    slices: fused,
    ranked,
    k,
    cnnScore,
    burdenGate: gate,
    score,
    category: categorize(score, { threshold: f.threshold, indeterminateMargin: f.indeterminateMargin }),
    threshold: f.threshold,
  };
}
