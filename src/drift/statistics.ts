/**
 * The statistics of the drift watch (pure functions, no I/O):
 * - the Population Stability Index of two binned samples, PSI = Σ (aᵢ − eᵢ)·ln(aᵢ / eᵢ) over the
 *   bins' shares (e: reference, a: current), an empty bin's share replaced by PSI_EPSILON;
 * - its chance distribution: with no change, PSI ≈ (1/n + 1/m)·χ²(B − 1) (Yurdakul 2018), so a
 *   p-value says whether a PSI is beyond what sampling noise gives at these window sizes;
 * - bins at the reference's quantiles (linear interpolation, as numpy's default), ties merged;
 * - the two-sample Kolmogorov–Smirnov statistic D = sup |F₁ − F₂| with its two-sided p-value:
 *   exact (lattice paths, as scipy.stats.ks_2samp method="exact", ties ignored) up to
 *   KS_EXACT_MAX_PRODUCT = n·m, else Kolmogorov's limit with Stephens' small-sample correction.
 */

/** Share given to an empty bin (as Evidently and most PSI implementations do), so ln(a / e) stays finite. */
export const PSI_EPSILON = 1e-4;

/** Up to this n·m the KS p-value is exact (O(n·m) time, O(m) memory). */
export const KS_EXACT_MAX_PRODUCT = 4_000_000;

export interface PsiResult {
  value: number;
  /** Per bin: (a − e)·ln(a / e) with the shares after the epsilon. */
  terms: number[];
}

/** PSI of two histograms over the same bins (counts). Bins empty in both are left out. */
export function psi(reference: readonly number[], current: readonly number[], epsilon = PSI_EPSILON): PsiResult {
  const n = reference.reduce((a, b) => a + b, 0);
  const m = current.reduce((a, b) => a + b, 0);
  if (n === 0 || m === 0) throw new Error('psi: a window has no values');
  const terms: number[] = [];
  let value = 0;
  reference.forEach((r, i) => {
    const c = current[i] ?? 0;
    if (r === 0 && c === 0) {
      terms.push(0);
      return;
    }
    const e = r === 0 ? epsilon : r / n;
    const a = c === 0 ? epsilon : c / m;
    const t = (a - e) * Math.log(a / e);
    terms.push(t);
    value += t;
  });
  return { value, terms };
}

/**
 * The probability that PSI is at least `value` when both windows come from one distribution:
 * P(χ²(bins − 1) ≥ value / (1/n + 1/m)) (Yurdakul 2018). `bins`: bins holding any value.
 */
export function psiChancePValue(value: number, bins: number, n: number, m: number): number {
  if (bins < 2) return 1;
  return chiSquareSf(value / (1 / n + 1 / m), bins - 1);
}

/** numpy.quantile's default (linear interpolation between order statistics) of sorted values. */
export function quantileSorted(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) throw new Error('quantile of no values');
  const h = (sorted.length - 1) * p;
  const lo = Math.floor(h);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo]! + (h - lo) * (sorted[hi]! - sorted[lo]!);
}

/** Inner edges of `bins` equal-count bins of the reference (its k/bins quantiles), duplicates merged. */
export function quantileEdges(reference: readonly number[], bins: number): number[] {
  const sorted = [...reference].sort((a, b) => a - b);
  const edges: number[] = [];
  for (let k = 1; k < bins; k++) {
    const q = quantileSorted(sorted, k / bins);
    if (edges.length === 0 || q > edges[edges.length - 1]!) edges.push(q);
  }
  return edges;
}

/** Counts per bin: bin 0 is x ≤ edges[0], bin k is edges[k−1] < x ≤ edges[k], the last x > the last edge. */
export function binCounts(values: readonly number[], edges: readonly number[]): number[] {
  const counts = new Array<number>(edges.length + 1).fill(0);
  for (const x of values) {
    let lo = 0;
    let hi = edges.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (x <= edges[mid]!) hi = mid;
      else lo = mid + 1;
    }
    counts[lo]!++;
  }
  return counts;
}

export interface KsResult {
  /** sup |F₁(x) − F₂(x)| over the pooled values. */
  statistic: number;
  /** Two-sided p-value. */
  pValue: number;
  method: 'exact' | 'asymptotic';
}

