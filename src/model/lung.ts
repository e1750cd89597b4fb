/**
 * Lung segmentation from HU without weights: the TypeScript twin of training/lung.py (segment_lungs,
 * split_column, to_work), which documents every step. Pure arrays in, masks out; parameters from the model
 * metadata's `lungs` block.
 *
 * Working grid: the slice resampled with the preprocessing's antialiased triangle filter so that a working
 * pixel is `workMm` mm (never upsampled). Radii and areas are in mm / mm².
 */
import { z } from 'zod';
import { andNot, bbox, count, dilate, closing, emptyMask, fillHoles, label, type Box, type Mask } from './morphology.js';
import { resampleBox } from './resample.js';

export const lungSpecSchema = z.object({
  method: z.literal('hu-threshold-2d-v1'),
  workMm: z.number().positive(),
  bodyHu: z.number(),
  airHu: z.number(),
  minComponentMm2: z.number().min(0),
  gasHu: z.number(),
  gasFraction: z.number().min(0).max(1),
  gasFractionSmall: z.number().min(0).max(1),
  gasSmallMm2: z.number().min(0),
  airwayMaxMm2: z.number().min(0),
  airwayCentralFraction: z.number().min(0).max(1),
  relativeMinArea: z.number().min(0).max(1),
  cavityRingMm: z.number().min(0),
  cavityRingFraction: z.number().min(0).max(1),
  cavityRounds: z.number().int().min(0),
  closeMm: z.number().min(0),
  maxHoleMm2: z.number().min(0),
});
export type LungSpec = z.infer<typeof lungSpecSchema>;

/** A slice on the working grid. */
export interface WorkGrid {
  width: number;
  height: number;
  /** HU, row-major. */
  hu: Float64Array;
  /** mm per working pixel: [row, column]. */
  pxMm: [number, number];
}

/** Working grid size: round(n · spacing / workMm), never larger than the source, at least 1. */
export function workSize(
  width: number,
  height: number,
  spacing: readonly [number, number],
  workMm: number,
): { width: number; height: number } {
  // Math.round and Python's round differ only at exact .5 ties (banker's rounding); use Python's rule.
  const pyRound = (x: number): number => {
    const f = Math.floor(x);
    const d = x - f;
    if (d > 0.5) return f + 1;
    if (d < 0.5) return f;
    return f % 2 === 0 ? f : f + 1;
  };
  return {
    height: Math.max(1, Math.min(height, pyRound((height * spacing[0]) / workMm))),
    width: Math.max(1, Math.min(width, pyRound((width * spacing[1]) / workMm))),
  };
}

/** Resample HU (row-major, width × height, spacing [row mm, col mm]) onto the working grid. */
export function toWorkGrid(
  hu: ArrayLike<number>,
  width: number,
  height: number,
  spacing: readonly [number, number],
  workMm: number,
): WorkGrid {
  const { width: ww, height: wh } = workSize(width, height, spacing, workMm);
  const pxMm: [number, number] = [(spacing[0] * height) / wh, (spacing[1] * width) / ww];
  if (ww === width && wh === height) {
    const out = new Float64Array(width * height);
    for (let i = 0; i < out.length; i++) out[i] = hu[i] as number;
    return { width, height, hu: out, pxMm };
  }
  // rows first, then columns: the order of training/lung.py to_work (wy @ a @ wx^T)
  const src = hu instanceof Float32Array || hu instanceof Float64Array ? hu : Float64Array.from(hu);
  const out = resampleBox(src, width, { x0: 0, y0: 0, x1: width - 1, y1: height - 1 }, ww, wh);
  return { width: ww, height: wh, hu: out, pxMm };
}

export interface LungComponent {
  label: number;
  areaMm2: number;
  gasFraction: number;
  centreX: number;
  /** Airway or gut gas, not lung. */
  gas: boolean;
  /** A gas component taken in as a bulla or cavity of a lung. */
  cavity: boolean;
  kept: boolean;
}

