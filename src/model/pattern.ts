/**
 * How the opacity is distributed: per-slice summaries of the lung and opacity masks (computed where the masks
 * are, in the prepare threads) and the series features built from them (twin: training/pattern.py, same
 * numbers). The category rule that reads the features is in pattern-rule.ts (docs/pattern-rule.md).
 *
 * Per slice, on the working grid of opacity.ts (masks from analyseSlice):
 *   depth     d² = squared Euclidean distance (working pixels) from a lung pixel to the nearest pixel outside the
 *               lung mask (the pleural surface, costal and mediastinal alike; outside the grid is outside).
 *               2-D, per slice: see `slicePattern`.
 *   periphery  the outer third by depth: 9·d² ≤ dmax², dmax = the deepest pixel of that lung (image side) on
 *               this slice. The lung's own peripheral share (the reference a uniform spread would give) is
 *               counted on the lung without its outermost pixel (d² ≥ 2), where opacity can be measured at all
 *               (opacity.ts erodes the lung before it looks).
 *   lower half the image-lower half of that side's lung rows on this slice (2y > y0 + y1): posterior (dorsal)
 *               for the usual orientation; the series step flips it with ImageOrientationPatient.
 *   foci      4-connected opacity components (as opacity.ts keeps them), each with its pixels per image side,
 *               consolidation pixels, peripheral and lower-half pixels, roundness and its runs (for 3-D linking).
 *   roundness  sqrt(λmin/λmax) × min(1, A / (4π·sqrt(λmin·λmax))): the axis ratio of the component's moment
 *               ellipse times how fully it fills that ellipse (λ: eigenvalues of the pixel covariance in mm²,
 *               each pixel a unit square, hence + 1/12 px²). 1 for a filled disc, lower for elongated,
 *               concave or ragged shapes.
 */
import type { Mask } from './morphology.js';
import { labelRuns, Runs, runsBox, runsOf } from './runs.js';

export interface SliceFocus {
  /** Opacity pixels per image side (0 = image left, 1 = image right). */
  px: [number, number];
  /** Consolidation (high opacity) pixels. */
  highPx: number;
  /** Pixels in the outer third of their lung. */
  peripheralPx: number;
  /** Pixels in the image-lower half of their lung's rows on this slice. */
  lowerHalfPx: number;
  roundness: number;
  /** Runs of the component, [y, x0, x1 (inclusive)] triples, row-major order. */
  runs: Int32Array;
}

export interface SlicePattern {
  width: number;
  height: number;
  /** mm² per working pixel. */
  pxMm2: number;
  /** Lung pixels per image side. */
  lungPx: [number, number];
  /** Lung pixels in the outer third, per image side, without the outermost pixel (d² ≥ 2). */
  lungPeripheralPx: [number, number];
  /** Lung pixels with d² ≥ 2 per image side (the denominator of lungPeripheralPx). */
  lungInnerPx: [number, number];
  /** Lung pixels in the image-lower half of their rows, per image side. */
  lungLowerHalfPx: [number, number];
  foci: SliceFocus[];
}

const INF = 1e20;

/**
 * One row of the second pass: the lower envelope of the parabolas (x − p)² + f[p] over the `len` values of f from
 * `base`, written back in place (Felzenszwalb & Huttenlocher); g, v, z are scratch of at least len (+1).
 */
function envelope(f: Float64Array, base: number, len: number, g: Float64Array, v: Int32Array, z: Float64Array): void {
  for (let i = 0; i < len; i++) g[i] = f[base + i] as number;
  let k = 0;
  v[0] = 0;
  z[0] = -INF;
  z[1] = INF;
  for (let q = 1; q < len; q++) {
    const gq = (g[q] as number) + q * q;
    let s = 0;
    for (;;) {
      const p = v[k] as number;
      s = (gq - ((g[p] as number) + p * p)) / (2 * q - 2 * p);
      if (s <= (z[k] as number)) {
        k--;
        continue;
      }
      break;
    }
    k++;
    v[k] = q;
    z[k] = s;
    z[k + 1] = INF;
  }
  k = 0;
  for (let q = 0; q < len; q++) {
    while ((z[k + 1] as number) < q) k++;
    const p = v[k] as number;
    f[base + q] = (q - p) * (q - p) + (g[p] as number);
  }
}

