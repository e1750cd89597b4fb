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


/**
 * Resample the inclusive box (x0..x1, y0..y1) of a row-major image `srcWidth` wide to outW × outH with the
 * triangle filter: rows first (into `outH` rows of the box's width), then columns. Float64 throughout.
 */
export function resampleBox(
  src: ArrayLike<number>, srcWidth: number, box: { x0: number; y0: number; x1: number; y1: number }, outW: number, outH: number,
): Float64Array {
  const ch = box.y1 - box.y0 + 1;
  const cw = box.x1 - box.x0 + 1;
  const wy = triangleWeights(ch, outH);
  const wx = triangleWeights(cw, outW);
  const tmp = new Float64Array(outH * cw);
  for (let i = 0; i < outH; i++) {
    const s0 = wy.start[i] as number;
    const w = wy.weights[i] as Float64Array;
    const trow = i * cw;
    for (let k = 0; k < w.length; k++) {
      const wk = w[k] as number;
      if (wk === 0) continue;
      const srow = (box.y0 + s0 + k) * srcWidth + box.x0;
      for (let x = 0; x < cw; x++) tmp[trow + x] = (tmp[trow + x] as number) + wk * (src[srow + x] as number);
    }
  }
  const out = new Float64Array(outH * outW);
  for (let i = 0; i < outH; i++) {
    const trow = i * cw;
    for (let o = 0; o < outW; o++) {
      const s0 = wx.start[o] as number;
      const w = wx.weights[o] as Float64Array;
      let acc = 0;
      for (let k = 0; k < w.length; k++) acc += (w[k] as number) * (tmp[trow + s0 + k] as number);
      out[i * outW + o] = acc;
    }
  }
  return out;
}
