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
 * Flat triangle weights of one axis: output i uses source start[i] … start[i] + count[i] − 1 with w[off[i] + k].
 * tapStart/tapCount/tapOff/tapW are the same without the zero weights at the ends of a window (adding w·x = ±0
 * leaves a sum unchanged, so skipping them gives the same sums bit for bit).
 */
interface FlatWeights {
  start: Int32Array;
  count: Int32Array;
  off: Int32Array;
  w: Float64Array;
  /** Non-zero taps: source index and weight of tap k of output i at tapOff[i] + k, tapCount[i] of them. */
  tapIdx: Int32Array;
  tapCount: Int32Array;
  tapOff: Int32Array;
  tapW: Float64Array;
  /**
   * The non-zero taps again, padded with zero weights to the same number per output (`fixedN`, the most of any
   * output): output i reads source fixedStart[i] … + fixedN − 1 with fixedW[i · fixedN + k] (the non-zero taps
   * of a triangle are contiguous; a padded tap adds 0 · x = ±0, which leaves the sum as it is).
   */
  fixedN: number;
  fixedStart: Int32Array;
  fixedW: Float64Array;
}

/** Weights by "nIn/nOut": a series' slices share their sizes, so each pair is computed once (bounded cache). */
const flatCache = new Map<string, FlatWeights>();
const FLAT_CACHE_MAX = 256;

function flatWeights(nIn: number, nOut: number): FlatWeights {
  const key = `${nIn}/${nOut}`;
  const hit = flatCache.get(key);
  if (hit) return hit;
  const a = triangleWeights(nIn, nOut);
  const off = new Int32Array(nOut);
  let total = 0;
  for (let i = 0; i < nOut; i++) {
    off[i] = total;
    total += a.count[i] as number;
  }
  const w = new Float64Array(total);
  for (let i = 0; i < nOut; i++) w.set(a.weights[i] as Float64Array, off[i] as number);
  const tapIdx = new Int32Array(total);
  const tapW = new Float64Array(total);
  const tapCount = new Int32Array(nOut);
  const tapOff = new Int32Array(nOut);
  let t = 0;
  for (let i = 0; i < nOut; i++) {
    tapOff[i] = t;
    const ws = a.weights[i] as Float64Array;
    for (let k = 0; k < ws.length; k++) {
      if (ws[k] === 0) continue;
      tapIdx[t] = (a.start[i] as number) + k;
      tapW[t] = ws[k] as number;
      t++;
    }
    tapCount[i] = t - (tapOff[i] as number);
  }
  let fixedN = 0;
  for (let i = 0; i < nOut; i++) if ((tapCount[i] as number) > fixedN) fixedN = tapCount[i] as number;
  const fixedStart = new Int32Array(nOut);
  const fixedW = new Float64Array(nOut * fixedN);
  for (let i = 0; i < nOut; i++) {
    fixedStart[i] = (tapCount[i] as number) > 0 ? (tapIdx[tapOff[i] as number] as number) : 0;
    for (let k = 0; k < (tapCount[i] as number); k++) fixedW[i * fixedN + k] = tapW[(tapOff[i] as number) + k] as number;
  }
  const f: FlatWeights = { start: a.start, count: a.count, off, w, tapIdx, tapCount, tapOff, tapW, fixedN, fixedStart, fixedW };
  if (flatCache.size >= FLAT_CACHE_MAX) flatCache.delete(flatCache.keys().next().value as string);
  flatCache.set(key, f);
  return f;
}

let tmpScratch = new Float64Array(0);
const rowOff = new Int32Array(64);
const rowW = new Float64Array(64);

/**
 * Resample the inclusive box (x0..x1, y0..y1) of a row-major image `srcWidth` wide to outW × outH with the
 * triangle filter: rows first (into `outH` rows of the box's width), then columns. Float64 throughout; every
 * output value is the sum of its taps in the same order as ever (from 0, tap by tap from the first), so results
 * are bit for bit those of the plain definition. The row pass sums each value's taps in a register (one pass
 * over the source rows instead of one read-modify-write pass per tap). `out` (outW × outH) is written when
 * given, else allocated.
 */
