/**
 * The antialiased triangle resampling filter of the preprocessing (twin: training/preprocess.py
 * triangle_weights): s = nIn / nOut, r = max(s, 1), centre c = (i + 0.5) · s, w_j = max(0, 1 − |j + 0.5 − c| / r),
 * normalised. The CNN input and the lung working grid both use it.
 */

export interface AxisWeights {
  start: Int32Array; // first source index with non-zero weight, per output
  count: Int32Array; // number of source indices, per output
  weights: Float64Array[]; // normalised weights, per output
}

/** Triangle filter weights for one axis (same formula as triangle_weights in preprocess.py). */
export function triangleWeights(nIn: number, nOut: number): AxisWeights {
  const s = nIn / nOut;
  const r = Math.max(s, 1);
  const start = new Int32Array(nOut);
  const count = new Int32Array(nOut);
  const weights: Float64Array[] = [];
  for (let i = 0; i < nOut; i++) {
    const c = (i + 0.5) * s;
    const lo = Math.max(0, Math.floor(c - r - 0.5));
    const hi = Math.min(nIn - 1, Math.ceil(c + r - 0.5));
    const w = new Float64Array(hi - lo + 1);
    let sum = 0;
    for (let j = lo; j <= hi; j++) {
      const t = 1 - Math.abs(j + 0.5 - c) / r;
      const wt = t > 0 ? t : 0;
      w[j - lo] = wt;
      sum += wt;
    }
    for (let k = 0; k < w.length; k++) w[k] = (w[k] as number) / sum;
    start[i] = lo;
    count[i] = w.length;
    weights.push(w);
  }
  return { start, count, weights };
}

