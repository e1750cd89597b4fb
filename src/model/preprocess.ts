/**
 * The single preprocessing definition of the mlsam model (TypeScript twin of training/preprocess.py).
 * Its parameters come from the model metadata (`preprocessing`), never hard-coded here.
 *
 * 1. to [0,1]: kind 'hu'      -> clamp((HU - (center - width/2)) / width, 0, 1)  (lung window)
 *              kind 'display' -> gray / display.scale (8-bit gray already windowed; RGB -> ITU-R 601 luma by the caller)
 * 2. crop ('lung-bbox', model 2.x): the bounding box of the lung mask (lung.ts, on the working grid), mapped back to
 *    source pixels (working row y covers source rows floor(y·H/h) … ceil((y+1)·H/h) − 1), grown by
 *    floor(lungMarginFraction · max(box height, box width)) per side, clipped. Display images are mapped back
 *    through the lung window to pseudo-HU with a nominal pixel size of displayFovMm / max(H, W). Less than
 *    minLungMm2 of lung, or a display image that does not show both lungs → the body box instead.
 *    Body crop ('body-bbox', 1.x and the fallback): mask = v > threshold; rowFrac[y] = count(mask row y) / W,
 *    colFrac[x] = count(col x) / H; y0/y1 = first/last row with rowFrac >= minFraction (same for columns). If
 *    none, or the box is smaller than minSizeFraction of the image in either direction, keep the whole image;
 *    else grow it by floor(marginFraction * max(H, W)) pixels per side, clipped to the image.
 * 3. resize the crop to height x width (aspect not kept) with a separable antialiased triangle filter:
 *    s = nIn / nOut, r = max(s, 1), centre c = (i + 0.5) * s, w_j = max(0, 1 - |j + 0.5 - c| / r), normalised.
 * 4. (x - mean) / std, repeated to `channels` channels, written CHW at `offset`.
 * All arithmetic is float64 (JS numbers); only the output is float32.
 */
import { z } from 'zod';
import { lungSpecSchema, segmentLungs, toWorkGrid, type LungSegmentation } from './lung.js';
import { bbox, count } from './morphology.js';
import { resampleBox } from './resample.js';

export { triangleWeights } from './resample.js';

export interface SliceImage {
  width: number;
  height: number;
  /** row-major; 'hu' = Hounsfield units, 'display' = 0..255 gray */
  data: Float32Array;
  kind: 'hu' | 'display';
  /** [row spacing, column spacing] in mm (DICOM PixelSpacing); required for 'hu' with the lung crop. */
  pixelSpacing?: readonly [number, number] | null;
  /** DICOM SliceThickness in mm, when known (the opacity measurement widens its ground-glass opening on thick slices). */
  sliceThicknessMm?: number | null;
}