export function resampleBox(
  src: Float32Array | Float64Array,
  srcWidth: number,
  box: { x0: number; y0: number; x1: number; y1: number },
  outW: number,
  outH: number,
  out?: Float64Array,
): Float64Array {
  const ch = box.y1 - box.y0 + 1;
  const cw = box.x1 - box.x0 + 1;
  const wy = flatWeights(ch, outH);
  const wx = flatWeights(cw, outW);
  // (+ fixedN: the padded taps of the last value may read past the last row; any finite value times 0 is ±0)
  if (tmpScratch.length < outH * cw + wx.fixedN) tmpScratch = new Float64Array(outH * cw + wx.fixedN);
  const tmp = tmpScratch;
  // one copy of the row pass per source type: each stays monomorphic
  if (src instanceof Float32Array) rowsF32(src, srcWidth, box.x0, box.y0, cw, outH, wy, tmp);
  else rowsF64(src, srcWidth, box.x0, box.y0, cw, outH, wy, tmp);
  const res = out ?? new Float64Array(outH * outW);
  columns(tmp, cw, outH, outW, wx, res);
  return res;
}

/** The column pass: every value's taps in a register, unrolled for the usual 3-6 taps per value. */
function columns(tmp: Float64Array, cw: number, outH: number, outW: number, wx: FlatWeights, res: Float64Array): void {
  const n = wx.fixedN;
  const fs = wx.fixedStart;
  const fw = wx.fixedW;
  for (let i = 0; i < outH; i++) {
    const trow = i * cw;
    const orow = i * outW;
    if (n === 4) {
      for (let o = 0; o < outW; o++) {
        const t = trow + (fs[o] as number);
        const b = o * 4;
        res[orow + o] =
          0 +
          (fw[b] as number) * (tmp[t] as number) +
          (fw[b + 1] as number) * (tmp[t + 1] as number) +
          (fw[b + 2] as number) * (tmp[t + 2] as number) +
          (fw[b + 3] as number) * (tmp[t + 3] as number);
      }
    } else if (n === 5) {
      for (let o = 0; o < outW; o++) {
        const t = trow + (fs[o] as number);
        const b = o * 5;
        res[orow + o] =
          0 +
          (fw[b] as number) * (tmp[t] as number) +
          (fw[b + 1] as number) * (tmp[t + 1] as number) +
          (fw[b + 2] as number) * (tmp[t + 2] as number) +
          (fw[b + 3] as number) * (tmp[t + 3] as number) +
          (fw[b + 4] as number) * (tmp[t + 4] as number);
      }
    } else if (n === 3) {
      for (let o = 0; o < outW; o++) {
        const t = trow + (fs[o] as number);
        const b = o * 3;
        res[orow + o] =
          0 +
          (fw[b] as number) * (tmp[t] as number) +
          (fw[b + 1] as number) * (tmp[t + 1] as number) +
          (fw[b + 2] as number) * (tmp[t + 2] as number);
      }
    } else {
      for (let o = 0; o < outW; o++) {
        const t = trow + (fs[o] as number);
        const b = o * n;
        let acc = 0;
        for (let k = 0; k < n; k++) acc += (fw[b + k] as number) * (tmp[t + k] as number);
        res[orow + o] = acc;
      }
    }
  }
}

/** The non-zero taps of output row i as source row offsets and weights in rowOff / rowW; returns their count. */
function rowTaps(wy: FlatWeights, i: number, srcWidth: number, x0: number, y0: number): number {
  const k0 = wy.tapOff[i] as number;
  const n = wy.tapCount[i] as number;
  if (n > rowOff.length) throw new Error(`resample: ${n} taps per output (at most ${rowOff.length})`);
  for (let k = 0; k < n; k++) {
    rowOff[k] = (y0 + (wy.tapIdx[k0 + k] as number)) * srcWidth + x0;
    rowW[k] = wy.tapW[k0 + k] as number;
  }
  return n;
}

