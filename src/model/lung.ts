/**
 * Lung segmentation from HU without weights: the TypeScript twin of training/lung.py (segment_lungs,
 * split_column, to_work), which documents every step. Pure arrays in, masks out; parameters from the model
 * metadata's `lungs` block.
 *
 * Working grid: the slice resampled with the preprocessing's antialiased triangle filter so that a working
 * pixel is `workMm` mm (never upsampled). Radii and areas are in mm / mm².
 */
import { z } from 'zod';
import { diskHalfWidths, emptyMask, type Box, type Mask } from './morphology.js';
import {
  dilateRuns,
  erodeRuns,
  fillHolesRuns,
  intersectRuns,
  labelRuns,
  paintRuns,
  Runs,
  runsBox,
  selectRuns,
  subtractRuns,
} from './runs.js';
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

/** Runs of HU > t over the whole grid (one pass, no byte mask). */
function aboveRuns(g: WorkGrid, t: number): Runs {
  const { width: w, height: h, hu } = g;
  const out = new Runs(w, h, 4 * h);
  for (let y = 0; y < h; y++) {
    const f = out.n;
    out.rs[y] = f;
    const base = y * w;
    let x = 0;
    while (x < w) {
      if (!((hu[base + x] as number) > t)) {
        x++;
        continue;
      }
      const s = x;
      x++;
      while (x < w && (hu[base + x] as number) > t) x++;
      out.push(f, s, x);
    }
  }
  out.rs[h] = out.n;
  return out;
}

/**
 * Segment the lungs of one working-grid slice (training/lung.py segment_lungs). The masks are built as row runs
 * (runs.ts), pixel for pixel the byte-mask steps of the twin, and painted into byte masks at the end.
 */
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
  // 1. body: the largest 8-connected component of HU > bodyHu (the first of equal ones), holes filled
  const cand = aboveRuns(g, spec.bodyHu);
  const bodyCand = labelRuns(cand, 8);
  if (bodyCand.n === 0) return none(emptyMask(w, h));
  let best = 1;
  for (let l = 2; l <= bodyCand.n; l++) if ((bodyCand.sizes[l] as number) > (bodyCand.sizes[best] as number)) best = l;
  const pick = new Uint8Array(bodyCand.n + 1);
  pick[best] = 1;
  const body = fillHolesRuns(selectRuns(cand, bodyCand.labelOf, pick), { x0: 0, y0: 0, x1: w - 1, y1: h - 1 });
  // The rest runs in the body's bounding box (+ a margin the closing cannot cross), the window the twin crops:
  // outside it everything is not body. Morphology is clipped to that window as the twin's is to its crop.
  const bb = runsBox(body) as Box;
  const margin = Math.floor(spec.closeMm / rPx + 1e-9) + 2;
  const win = {
    x0: Math.max(0, bb.x0 - margin),
    y0: Math.max(0, bb.y0 - margin),
    x1: Math.min(w - 1, bb.x1 + margin),
    y1: Math.min(h - 1, bb.y1 + margin),
  };
  const inside = lungsInside(g, body, win, spec);
  if (!inside.lung) return none(paintRuns(body), inside.components);
  return { lung: paintRuns(inside.lung), side: inside.side, body: paintRuns(body), components: inside.components };
}

/** Column sum (x relative to x0), count and first / last column of the runs (bodyColumns of the twin's crop). */
function columns(r: Runs, x0: number): { sum: number; n: number; first: number; last: number } {
  let sum = 0;
  let n = 0;
  let first = Infinity;
  let last = -1;
  for (let k = 0; k < r.n; k++) {
    const a = (r.s[k] as number) - x0;
    const b = (r.e[k] as number) - x0; // exclusive
    sum += ((a + b - 1) * (b - a)) / 2;
    n += b - a;
    if (a < first) first = a;
    if (b - 1 > last) last = b - 1;
  }
  return { sum, n, first, last };
}

/**
 * Steps 2-6 of segment_lungs in the window `win` (the twin's crop around the body): coordinates that the twin
 * reads in its crop (component centres, the body's centre, the split column) are taken relative to win.x0.
 */
