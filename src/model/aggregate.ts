/**
 * Series score from slice probabilities, as the model metadata prescribes (series.aggregation):
 * "topk-mean" = mean of the k highest slice probabilities, k = min(n, max(kMin, ceil(kFraction·n))).
 * Category: score ≥ threshold + indeterminateMargin → likely; ≤ threshold − margin → unlikely; between → indeterminate.
 */
import type { ModelMetadata } from './metadata.js';

export type SeriesCategory = 'likely' | 'indeterminate' | 'unlikely';

export interface SeriesPolicy {
  aggregation: { method: 'topk-mean'; kFraction: number; kMin: number };
  threshold: number;
  indeterminateMargin: number;
  keySlices: number;
}

export function seriesPolicy(m: ModelMetadata): SeriesPolicy {
  const s = m.series;
  return {
    aggregation: { method: s.aggregation.method, kFraction: s.aggregation.kFraction, kMin: s.aggregation.kMin },
    threshold: s.threshold,
    indeterminateMargin: s.indeterminateMargin,
    keySlices: s.keySlices,
  };
}

export function topK(n: number, agg: { kFraction: number; kMin: number }): number {
  if (n <= 0) return 0;
  return Math.min(n, Math.max(agg.kMin, Math.ceil(agg.kFraction * n)));
}

export function categorize(score: number, policy: Pick<SeriesPolicy, 'threshold' | 'indeterminateMargin'>): SeriesCategory {
  const eps = 1e-9; // so that 0.4 with threshold 0.5 and margin 0.1 is "unlikely" despite float rounding
  if (score >= policy.threshold + policy.indeterminateMargin - eps) return 'likely';
  if (score <= policy.threshold - policy.indeterminateMargin + eps) return 'unlikely';
  return 'indeterminate';
}

export interface KeySlice {
  /** Position of the slice in the series' scored order (0-based). */
  index: number;
  probability: number;
}

export interface SeriesAggregate {
  score: number;
  category: SeriesCategory;
  /** Number of slices the score used (k). */
  k: number;
  threshold: number;
  /** Highest-probability slices, best first (ties: lower index first). */
  keySlices: KeySlice[];
}

/** Aggregate slice probabilities given in scored order. Throws on an empty list. */
export function aggregateSeries(probabilities: readonly number[], policy: SeriesPolicy): SeriesAggregate {
  const n = probabilities.length;
  if (n === 0) throw new RangeError('cannot aggregate an empty series');
  if (probabilities.some((p) => !Number.isFinite(p))) throw new RangeError('slice probabilities must be finite');
  const order = probabilities.map((p, i) => ({ index: i, probability: p }));
  order.sort((a, b) => b.probability - a.probability || a.index - b.index);
  const k = topK(n, policy.aggregation);
  let sum = 0;
  for (let i = 0; i < k; i++) sum += (order[i] as KeySlice).probability;
  const score = sum / k;
  return {
    score,
    category: categorize(score, policy),
    k,
    threshold: policy.threshold,
    keySlices: order.slice(0, Math.min(policy.keySlices, n)),
  };
}