function rowsF32(
  src: Float32Array,
  srcWidth: number,
  x0: number,
  y0: number,
  cw: number,
  outH: number,
  wy: FlatWeights,
  tmp: Float64Array,
): void {
  for (let i = 0; i < outH; i++) {
    const n = rowTaps(wy, i, srcWidth, x0, y0);
    const trow = i * cw;
    if (n === 4) {
      const a = rowOff[0] as number;
      const b = rowOff[1] as number;
      const c = rowOff[2] as number;
      const d = rowOff[3] as number;
      const wa = rowW[0] as number;
      const wb = rowW[1] as number;
      const wc = rowW[2] as number;
      const wd = rowW[3] as number;
      for (let x = 0; x < cw; x++) {
        tmp[trow + x] =
          0 + wa * (src[a + x] as number) + wb * (src[b + x] as number) + wc * (src[c + x] as number) + wd * (src[d + x] as number);
      }
    } else if (n === 3) {
      const a = rowOff[0] as number;
      const b = rowOff[1] as number;
      const c = rowOff[2] as number;
      const wa = rowW[0] as number;
      const wb = rowW[1] as number;
      const wc = rowW[2] as number;
      for (let x = 0; x < cw; x++)
        tmp[trow + x] = 0 + wa * (src[a + x] as number) + wb * (src[b + x] as number) + wc * (src[c + x] as number);
    } else if (n === 5) {
      const a = rowOff[0] as number;
      const b = rowOff[1] as number;
      const c = rowOff[2] as number;
      const d = rowOff[3] as number;
      const e = rowOff[4] as number;
      const wa = rowW[0] as number;
      const wb = rowW[1] as number;
      const wc = rowW[2] as number;
      const wd = rowW[3] as number;
      const we = rowW[4] as number;
      for (let x = 0; x < cw; x++) {
        tmp[trow + x] =
          0 +
          wa * (src[a + x] as number) +
          wb * (src[b + x] as number) +
          wc * (src[c + x] as number) +
          wd * (src[d + x] as number) +
          we * (src[e + x] as number);
      }
    } else if (n === 2) {
      const a = rowOff[0] as number;
      const b = rowOff[1] as number;
      const wa = rowW[0] as number;
      const wb = rowW[1] as number;
      for (let x = 0; x < cw; x++) tmp[trow + x] = 0 + wa * (src[a + x] as number) + wb * (src[b + x] as number);
    } else {
      for (let x = 0; x < cw; x++) {
        let acc = 0;
        for (let k = 0; k < n; k++) acc += (rowW[k] as number) * (src[(rowOff[k] as number) + x] as number);
        tmp[trow + x] = acc;
      }
    }
  }
}

function rowsF64(
  src: Float64Array,
  srcWidth: number,
  x0: number,
  y0: number,
  cw: number,
  outH: number,
  wy: FlatWeights,
  tmp: Float64Array,
): void {
  for (let i = 0; i < outH; i++) {
    const n = rowTaps(wy, i, srcWidth, x0, y0);
    const trow = i * cw;
    if (n === 4) {
      const a = rowOff[0] as number;
      const b = rowOff[1] as number;
      const c = rowOff[2] as number;
      const d = rowOff[3] as number;
      const wa = rowW[0] as number;
      const wb = rowW[1] as number;
      const wc = rowW[2] as number;
      const wd = rowW[3] as number;
      for (let x = 0; x < cw; x++) {
        tmp[trow + x] =
          0 + wa * (src[a + x] as number) + wb * (src[b + x] as number) + wc * (src[c + x] as number) + wd * (src[d + x] as number);
      }
    } else if (n === 3) {
      const a = rowOff[0] as number;
      const b = rowOff[1] as number;
      const c = rowOff[2] as number;
      const wa = rowW[0] as number;
      const wb = rowW[1] as number;
      const wc = rowW[2] as number;
      for (let x = 0; x < cw; x++)
        tmp[trow + x] = 0 + wa * (src[a + x] as number) + wb * (src[b + x] as number) + wc * (src[c + x] as number);
    } else if (n === 5) {
      const a = rowOff[0] as number;
      const b = rowOff[1] as number;
      const c = rowOff[2] as number;
      const d = rowOff[3] as number;
      const e = rowOff[4] as number;
      const wa = rowW[0] as number;
      const wb = rowW[1] as number;
      const wc = rowW[2] as number;
      const wd = rowW[3] as number;
      const we = rowW[4] as number;
      for (let x = 0; x < cw; x++) {
        tmp[trow + x] =
          0 +
          wa * (src[a + x] as number) +
          wb * (src[b + x] as number) +
          wc * (src[c + x] as number) +
          wd * (src[d + x] as number) +
          we * (src[e + x] as number);
      }
    } else if (n === 2) {
      const a = rowOff[0] as number;
      const b = rowOff[1] as number;
      const wa = rowW[0] as number;
      const wb = rowW[1] as number;
      for (let x = 0; x < cw; x++) tmp[trow + x] = 0 + wa * (src[a + x] as number) + wb * (src[b + x] as number);
    } else {
      for (let x = 0; x < cw; x++) {
        let acc = 0;
        for (let k = 0; k < n; k++) acc += (rowW[k] as number) * (src[(rowOff[k] as number) + x] as number);
        tmp[trow + x] = acc;
      }
    }
  }
}
