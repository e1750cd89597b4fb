/**
 * The single preprocessing definition of the mlsam model (TypeScript twin of training/preprocess.py).
 * Its parameters come from the model metadata (`preprocessing`), never hard-coded here.
 *
 * 1. to [0,1]: kind 'hu'      -> clamp((HU - (center - width/2)) / width, 0, 1)  (lung window)
 *              kind 'display' -> gray / display.scale (8-bit gray already windowed; RGB -> ITU-R 601 luma by the caller)
 * 2. body crop ('body-bbox'): mask = v > threshold; rowFrac[y] = count(mask row y) / W, colFrac[x] = count(col x) / H;
 *    y0/y1 = first/last row with rowFrac >= minFraction (same for columns). If none, or the box is smaller than
 *    minSizeFraction of the image in either direction, keep the whole image; else grow it by
 *    floor(marginFraction * max(H, W)) pixels per side, clipped to the image.
 * 3. resize the crop to height x width (aspect not kept) with a separable antialiased triangle filter:
 *    s = nIn / nOut, r = max(s, 1), centre c = (i + 0.5) * s, w_j = max(0, 1 - |j + 0.5 - c| / r), normalised.
 * 4. (x - mean) / std, repeated to `channels` channels, written CHW at `offset`.
 * All arithmetic is float64 (JS numbers); only the output is float32.
 */
import { z } from 'zod';

export interface SliceImage {
  width: number;
  height: number;
  /** row-major; 'hu' = Hounsfield units, 'display' = 0..255 gray */
  data: Float32Array;
  kind: 'hu' | 'display';
}

export const preprocessingSchema = z.object({
  window: z.object({ center: z.number(), width: z.number().positive() }),
  display: z.object({ scale: z.number().positive() }),
  crop: z.object({
    method: z.enum(['body-bbox', 'none']),
    threshold: z.number(),
    minFraction: z.number().min(0).max(1),
    marginFraction: z.number().min(0),
    minSizeFraction: z.number().min(0).max(1),
  }),
  resize: z.object({
    method: z.literal('triangle-antialias'),
    width: z.number().int().positive(),
    height: z.number().int().positive(),
    keepAspect: z.literal(false),
  }),
  normalize: z.object({ mean: z.number(), std: z.number().positive() }),
  channels: z.number().int().positive(),
  layout: z.literal('CHW'),
});

export type Preprocessing = z.infer<typeof preprocessingSchema>;

/** Number of floats preprocessSlice writes for one slice. */
export function sliceSize(spec: Preprocessing): number {
  return spec.channels * spec.resize.height * spec.resize.width;
}

const scratchBuffers = new Map<string, Float64Array>();

/** A reusable float64 buffer of at least `n` values (its first n are returned; contents undefined). */
function scratch(name: string, n: number): Float64Array {
  let b = scratchBuffers.get(name);
  if (!b || b.length < n) {
    b = new Float64Array(n);
    scratchBuffers.set(name, b);
  }
  return b.length === n ? b : b.subarray(0, n);
}

/** Step 1: image to [0,1] (float64). */
export function toUnit(img: SliceImage, spec: Preprocessing): Float64Array {
  return toUnitInto(img, spec, new Float64Array(img.width * img.height));
}

function toUnitInto(img: SliceImage, spec: Preprocessing, v: Float64Array): Float64Array {
  const n = img.width * img.height;
  if (img.data.length < n) {
    throw new Error(`slice data has ${img.data.length} values, expected ${n}`);
  }
  const data = img.data;
  if (img.kind === 'hu') {
    const w = spec.window.width;
    const lo = spec.window.center - w / 2;
    for (let i = 0; i < n; i++) {
      const x = ((data[i] as number) - lo) / w;
      v[i] = x < 0 ? 0 : x > 1 ? 1 : x;
    }
  } else {
    const s = spec.display.scale;
    for (let i = 0; i < n; i++) {
      const x = (data[i] as number) / s;
      v[i] = x < 0 ? 0 : x > 1 ? 1 : x;
    }
  }
  return v;
}

export interface CropBox {
  y0: number;
  y1: number;
  x0: number;
  x1: number;
}