/** The two-sample Kolmogorov–Smirnov test (two-sided). */
export function ks2(a: readonly number[], b: readonly number[]): KsResult {
  const n = a.length;
  const m = b.length;
  if (n === 0 || m === 0) throw new Error('ks2: a sample is empty');
  const x = [...a].sort((p, q) => p - q);
  const y = [...b].sort((p, q) => p - q);
  // Walk the pooled values; after each distinct value both CDFs are exact (ties moved together).
  let i = 0;
  let j = 0;
  let dInt = 0; // max |i·m − j·n|, so that D = dInt / (n·m) exactly
  while (i < n || j < m) {
    const v = i < n && (j >= m || x[i]! <= y[j]!) ? x[i]! : y[j]!;
    while (i < n && x[i] === v) i++;
    while (j < m && y[j] === v) j++;
    dInt = Math.max(dInt, Math.abs(i * m - j * n));
  }
  const statistic = dInt / (n * m);
  if (n * m <= KS_EXACT_MAX_PRODUCT) return { statistic, pValue: ksExactPValue(n, m, dInt), method: 'exact' };
  const en = (n * m) / (n + m);
  const lambda = (Math.sqrt(en) + 0.12 + 0.11 / Math.sqrt(en)) * statistic;
  return { statistic, pValue: kolmogorovSf(lambda), method: 'asymptotic' };
}

/**
 * P(D ≥ dInt / (n·m)) for samples of n and m from one continuous distribution: one minus the
 * probability that a uniformly random lattice path from (0,0) to (n,m) keeps |i·m − j·n| < dInt.
 */
export function ksExactPValue(n: number, m: number, dInt: number): number {
  if (dInt <= 0) return 1;
  // row[j]: probability that the path reaches (i, j) having stayed inside.
  let row = new Float64Array(m + 1);
  row[0] = 1;
  for (let j = 1; j <= m; j++) {
    const inside = Math.abs(0 * m - j * n) < dInt;
    // From (0, j−1) the step is "up" (j) with probability (m − j + 1) / (n + m − j + 1).
    row[j] = inside ? row[j - 1]! * ((m - j + 1) / (n + m - (j - 1))) : 0;
  }
  for (let i = 1; i <= n; i++) {
    const next = new Float64Array(m + 1);
    for (let j = 0; j <= m; j++) {
      if (Math.abs(i * m - j * n) >= dInt) continue;
      const left = n + m - (i - 1) - j; // steps left at (i−1, j)
      let p = row[j]! * ((n - i + 1) / left);
      if (j > 0) {
        const leftUp = n + m - i - (j - 1); // steps left at (i, j−1)
        p += next[j - 1]! * ((m - j + 1) / leftUp);
      }
      next[j] = p;
    }
    row = next;
  }
  return Math.min(1, Math.max(0, 1 - row[m]!));
}

/** Kolmogorov's limiting distribution: P(K > λ) = 2 Σ (−1)^(k−1) exp(−2k²λ²). */
export function kolmogorovSf(lambda: number): number {
  if (lambda <= 0) return 1;
  if (lambda < 0.2) return 1; // the series converges slowly there and the value is 1 to 1e-10
  let sum = 0;
  for (let k = 1; k <= 100; k++) {
    const t = Math.exp(-2 * k * k * lambda * lambda);
    sum += (k % 2 === 1 ? 1 : -1) * t;
    if (t < 1e-17) break;
  }
  return Math.min(1, Math.max(0, 2 * sum));
}

/** ln Γ(x), x > 0 (Lanczos, g = 7, 9 terms; ~15 digits). */
export function lnGamma(x: number): number {
  const c = [
    0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905,
    -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
  ];
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - lnGamma(1 - x);
  const z = x - 1;
  let a = c[0]!;
  const t = z + 7.5;
  for (let i = 1; i < 9; i++) a += c[i]! / (z + i);
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(a);
}

/** Regularized upper incomplete gamma Q(s, x) (series below s + 1, Lentz continued fraction above). */
export function gammaQ(s: number, x: number): number {
  if (x <= 0) return 1;
  const lead = s * Math.log(x) - x - lnGamma(s);
  if (x < s + 1) {
    let term = 1 / s;
    let sum = term;
    for (let k = 1; k < 10_000; k++) {
      term *= x / (s + k);
      sum += term;
      if (Math.abs(term) < Math.abs(sum) * 1e-16) break;
    }
    return Math.max(0, 1 - sum * Math.exp(lead));
  }
  const tiny = 1e-300;
  let b = x + 1 - s;
  let c = 1 / tiny;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < 10_000; i++) {
    const an = -i * (i - s);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < tiny) d = tiny;
    c = b + an / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const delta = d * c;
    h *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return Math.min(1, Math.exp(lead) * h);
}

/** P(χ²(df) ≥ x). */
export function chiSquareSf(x: number, df: number): number {
  return gammaQ(df / 2, x / 2);
}