/** EDT scratch, reused from slice to slice (one prepare thread analyses one slice at a time). */
let fS = new Float64Array(0);
let downS = new Int32Array(0);
let vS = new Int32Array(0);
let zS = new Float64Array(0);
let gS = new Float64Array(0);

/**
 * squaredDistance into scratch, padded: d² of box pixel (x, y) at [(y + 1) · bw + x + 1], bw = x1 − x0 + 3.
 * The 1-D distances along y come from one sweep down and one up over the rows (row-major, the same integers as
 * a scan of each column), then each row's lower envelope.
 */
function squaredDistancePadded(inside: Uint8Array, w: number, x0: number, y0: number, x1: number, y1: number): Float64Array {
  const bw = x1 - x0 + 3;
  const bh = y1 - y0 + 3;
  if (fS.length < bw * bh) fS = new Float64Array(bw * bh);
  if (downS.length < bw) downS = new Int32Array(bw);
  const n = Math.max(bw, bh);
  if (vS.length < n) {
    vS = new Int32Array(n);
    zS = new Float64Array(n + 1);
    gS = new Float64Array(n);
  }
  const f = fS;
  // down the rows: distance to the nearest background pixel above (the padding row and columns are background)
  f.fill(0, 0, bw);
  for (let y = 1; y < bh - 1; y++) {
    const row = y * bw;
    const src = (y + y0 - 1) * w + x0 - 1;
    f[row] = 0;
    for (let x = 1; x < bw - 1; x++) f[row + x] = inside[src + x] ? (f[row - bw + x] as number) + 1 : 0;
    f[row + bw - 1] = 0;
  }
  f.fill(0, (bh - 1) * bw, bh * bw);
  // up the rows: the nearer of above and below, squared
  const down = downS;
  down.fill(0, 0, bw);
  for (let y = bh - 2; y > 0; y--) {
    const row = y * bw;
    for (let x = 1; x < bw - 1; x++) {
      const u = f[row + x] as number;
      if (u === 0) {
        down[x] = 0;
        continue;
      }
      const d = (down[x] as number) + 1;
      down[x] = d;
      const e = u < d ? u : d;
      f[row + x] = e * e;
    }
  }
  for (let y = 1; y < bh - 1; y++) envelope(f, y * bw, bw, gS, vS, zS);
  return f;
}

/**
 * Exact squared Euclidean distance transform (Felzenszwalb & Huttenlocher 2012) of `inside` within the inclusive
 * box, padded by one background pixel: d² in working pixels for inside pixels, 0 elsewhere (box-local, row-major).
 * Integer arithmetic throughout: the same numbers as scipy.ndimage.distance_transform_edt squared.
 */
export function squaredDistance(inside: Uint8Array, w: number, x0: number, y0: number, x1: number, y1: number): Float64Array {
  const f = squaredDistancePadded(inside, w, x0, y0, x1, y1);
  const bw = x1 - x0 + 3;
  const cw = x1 - x0 + 1;
  const ch = y1 - y0 + 1;
  const out = new Float64Array(cw * ch);
  for (let y = 0; y < ch; y++) out.set(f.subarray((y + 1) * bw + 1, (y + 1) * bw + 1 + cw), y * cw);
  return out;
}

/** Roundness from moment sums over n pixels (pixel units; row mm, column mm). See the module comment. */
export function roundness(
  n: number,
  sx: number,
  sy: number,
  sxx: number,
  syy: number,
  sxy: number,
  pxMm: readonly [number, number],
): number {
  const mx = sx / n;
  const my = sy / n;
  const cx = pxMm[1];
  const cy = pxMm[0];
  const a = (sxx / n - mx * mx + 1 / 12) * cx * cx;
  const c = (syy / n - my * my + 1 / 12) * cy * cy;
  const b = (sxy / n - mx * my) * cx * cy;
  const half = (a + c) / 2;
  const root = Math.sqrt(((a - c) / 2) * ((a - c) / 2) + b * b);
  const lmax = half + root;
  const lmin = Math.max(0, half - root);
  if (!(lmax > 0)) return 0;
  const area = n * cx * cy;
  const fill = lmin > 0 ? Math.min(1, area / (4 * Math.PI * Math.sqrt(lmin * lmax))) : 0;
  return Math.sqrt(lmin / lmax) * fill;
}

