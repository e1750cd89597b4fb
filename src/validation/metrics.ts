/**
 * Diagnostic-accuracy statistics of the local validation (pure functions, no I/O):
 * - proportions (sensitivity, specificity, PPV, NPV, agreement) with Wilson score 95 % intervals;
 * - ROC AUC as the Mann-Whitney statistic (ties count one half) with a DeLong 95 % interval
 *   (DeLong, DeLong & Clarke-Pearson 1988: variance from the structural components), clipped to [0, 1];
 * - the ROC curve (one point per distinct score) and a calibration table (fixed-width bins).
 */

export const Z95 = 1.959963984540054;

export interface Proportion {
  k: number;
  n: number;
  /** k / n, null when n = 0. */
  value: number | null;
  /** Wilson score interval, null when n = 0. */
  ci: [number, number] | null;
}

export function wilson(k: number, n: number, z = Z95): Proportion {
  if (n === 0) return { k, n, value: null, ci: null };
  const p = k / n;
  const z2 = z * z;
  const den = 1 + z2 / n;
  const centre = (p + z2 / (2 * n)) / den;
  const half = (z * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n))) / den;
  return { k, n, value: p, ci: [Math.max(0, centre - half), Math.min(1, centre + half)] };
}

export interface Confusion {
  tp: number;
  fp: number;
  tn: number;
  fn: number;
}

export interface BinaryMetrics {
  confusion: Confusion;
  sensitivity: Proportion;
  specificity: Proportion;
  ppv: Proportion;
  npv: Proportion;
}

/** `predicted` and `truth` are 0/1 per case. */
export function binaryMetrics(predicted: readonly (0 | 1)[], truth: readonly (0 | 1)[]): BinaryMetrics {
  const c: Confusion = { tp: 0, fp: 0, tn: 0, fn: 0 };
  predicted.forEach((p, i) => {
    const t = truth[i];
    if (p === 1 && t === 1) c.tp++;
    else if (p === 1) c.fp++;
    else if (t === 1) c.fn++;
    else c.tn++;
  });
  return {
    confusion: c,
    sensitivity: wilson(c.tp, c.tp + c.fn),
    specificity: wilson(c.tn, c.tn + c.fp),
    ppv: wilson(c.tp, c.tp + c.fp),
    npv: wilson(c.tn, c.tn + c.fn),
  };
}

export interface Auc {
  value: number | null;
  /** DeLong 95 % interval; null with fewer than two positives or two negatives. */
  ci: [number, number] | null;
  positives: number;
  negatives: number;
  method: 'DeLong';
}

const psi = (x: number, y: number): number => (x > y ? 1 : x === y ? 0.5 : 0);

export function rocAuc(scores: readonly number[], truth: readonly (0 | 1)[]): Auc {
  const pos = scores.filter((_, i) => truth[i] === 1);
  const neg = scores.filter((_, i) => truth[i] === 0);
  const m = pos.length;
  const n = neg.length;
  if (m === 0 || n === 0) return { value: null, ci: null, positives: m, negatives: n, method: 'DeLong' };
  const v10 = pos.map((x) => neg.reduce((s, y) => s + psi(x, y), 0) / n);
  const v01 = neg.map((y) => pos.reduce((s, x) => s + psi(x, y), 0) / m);
  const auc = v10.reduce((a, b) => a + b, 0) / m;
  if (m < 2 || n < 2) return { value: auc, ci: null, positives: m, negatives: n, method: 'DeLong' };
  const variance = (v: number[]): number => {
    const mean = v.reduce((a, b) => a + b, 0) / v.length;
    return v.reduce((s, x) => s + (x - mean) ** 2, 0) / (v.length - 1);
  };
  const se = Math.sqrt(variance(v10) / m + variance(v01) / n);
  return { value: auc, ci: [Math.max(0, auc - Z95 * se), Math.min(1, auc + Z95 * se)], positives: m, negatives: n, method: 'DeLong' };
}

export interface RocPoint {
  /** Cases scoring at or above this are called positive. */
  threshold: number;
  fpr: number;
  tpr: number;
}

/** From (0,0) to (1,1), one point per distinct score (highest first). */
export function rocCurve(scores: readonly number[], truth: readonly (0 | 1)[]): RocPoint[] {
  const P = truth.filter((t) => t === 1).length;
  const N = truth.length - P;
  if (P === 0 || N === 0) return [];
  const order = scores.map((s, i) => [s, truth[i]!] as const).sort((a, b) => b[0] - a[0]);
  const out: RocPoint[] = [{ threshold: Infinity, fpr: 0, tpr: 0 }];
  let tp = 0;
  let fp = 0;
  for (let i = 0; i < order.length; i++) {
    if (order[i]![1] === 1) tp++;
    else fp++;
    if (i + 1 === order.length || order[i + 1]![0] !== order[i]![0]) out.push({ threshold: order[i]![0], fpr: fp / N, tpr: tp / P });
  }
  return out;
}

export interface CalibrationBin {
  from: number;
  to: number;
  n: number;
  /** Mean score of the bin's cases. */
  meanScore: number | null;
  /** Fraction of the bin's cases that are positive, with its Wilson interval. */
  observed: Proportion;
}

export function calibration(scores: readonly number[], truth: readonly (0 | 1)[], bins = 5): CalibrationBin[] {
  const out: CalibrationBin[] = [];
  for (let b = 0; b < bins; b++) {
    const from = b / bins;
    const to = (b + 1) / bins;
    const idx = scores.map((s, i) => [s, i] as const).filter(([s]) => s >= from && (b === bins - 1 ? s <= to : s < to));
    const k = idx.filter(([, i]) => truth[i] === 1).length;
    out.push({
      from,
      to,
      n: idx.length,
      meanScore: idx.length ? idx.reduce((a, [s]) => a + s, 0) / idx.length : null,
      observed: wilson(k, idx.length),
    });
  }
  return out;
}