function lungsInside(
  g: WorkGrid,
  body: Runs,
  win: Box,
  spec: LungSpec,
): { lung: Runs | null; side: Int8Array; components: LungComponent[] } {
  const { width: w, height: h, hu } = g;
  const pxArea = g.pxMm[0] * g.pxMm[1];
  const rPx = Math.sqrt(pxArea);
  const noLung = (components: LungComponent[] = []) => ({ lung: null, side: new Int8Array(0), components });
  // air inside the body (HU < airHu), and per run its gas pixels (HU < gasHu), in one pass
  const air = new Runs(w, h, body.n * 2);
  let gasOfRun = new Int32Array(body.n * 2 + 16);
  const { airHu, gasHu } = spec;
  for (let y = 0; y < h; y++) {
    const f = air.n;
    air.rs[y] = f;
    const base = y * w;
    for (let k = body.rs[y] as number; k < (body.rs[y + 1] as number); k++) {
      const e = body.e[k] as number;
      let x = body.s[k] as number;
      while (x < e) {
        if (!((hu[base + x] as number) < airHu)) {
          x++;
          continue;
        }
        const s = x;
        let gas = 0;
        while (x < e && (hu[base + x] as number) < airHu) {
          if ((hu[base + x] as number) < gasHu) gas++;
          x++;
        }
        // body runs never touch, so an air run never joins the previous one
        air.push(f, s, x);
        if (air.n > gasOfRun.length) {
          const g2 = new Int32Array(gasOfRun.length * 2);
          g2.set(gasOfRun);
          gasOfRun = g2;
        }
        gasOfRun[air.n - 1] = gas;
      }
    }
  }
  air.rs[h] = air.n;
  const lab = labelRuns(air, 4);
  if (lab.n === 0) return noLung();
  const nl = lab.n;
  const gasCnt = new Float64Array(nl + 1);
  const sumX = new Float64Array(nl + 1);
  const bx0s = new Int32Array(nl + 1).fill(w);
  const bx1s = new Int32Array(nl + 1).fill(-1);
  const by0s = new Int32Array(nl + 1).fill(h);
  const by1s = new Int32Array(nl + 1).fill(-1);
  for (let y = 0; y < h; y++) {
    for (let k = air.rs[y] as number; k < (air.rs[y + 1] as number); k++) {
      const l = lab.labelOf[k] as number;
      const s = air.s[k] as number;
      const e = air.e[k] as number;
      const a = s - win.x0;
      const b = e - win.x0;
      gasCnt[l] = (gasCnt[l] as number) + (gasOfRun[k] as number);
      sumX[l] = (sumX[l] as number) + ((a + b - 1) * (b - a)) / 2;
      if (s < (bx0s[l] as number)) bx0s[l] = s;
      if (e - 1 > (bx1s[l] as number)) bx1s[l] = e - 1;
      if (y < (by0s[l] as number)) by0s[l] = y;
      if (y > (by1s[l] as number)) by1s[l] = y;
    }
  }
  const bcol = columns(body, win.x0);
  const bx = bcol.n ? bcol.sum / bcol.n : (win.x1 - win.x0 + 1) / 2;
  const bw = bcol.n ? bcol.last - bcol.first + 1 : win.x1 - win.x0 + 1;
  const comps: LungComponent[] = [];
  for (let l = 1; l <= nl; l++) {
    const size = lab.sizes[l] as number;
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
  // bullae and cavities: gas components ringed by lung, in rounds (the parenchyma of a round is the lung
  // components at its start)
  const isLung = new Uint8Array(nl + 1);
  for (const c of comps) if (!c.gas) isLung[c.label] = 1;
  const ringR = spec.cavityRingMm / rPx;
  const ringHws = diskHalfWidths(ringR);
  const M = Math.floor(ringR + 1e-9) + 1;
  const roundLung = new Uint8Array(nl + 1);
  for (let round = 0; round < spec.cavityRounds; round++) {
    roundLung.set(isLung);
    let any = false;
    for (let l = 1; l <= nl && !any; l++) if (roundLung[l]) any = true;
    let changed = false;
    for (const c of comps) {
      if (!c.gas || !any) continue;
      // the ring, in a window around the component (the dilation never reaches past its margin)
      const l = c.label;
      const box = {
        x0: Math.max(win.x0, (bx0s[l] as number) - M),
        x1: Math.min(win.x1, (bx1s[l] as number) + M),
        y0: Math.max(win.y0, (by0s[l] as number) - M),
        y1: Math.min(win.y1, (by1s[l] as number) + M),
      };
      const mine = new Uint8Array(nl + 1);
      mine[l] = 1;
      const m = selectRuns(air, lab.labelOf, mine);
      const ring = subtractRuns(dilateRuns(m, ringHws, box), m);
      let inLung = 0;
      let all = 0;
      for (let y = box.y0; y <= box.y1; y++) {
        let j = air.rs[y] as number;
        const j1 = air.rs[y + 1] as number;
        for (let k = ring.rs[y] as number; k < (ring.rs[y + 1] as number); k++) {
          const s = ring.s[k] as number;
          const e = ring.e[k] as number;
          all += e - s;
          while (j < j1 && (air.e[j] as number) <= s) j++;
          for (let q = j; q < j1 && (air.s[q] as number) < e; q++) {
            if (!roundLung[lab.labelOf[q] as number]) continue;
            const lo = (air.s[q] as number) > s ? (air.s[q] as number) : s;
            const hi = (air.e[q] as number) < e ? (air.e[q] as number) : e;
            if (lo < hi) inLung += hi - lo;
          }
        }
      }
      if (inLung / Math.max(1, all) >= spec.cavityRingFraction) {
        c.gas = false;
        c.cavity = true;
        isLung[l] = 1;
        changed = true;
      }
    }
    if (!changed) break;
  }
  const lungComps = comps.filter((c) => !c.gas);
  if (lungComps.length === 0) return noLung(comps);
  const biggest = Math.max(...lungComps.map((c) => c.areaMm2));
  const keep = new Uint8Array(nl + 1);
  for (const c of lungComps) {
    if (c.areaMm2 >= spec.relativeMinArea * biggest) {
      keep[c.label] = 1;
      c.kept = true;
    }
  }
  const raw = selectRuns(air, lab.labelOf, keep);
  const closeHws = diskHalfWidths(spec.closeMm / rPx);
  let lung = erodeRuns(dilateRuns(raw, closeHws, win), closeHws, win);
  lung = fillHolesRuns(lung, win, spec.maxHoleMm2 / pxArea);
  lung = intersectRuns(lung, body);
  if (lung.n === 0) return noLung(comps);
  // sides: the split column in the window's coordinates (splitColumn)
  const cut = win.x0 + Math.ceil(splitColumnRuns(lung, bx, bcol.first, bcol.last, win.x0, win.x1 - win.x0 + 1));
  const side = new Int8Array(w * h).fill(-1);
  for (let y = 0; y < h; y++) {
    const base = y * w;
    for (let k = lung.rs[y] as number; k < (lung.rs[y + 1] as number); k++) {
      const s = lung.s[k] as number;
      const e = lung.e[k] as number;
      if (s < cut) side.fill(0, base + s, base + (e < cut ? e : cut));
      if (e > cut) side.fill(1, base + (s > cut ? s : cut), base + e);
    }
  }
  return { lung, side, components: comps };
}

/**
 * The image-left / image-right boundary (in the coordinates of a window from x0, `ww` wide, as the twin's
 * crop): the first column with the fewest lung pixels within ±15 % of the body's width (its first..last
 * column) around the body's centroid column bx, + 0.5. Pixels left of it (x < split) are image left.
 */
function splitColumnRuns(lung: Runs, bx: number, first: number, last: number, x0: number, ww: number): number {
  const half = 0.15 * (last - first + 1);
  const lo = Math.max(0, Math.ceil(bx - half));
  const hi = Math.min(ww - 1, Math.floor(bx + half));
  if (hi < lo) return bx;
  // lung pixels per column: +1 where a run starts, −1 where it ends, summed from the left
  const diff = new Int32Array(ww + 1);
  for (let k = 0; k < lung.n; k++) {
    diff[(lung.s[k] as number) - x0] = (diff[(lung.s[k] as number) - x0] as number) + 1;
    diff[(lung.e[k] as number) - x0] = (diff[(lung.e[k] as number) - x0] as number) - 1;
  }
  let c = 0;
  for (let x = 0; x < lo; x++) c += diff[x] as number;
  let bestX = lo;
  let bestC = Infinity;
  for (let x = lo; x <= hi; x++) {
    c += diff[x] as number;
    if (c < bestC) {
      bestC = c;
      bestX = x;
    }
  }
  return bestX + 0.5;
}