export const preprocessingSchema = z
  .object({
    window: z.object({ center: z.number(), width: z.number().positive() }),
    display: z.object({ scale: z.number().positive() }),
    crop: z.object({
      method: z.enum(['lung-bbox', 'body-bbox', 'none']),
      threshold: z.number(),
      minFraction: z.number().min(0).max(1),
      marginFraction: z.number().min(0),
      minSizeFraction: z.number().min(0).max(1),
      lungMarginFraction: z.number().min(0).optional(),
      minLungMm2: z.number().min(0).optional(),
      displayFovMm: z.number().positive().optional(),
    }),
    /** Lung segmentation (lung.ts): the 'lung-bbox' crop and the opacity quantification use it. */
    lungs: lungSpecSchema.optional(),
    resize: z.object({
      method: z.literal('triangle-antialias'),
      width: z.number().int().positive(),
      height: z.number().int().positive(),
      keepAspect: z.literal(false),
    }),
    normalize: z.object({ mean: z.number(), std: z.number().positive() }),
    channels: z.number().int().positive(),
    layout: z.literal('CHW'),
  })
  .superRefine((p, ctx) => {
    if (p.crop.method !== 'lung-bbox') return;
    if (!p.lungs) ctx.addIssue({ code: 'custom', path: ['lungs'], message: "required by crop method 'lung-bbox'" });
    for (const k of ['lungMarginFraction', 'minLungMm2', 'displayFovMm'] as const) {
      if (p.crop[k] === undefined) ctx.addIssue({ code: 'custom', path: ['crop', k], message: "required by crop method 'lung-bbox'" });
    }
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

/** Step 1 for the values from..to − 1 of the image (the rest of `v` is left as it is). */
function toUnitInto(img: SliceImage, spec: Preprocessing, v: Float64Array, from = 0, to = img.width * img.height): Float64Array {
  const n = img.width * img.height;
  if (img.data.length < n) {
    throw new Error(`slice data has ${img.data.length} values, expected ${n}`);
  }
  const data = img.data;
  if (img.kind === 'hu') {
    const w = spec.window.width;
    const lo = spec.window.center - w / 2;
    for (let i = from; i < to; i++) {
      const x = ((data[i] as number) - lo) / w;
      v[i] = x < 0 ? 0 : x > 1 ? 1 : x;
    }
  } else {
    const s = spec.display.scale;
    for (let i = from; i < to; i++) {
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

export type CropUsed = 'lung' | 'body' | 'none';

export interface Crop {
  box: CropBox;
  used: CropUsed;
}

/** HU (or the pseudo-HU of a display image) and the pixel spacing the lung mask is computed from. */
export function huForLungs(img: SliceImage, spec: Preprocessing): { hu: ArrayLike<number>; spacing: [number, number] } {
  if (img.kind === 'hu') {
    if (!img.pixelSpacing) throw new Error('HU slice without pixel spacing: the lung crop needs it');
    return { hu: img.data, spacing: [img.pixelSpacing[0], img.pixelSpacing[1]] };
  }
  const c = spec.window.center;
  const w = spec.window.width;
  const s = spec.display.scale;
  const n = img.width * img.height;
  const hu = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const x = (img.data[i] as number) / s;
    hu[i] = c - w / 2 + (x < 0 ? 0 : x > 1 ? 1 : x) * w;
  }
  const px = (spec.crop.displayFovMm as number) / Math.max(img.width, img.height);
  return { hu, spacing: [px, px] };
}

/** The lung segmentation the crop uses (computed when the caller has none). */
export function lungsForCrop(img: SliceImage, spec: Preprocessing): LungSegmentation {
  if (!spec.lungs) throw new Error("preprocessing has no 'lungs' block");
  const { hu, spacing } = huForLungs(img, spec);
  return segmentLungs(toWorkGrid(hu, img.width, img.height, spacing, spec.lungs.workMm), spec.lungs);
}

/**
 * A display image gets the lung box only when it shows both lungs: the box spans at least 40 % of the image's
 * width and minSizeFraction of its height, and each side of the split column holds ≥ 15 % of the lung pixels.
 */
function displayLungsPlausible(
  seg: LungSegmentation,
  box: { x0: number; y0: number; x1: number; y1: number },
  spec: Preprocessing,
): boolean {
  const { width: ww, height: hh } = seg.lung;
  if (box.y1 - box.y0 + 1 < spec.crop.minSizeFraction * hh || box.x1 - box.x0 + 1 < 0.4 * ww) return false;
  let s0 = 0;
  let s1 = 0;
  for (let i = 0; i < seg.side.length; i++) {
    if (seg.side[i] === 0) s0++;
    else if (seg.side[i] === 1) s1++;
  }
  return Math.min(s0, s1) >= 0.15 * (s0 + s1);
}

/** Step 2: the crop box and which rule made it. `seg` (of this slice) is reused when given. */
export function cropFor(img: SliceImage, v: Float64Array, spec: Preprocessing, seg?: LungSegmentation): Crop {
  return cropOf(img, () => v, spec, seg);
}

/** cropFor with the [0,1] image asked for only when a rule needs it (the body box; not the lung box). */
function cropOf(img: SliceImage, unit: () => Float64Array, spec: Preprocessing, seg?: LungSegmentation): Crop {
  const method = spec.crop.method;
  if (method === 'none') return { box: { y0: 0, y1: img.height - 1, x0: 0, x1: img.width - 1 }, used: 'none' };
  if (method !== 'lung-bbox') return { box: cropBox(unit(), img.width, img.height, spec), used: 'body' };
  const body = (): Crop => ({ box: cropBox(unit(), img.width, img.height, spec), used: 'body' });
  if (img.kind === 'hu' && !img.pixelSpacing) return body(); // no mm scale: the lung rules cannot apply
  const s = seg ?? lungsForCrop(img, spec);
  const lung = s.lung;
  const lb = bbox(lung);
  const areaMm2 = count(lung) * lungPixelArea(img, spec, lung.width, lung.height);
  if (!lb || areaMm2 < (spec.crop.minLungMm2 as number)) return body();
  if (img.kind === 'display' && !displayLungsPlausible(s, lb, spec)) return body();
  const h = img.height;
  const w = img.width;
  const hh = lung.height;
  const ww = lung.width;
  const y0 = Math.floor((lb.y0 * h) / hh);
  const y1 = Math.ceil(((lb.y1 + 1) * h) / hh) - 1;
  const x0 = Math.floor((lb.x0 * w) / ww);
  const x1 = Math.ceil(((lb.x1 + 1) * w) / ww) - 1;
  const m = Math.floor((spec.crop.lungMarginFraction as number) * Math.max(y1 - y0 + 1, x1 - x0 + 1));
  return {
    box: { y0: Math.max(0, y0 - m), y1: Math.min(h - 1, y1 + m), x0: Math.max(0, x0 - m), x1: Math.min(w - 1, x1 + m) },
    used: 'lung',
  };
}

/** mm² of one working-grid pixel of this slice. */
function lungPixelArea(img: SliceImage, spec: Preprocessing, ww: number, wh: number): number {
  const spacing =
    img.kind === 'hu' && img.pixelSpacing
      ? img.pixelSpacing
      : [
          (spec.crop.displayFovMm as number) / Math.max(img.width, img.height),
          (spec.crop.displayFovMm as number) / Math.max(img.width, img.height),
        ];
  return (((spacing[0] as number) * img.height) / wh) * (((spacing[1] as number) * img.width) / ww);
}

/**
 * Preprocess one slice into `out` (C*H*W floats at `offset`); allocates `out` when not given.
 * Returns `out`.
 */
export function preprocessSlice(img: SliceImage, spec: Preprocessing, out?: Float32Array, offset = 0): Float32Array {
  const dst = out ?? new Float32Array(offset + sliceSize(spec));
  preprocessInto(img, spec, dst, offset);
  return dst;
}

/**
 * preprocessSlice into a given buffer; returns the crop it used (for attention overlays). `seg` is this slice's
 * lung segmentation when the caller already has it (the scoring path computes it once for the opacity too).
 */
export function preprocessInto(img: SliceImage, spec: Preprocessing, dst: Float32Array, offset = 0, seg?: LungSegmentation): Crop {
  const outH = spec.resize.height;
  const outW = spec.resize.width;
  const plane = outH * outW;
  const size = spec.channels * plane;
  if (dst.length < offset + size) {
    throw new Error(`output buffer too small: need ${offset + size}, have ${dst.length}`);
  }
  if (!(img.width > 0 && img.height > 0)) throw new Error('empty slice');

  // Scratch buffers reused from slice to slice (a 512x512 slice would otherwise allocate ~3 MB of
  // float64 per call); same arithmetic as toUnit() and a fresh buffer. Only the rows of the crop are brought
  // to [0,1] unless the body rule needs the whole image.
  const v = scratch('unit', img.width * img.height);
  let whole = false;
  const crop = cropOf(
    img,
    () => {
      whole = true;
      return toUnitInto(img, spec, v);
    },
    spec,
    seg,
  );
  const box = crop.box;
  if (!whole) toUnitInto(img, spec, v, box.y0 * img.width, (box.y1 + 1) * img.width);
  const r = resampleBox(v, img.width, box, outW, outH, scratch('resized', plane));
  const mean = spec.normalize.mean;
  const std = spec.normalize.std;
  for (let p = 0; p < plane; p++) dst[offset + p] = ((r[p] as number) - mean) / std;
  for (let c = 1; c < spec.channels; c++) dst.copyWithin(offset + c * plane, offset, offset + plane);
  return crop;
}