export interface LungSegmentation {
  /** Lung mask on the working grid. */
  lung: Mask;
  /** Per pixel: −1 not lung, 0 image left of the split, 1 image right. */
  side: Int8Array;
  body: Mask;
  components: LungComponent[];
}

/** HU > t over the whole grid. */
function above(g: WorkGrid, t: number): Mask {
  const m = emptyMask(g.width, g.height);
  const hu = g.hu;
  const d = m.data;
  for (let i = 0; i < d.length; i++) d[i] = (hu[i] as number) > t ? 1 : 0;
  return m;
}

/** HU < t inside `within`. */
function belowWithin(g: WorkGrid, t: number, within: Mask): Mask {
  const m = emptyMask(g.width, g.height);
  const hu = g.hu;
  const d = m.data;
  const w = within.data;
  for (let i = 0; i < d.length; i++) d[i] = w[i] && (hu[i] as number) < t ? 1 : 0;
  return m;
}

/** Segment the lungs of one working-grid slice (training/lung.py segment_lungs). */
export function segmentLungs(g: WorkGrid, spec: LungSpec): LungSegmentation {
  const { width: w, height: h } = g;
  const pxArea = g.pxMm[0] * g.pxMm[1];
  const rPx = Math.sqrt(pxArea);
  const none = (body: Mask, components: LungComponent[] = []): LungSegmentation => ({
    lung: emptyMask(w, h),
    side: new Int8Array(w * h).fill(-1),
    body,
    components,
  });
  const bodyCand = label(above(g, spec.bodyHu), 8);
  if (bodyCand.n === 0) return none(emptyMask(w, h));
  let best = 1;
  for (let l = 2; l <= bodyCand.n; l++) if ((bodyCand.sizes[l] as number) > (bodyCand.sizes[best] as number)) best = l;
  const bodyRaw = emptyMask(w, h);
  const bl = bodyCand.labels;
  const bd = bodyRaw.data;
  for (let i = 0; i < bd.length; i++) bd[i] = bl[i] === best ? 1 : 0;
  const body = fillHoles(bodyRaw);
  // The rest runs in the body's bounding box (+ a margin the closing cannot cross): everything outside it is
  // not body, so the masks are the same as on the whole grid, for less work.
  const bb = bbox(body) as Box;
  const margin = Math.floor(spec.closeMm / rPx + 1e-9) + 2;
  const win = {
    x0: Math.max(0, bb.x0 - margin),
    y0: Math.max(0, bb.y0 - margin),
    x1: Math.min(w - 1, bb.x1 + margin),
    y1: Math.min(h - 1, bb.y1 + margin),
  };
  const sub = cropGrid(g, win);
  const inside = lungsInside(sub, cropMask(body, win), spec);
  return {
    lung: pasteMask(inside.lung, win, w, h),
    side: pasteSide(inside.side, win, w, h, sub.width),
    body,
    components: inside.components,
  };
}

/** The inclusive box of a grid as a grid of its own. */
export function cropGrid(g: WorkGrid, b: Box): WorkGrid {
  const cw = b.x1 - b.x0 + 1;
  const ch = b.y1 - b.y0 + 1;
  const hu = new Float64Array(cw * ch);
  for (let y = 0; y < ch; y++) hu.set(g.hu.subarray((b.y0 + y) * g.width + b.x0, (b.y0 + y) * g.width + b.x0 + cw), y * cw);
  return { width: cw, height: ch, hu, pxMm: g.pxMm };
}

export function cropMask(m: Mask, b: Box): Mask {
  const cw = b.x1 - b.x0 + 1;
  const ch = b.y1 - b.y0 + 1;
  const data = new Uint8Array(cw * ch);
  for (let y = 0; y < ch; y++) data.set(m.data.subarray((b.y0 + y) * m.width + b.x0, (b.y0 + y) * m.width + b.x0 + cw), y * cw);
  return { width: cw, height: ch, data };
}