/**
 * The distribution summary of one slice from its masks (lung, side, opacity, high: opacity.ts analyseSlice on the
 * working grid, pxMm [row, column]). 2-D on purpose: a slice's masks are all a prepare thread holds (the series is
 * streamed, never held as a volume), and slices may be thick or unevenly spaced, where a 3-D distance would mix
 * in-plane millimetres with slab thickness. On axial slices the costal pleura, where the periphery matters, runs
 * nearly perpendicular to the slice; near the apex and the diaphragm domes, where the slice cuts the pleura
 * obliquely, the 2-D depth overstates how central a pixel is (documented in the model card).
 */
export function slicePattern(m: { lung: Mask; side: Int8Array; opacity: Mask; high: Mask }, pxMm: readonly [number, number]): SlicePattern {
  const { width: w, height: h } = m.lung;
  const out: SlicePattern = {
    width: w,
    height: h,
    pxMm2: pxMm[0] * pxMm[1],
    lungPx: [0, 0],
    lungPeripheralPx: [0, 0],
    lungInnerPx: [0, 0],
    lungLowerHalfPx: [0, 0],
    foci: [],
  };
  const lung = m.lung.data;
  const side = m.side;
  // the lung as runs: its box and, per image side, its first and last row
  const lr = runsOf(m.lung);
  const box = runsBox(lr);
  if (!box) return out;
  const { x0, y0, x1, y1 } = box;
  let ry00 = h;
  let ry01 = -1;
  let ry10 = h;
  let ry11 = -1;
  for (let y = y0; y <= y1; y++) {
    const base = y * w;
    for (let k = lr.rs[y] as number; k < (lr.rs[y + 1] as number); k++) {
      for (let i = base + (lr.s[k] as number), e = base + (lr.e[k] as number); i < e; i++) {
        if (side[i] === 1) {
          if (y < ry10) ry10 = y;
          ry11 = y;
        } else {
          if (y < ry00) ry00 = y;
          ry01 = y;
        }
      }
    }
  }
  const f = squaredDistancePadded(lung, w, x0, y0, x1, y1);
  const bw = x1 - x0 + 3;
  // d² of grid pixel (x, y) is f[dOff + y · bw + x]
  const dOff = (1 - y0) * bw + 1 - x0;
  let dmax0 = 0;
  let dmax1 = 0;
  for (let y = y0; y <= y1; y++) {
    const base = y * w;
    const drow = dOff + y * bw;
    for (let k = lr.rs[y] as number; k < (lr.rs[y + 1] as number); k++) {
      for (let x = lr.s[k] as number, e = lr.e[k] as number; x < e; x++) {
        const d = f[drow + x] as number;
        if (side[base + x] === 1) {
          if (d > dmax1) dmax1 = d;
        } else if (d > dmax0) dmax0 = d;
      }
    }
  }
  // d and dmax are squared distances: d ≤ dmax / 3 ⇔ 9·d² ≤ dmax²; lower half: 2y > first + last row of the side
  const lower0 = ry00 + ry01;
  const lower1 = ry10 + ry11;
  let px0 = 0;
  let px1 = 0;
  let low0 = 0;
  let low1 = 0;
  let inner0 = 0;
  let inner1 = 0;
  let per0 = 0;
  let per1 = 0;
  for (let y = y0; y <= y1; y++) {
    const base = y * w;
    const drow = dOff + y * bw;
    const isLow0 = 2 * y > lower0;
    const isLow1 = 2 * y > lower1;
    for (let k = lr.rs[y] as number; k < (lr.rs[y + 1] as number); k++) {
      for (let x = lr.s[k] as number, e = lr.e[k] as number; x < e; x++) {
        const d = f[drow + x] as number;
        if (side[base + x] === 1) {
          px1++;
          if (isLow1) low1++;
          if (d >= 2) {
            inner1++;
            if (9 * d <= dmax1) per1++;
          }
        } else {
          px0++;
          if (isLow0) low0++;
          if (d >= 2) {
            inner0++;
            if (9 * d <= dmax0) per0++;
          }
        }
      }
    }
  }
  out.lungPx = [px0, px1];
  out.lungLowerHalfPx = [low0, low1];
  out.lungInnerPx = [inner0, inner1];
  out.lungPeripheralPx = [per0, per1];
  // opacity within the lung's box (where it lies), as runs: its 4-components in raster order
  const op = m.opacity.data;
  const or = new Runs(w, h, 64);
  for (let y = 0; y < h; y++) {
    const f0 = or.n;
    or.rs[y] = f0;
    if (y < y0 || y > y1) continue;
    const base = y * w;
    let x = x0;
    while (x <= x1) {
      if (!op[base + x]) {
        x++;
        continue;
      }
      const s = x;
      while (x <= x1 && op[base + x]) x++;
      or.push(f0, s, x);
    }
  }
  or.rs[h] = or.n;
  if (or.n === 0) return out;
  const comps = labelRuns(or, 4);
  const n = comps.n;
  const fpx0 = new Float64Array(n + 1);
  const fpx1 = new Float64Array(n + 1);
  const high = new Float64Array(n + 1);
  const per = new Float64Array(n + 1);
  const low = new Float64Array(n + 1);
  const sx = new Float64Array(n + 1);
  const sy = new Float64Array(n + 1);
  const sxx = new Float64Array(n + 1);
  const syy = new Float64Array(n + 1);
  const sxy = new Float64Array(n + 1);
  const runCount = new Int32Array(n + 1);
  for (let k = 0; k < or.n; k++) {
    const l = comps.labelOf[k] as number;
    runCount[l] = (runCount[l] as number) + 1;
  }
  const runs = Array.from({ length: n + 1 }, (_, l) => new Int32Array(3 * (runCount[l] as number)));
  runCount.fill(0);
  const hi = m.high.data;
  for (let y = y0; y <= y1; y++) {
    const base = y * w;
    const drow = dOff + y * bw;
    const isLow0 = 2 * y > lower0;
    const isLow1 = 2 * y > lower1;
    for (let k = or.rs[y] as number; k < (or.rs[y + 1] as number); k++) {
      const l = comps.labelOf[k] as number;
      const s0 = or.s[k] as number;
      const e = or.e[k] as number;
      const r = runs[l] as Int32Array;
      const j = 3 * (runCount[l] as number);
      r[j] = y;
      r[j + 1] = s0;
      r[j + 2] = e - 1;
      runCount[l] = (runCount[l] as number) + 1;
      for (let x = s0; x < e; x++) {
        const i = base + x;
        const sd = side[i] === 1;
        if (sd) fpx1[l] = (fpx1[l] as number) + 1;
        else fpx0[l] = (fpx0[l] as number) + 1;
        if (hi[i]) high[l] = (high[l] as number) + 1;
        if (lung[i] && 9 * (f[drow + x] as number) <= (sd ? dmax1 : dmax0)) per[l] = (per[l] as number) + 1;
        if (sd ? isLow1 : isLow0) low[l] = (low[l] as number) + 1;
        sx[l] = (sx[l] as number) + x;
        sy[l] = (sy[l] as number) + y;
        sxx[l] = (sxx[l] as number) + x * x;
        syy[l] = (syy[l] as number) + y * y;
        sxy[l] = (sxy[l] as number) + x * y;
      }
    }
  }
  for (let l = 1; l <= n; l++) {
    const cnt = comps.sizes[l] as number;
    out.foci.push({
      px: [fpx0[l] as number, fpx1[l] as number],
      highPx: high[l] as number,
      peripheralPx: per[l] as number,
      lowerHalfPx: low[l] as number,
      roundness: roundness(cnt, sx[l] as number, sy[l] as number, sxx[l] as number, syy[l] as number, sxy[l] as number, pxMm),
      runs: runs[l] as Int32Array,
    });
  }
  return out;
}