/** Step 2: inclusive crop box. */
export function cropBox(v: Float64Array, width: number, height: number, spec: Preprocessing): CropBox {
  const full: CropBox = { y0: 0, y1: height - 1, x0: 0, x1: width - 1 };
  const cs = spec.crop;
  if (cs.method === 'none') return full;
  const rowCnt = new Int32Array(height);
  const colCnt = new Int32Array(width);
  for (let y = 0; y < height; y++) {
    const base = y * width;
    for (let x = 0; x < width; x++) {
      if ((v[base + x] as number) > cs.threshold) {
        rowCnt[y] = (rowCnt[y] as number) + 1;
        colCnt[x] = (colCnt[x] as number) + 1;
      }
    }
  }
  let y0 = -1;
  let y1 = -1;
  let x0 = -1;
  let x1 = -1;
  for (let y = 0; y < height; y++) {
    if ((rowCnt[y] as number) / width >= cs.minFraction) {
      if (y0 < 0) y0 = y;
      y1 = y;
    }
  }
  for (let x = 0; x < width; x++) {
    if ((colCnt[x] as number) / height >= cs.minFraction) {
      if (x0 < 0) x0 = x;
      x1 = x;
    }
  }
  if (y0 < 0 || x0 < 0) return full;
  if (y1 - y0 + 1 < cs.minSizeFraction * height || x1 - x0 + 1 < cs.minSizeFraction * width) return full;
  const m = Math.floor(cs.marginFraction * Math.max(height, width));
  return {
    y0: Math.max(0, y0 - m),
    y1: Math.min(height - 1, y1 + m),
    x0: Math.max(0, x0 - m),
    x1: Math.min(width - 1, x1 + m),
  };
}

interface AxisWeights {
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
 * Preprocess one slice into `out` (C*H*W floats at `offset`); allocates `out` when not given.
 * Returns `out`.
 */
export function preprocessSlice(
  img: SliceImage,
  spec: Preprocessing,
  out?: Float32Array,
  offset = 0,
): Float32Array {
  const dst = out ?? new Float32Array(offset + sliceSize(spec));
  preprocessInto(img, spec, dst, offset);
  return dst;
}

/** preprocessSlice into a given buffer; returns the body crop box it used (for attention overlays). */
export function preprocessInto(img: SliceImage, spec: Preprocessing, dst: Float32Array, offset = 0): CropBox {
  const outH = spec.resize.height;
  const outW = spec.resize.width;
  const plane = outH * outW;
  const size = spec.channels * plane;
  if (dst.length < offset + size) {
    throw new Error(`output buffer too small: need ${offset + size}, have ${dst.length}`);
  }
  if (!(img.width > 0 && img.height > 0)) throw new Error('empty slice');

  // Scratch buffers reused from slice to slice (a 512x512 slice would otherwise allocate ~3 MB of
  // float64 per call); same arithmetic as toUnit() and a fresh buffer.
  const v = toUnitInto(img, spec, scratch('unit', img.width * img.height));
  const box = cropBox(v, img.width, img.height, spec);
  const ch = box.y1 - box.y0 + 1;
  const cw = box.x1 - box.x0 + 1;
  const wy = triangleWeights(ch, outH);
  const wx = triangleWeights(cw, outW);

  // rows first: tmp[outH][cw]
  const tmp = scratch('rows', outH * cw);
  tmp.fill(0);
  for (let i = 0; i < outH; i++) {
    const s0 = wy.start[i] as number;
    const w = wy.weights[i] as Float64Array;
    const trow = i * cw;
    for (let k = 0; k < w.length; k++) {
      const wk = w[k] as number;
      if (wk === 0) continue;
      const srow = (box.y0 + s0 + k) * img.width + box.x0;
      for (let x = 0; x < cw; x++) tmp[trow + x] = (tmp[trow + x] as number) + wk * (v[srow + x] as number);
    }
  }
  const mean = spec.normalize.mean;
  const std = spec.normalize.std;
  for (let i = 0; i < outH; i++) {
    const trow = i * cw;
    for (let o = 0; o < outW; o++) {
      const s0 = wx.start[o] as number;
      const w = wx.weights[o] as Float64Array;
      let acc = 0;
      for (let k = 0; k < w.length; k++) acc += (w[k] as number) * (tmp[trow + s0 + k] as number);
      const val = (acc - mean) / std;
      const p = i * outW + o;
      for (let c = 0; c < spec.channels; c++) dst[offset + c * plane + p] = val;
    }
  }
  return box;
}