/** A window's mask placed back into a w × h grid (0 outside the window). */
export function pasteMask(m: Mask, b: Box, w: number, h: number): Mask {
  const out = emptyMask(w, h);
  for (let y = 0; y < m.height; y++) out.data.set(m.data.subarray(y * m.width, (y + 1) * m.width), (b.y0 + y) * w + b.x0);
  return out;
}

function pasteSide(side: Int8Array, b: Box, w: number, h: number, sw: number): Int8Array {
  const out = new Int8Array(w * h).fill(-1);
  const sh = side.length / sw;
  for (let y = 0; y < sh; y++) out.set(side.subarray(y * sw, (y + 1) * sw), (b.y0 + y) * w + b.x0);
  return out;
}

/** Steps 2-6 of segment_lungs on a grid that holds the whole body. */
function lungsInside(g: WorkGrid, body: Mask, spec: LungSpec): { lung: Mask; side: Int8Array; components: LungComponent[] } {
  const { width: w, height: h } = g;
  const pxArea = g.pxMm[0] * g.pxMm[1];
  const rPx = Math.sqrt(pxArea);
  const none = (components: LungComponent[] = []) => ({ lung: emptyMask(w, h), side: new Int8Array(w * h).fill(-1), components });
  const air = label(belowWithin(g, spec.airHu, body), 4);
  if (air.n === 0) return none();
  const gasCnt = new Float64Array(air.n + 1);
  const sumX = new Float64Array(air.n + 1);
  const bx0s = new Int32Array(air.n + 1).fill(w);
  const bx1s = new Int32Array(air.n + 1).fill(-1);
  const by0s = new Int32Array(air.n + 1).fill(h);
  const by1s = new Int32Array(air.n + 1).fill(-1);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = y * w + x;
      const l = air.labels[i] as number;
      if (!l) continue;
      if ((g.hu[i] as number) < spec.gasHu) gasCnt[l] = (gasCnt[l] as number) + 1;
      sumX[l] = (sumX[l] as number) + x;
      if (x < (bx0s[l] as number)) bx0s[l] = x;
      if (x > (bx1s[l] as number)) bx1s[l] = x;
      if (y < (by0s[l] as number)) by0s[l] = y;
      if (y > (by1s[l] as number)) by1s[l] = y;
    }
  }
  const bc = bodyColumns(body);
  const bx = bc ? bc.centre : w / 2;
  const bw = bc ? bc.x1 - bc.x0 + 1 : w;
  const comps: LungComponent[] = [];
  for (let l = 1; l <= air.n; l++) {
    const size = air.sizes[l] as number;
    const areaMm2 = size * pxArea;
    if (areaMm2 < spec.minComponentMm2) continue;
    const gasFraction = (gasCnt[l] as number) / size;
    const centreX = (sumX[l] as number) / size;
    const central = Math.abs(centreX - bx) < spec.airwayCentralFraction * bw;
    const gas =
      gasFraction >= spec.gasFraction ||
      (gasFraction >= spec.gasFractionSmall && areaMm2 < spec.gasSmallMm2) ||
      (central && areaMm2 < spec.airwayMaxMm2);
    comps.push({ label: l, areaMm2, gasFraction, centreX, gas, cavity: false, kept: false });
  }
  // bullae and cavities: gas components ringed by lung, in rounds
  const isLung = new Uint8Array(air.n + 1);
  for (const c of comps) if (!c.gas) isLung[c.label] = 1;
  for (let round = 0; round < spec.cavityRounds; round++) {
    const parenchyma = emptyMask(w, h);
    let any = false;
    for (let i = 0; i < parenchyma.data.length; i++) {
      if (isLung[air.labels[i] as number]) {
        parenchyma.data[i] = 1;
        any = true;
      }
    }
    let changed = false;
    for (const c of comps) {
      if (!c.gas || !any) continue;
      // the ring, computed in a window around the component (the dilation never reaches past its margin)
      const r = spec.cavityRingMm / rPx;
      const M = Math.floor(r + 1e-9) + 1;
      const x0 = Math.max(0, (bx0s[c.label] as number) - M);
      const x1 = Math.min(w - 1, (bx1s[c.label] as number) + M);
      const y0 = Math.max(0, (by0s[c.label] as number) - M);
      const y1 = Math.min(h - 1, (by1s[c.label] as number) + M);
      const sw = x1 - x0 + 1;
      const m = emptyMask(sw, y1 - y0 + 1);
      for (let y = y0; y <= y1; y++)
        for (let x = x0; x <= x1; x++) if (air.labels[y * w + x] === c.label) m.data[(y - y0) * sw + (x - x0)] = 1;
      const ring = andNot(dilate(m, r), m);
      let inLung = 0;
      let all = 0;
      for (let i = 0; i < ring.data.length; i++) {
        if (!ring.data[i]) continue;
        all++;
        if (parenchyma.data[(y0 + Math.floor(i / sw)) * w + x0 + (i % sw)]) inLung++;
      }
      if (inLung / Math.max(1, all) >= spec.cavityRingFraction) {
        c.gas = false;
        c.cavity = true;
        isLung[c.label] = 1;
        changed = true;
      }
    }
    if (!changed) break;
  }
  const lungComps = comps.filter((c) => !c.gas);
  if (lungComps.length === 0) return none(comps);
  const biggest = Math.max(...lungComps.map((c) => c.areaMm2));
  const keep = new Uint8Array(air.n + 1);
  for (const c of lungComps) {
    if (c.areaMm2 >= spec.relativeMinArea * biggest) {
      keep[c.label] = 1;
      c.kept = true;
    }
  }
  const raw = emptyMask(w, h);
  for (let i = 0; i < raw.data.length; i++) if (keep[air.labels[i] as number]) raw.data[i] = 1;
  let lung = closing(raw, spec.closeMm / rPx);
  lung = fillHoles(lung, spec.maxHoleMm2 / pxArea);
  for (let i = 0; i < lung.data.length; i++) if (!body.data[i]) lung.data[i] = 0;
  return { lung, side: assignSides(lung, body), components: comps };
}

/** Centroid column and first/last column of the body's pixels, or null for an empty body. */
function bodyColumns(body: Mask): { centre: number; x0: number; x1: number } | null {
  const { width: w, height: h } = body;
  let sum = 0;
  let n = 0;
  let x0 = w;
  let x1 = -1;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      if (!body.data[y * w + x]) continue;
      sum += x;
      n++;
      if (x < x0) x0 = x;
      if (x > x1) x1 = x;
    }
  }
  return n ? { centre: sum / n, x0, x1 } : null;
}

/**
 * The image-left / image-right boundary: the first column with the fewest lung pixels within ±15 % of the
 * body's width around the body's centroid column, + 0.5.
 */
export function splitColumn(lung: Mask, body: Mask): number {
  const { width: w, height: h } = lung;
  const bc = bodyColumns(body);
  if (!bc) return w / 2;
  const bx = bc.centre;
  const half = 0.15 * (bc.x1 - bc.x0 + 1);
  const lo = Math.max(0, Math.ceil(bx - half));
  const hi = Math.min(w - 1, Math.floor(bx + half));
  if (hi < lo) return bx;
  let bestX = lo;
  let bestC = Infinity;
  for (let x = lo; x <= hi; x++) {
    let c = 0;
    for (let y = 0; y < h; y++) c += lung.data[y * w + x] as number;
    if (c < bestC) {
      bestC = c;
      bestX = x;
    }
  }
  return bestX + 0.5;
}

function assignSides(lung: Mask, body: Mask): Int8Array {
  const side = new Int8Array(lung.data.length).fill(-1);
  if (count(lung) === 0) return side;
  const split = splitColumn(lung, body);
  const w = lung.width;
  for (let i = 0; i < side.length; i++) {
    if (!lung.data[i]) continue;
    const x = i % w;
    side[i] = x < split ? 0 : 1;
  }
  return side;
}
