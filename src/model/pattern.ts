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
import { label } from './morphology.js';

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

/**
 * Exact squared Euclidean distance transform (Felzenszwalb & Huttenlocher 2012) of `inside` within the inclusive
 * box, padded by one background pixel: d² in working pixels for inside pixels, 0 elsewhere (box-local, row-major).
 * Integer arithmetic throughout: the same numbers as scipy.ndimage.distance_transform_edt squared.
 */
export function squaredDistance(inside: Uint8Array, w: number, x0: number, y0: number, x1: number, y1: number): Float64Array {
  const bw = x1 - x0 + 3;
  const bh = y1 - y0 + 3;
  const f = new Float64Array(bw * bh);
  // columns first: 1-D distance along y to the nearest background pixel
  for (let y = 0; y < bh; y++) {
    for (let x = 0; x < bw; x++) {
      const sx = x + x0 - 1;
      const sy = y + y0 - 1;
      const inBox = x > 0 && y > 0 && x < bw - 1 && y < bh - 1;
      f[y * bw + x] = inBox && inside[sy * w + sx] ? INF : 0;
    }
  }
  const n = Math.max(bw, bh);
  const v = new Int32Array(n);
  const z = new Float64Array(n + 1);
  const g = new Float64Array(n);
  // columns: f is 0 / ∞, so the 1-D distance is a scan each way (the padding row is background)
  for (let x = 0; x < bw; x++) {
    let last = 0;
    for (let y = 1; y < bh; y++) {
      const i = y * bw + x;
      if (f[i] === 0) last = y;
      else f[i] = y - last;
    }
    last = bh - 1;
    for (let y = bh - 2; y > 0; y--) {
      const i = y * bw + x;
      const d = f[i] as number;
      if (d === 0) last = y;
      else {
        const e = Math.min(d, last - y);
        f[i] = e * e;
      }
    }
  }
  for (let y = 1; y < bh - 1; y++) envelope(f, y * bw, bw, g, v, z);
  // back to the unpadded box
  const cw = x1 - x0 + 1;
  const ch = y1 - y0 + 1;
  const out = new Float64Array(cw * ch);
  for (let y = 0; y < ch; y++) for (let x = 0; x < cw; x++) out[y * cw + x] = f[(y + 1) * bw + x + 1] as number;
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
  // lung box and per-side row extents
  let x0 = w;
  let y0 = h;
  let x1 = -1;
  let y1 = -1;
  const ry0 = [h, h];
  const ry1 = [-1, -1];
  const lung = m.lung.data;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = y * w + x;
      if (!lung[i]) continue;
      const s = m.side[i] === 1 ? 1 : 0;
      if (x < x0) x0 = x;
      if (x > x1) x1 = x;
      if (y < y0) y0 = y;
      if (y > y1) y1 = y;
      if (y < (ry0[s] as number)) ry0[s] = y;
      if (y > (ry1[s] as number)) ry1[s] = y;
    }
  }
  if (x1 < 0) return out;
  const d2 = squaredDistance(lung, w, x0, y0, x1, y1);
  const cw = x1 - x0 + 1;
  const dmax = [0, 0];
  for (let y = y0; y <= y1; y++) {
    for (let x = x0; x <= x1; x++) {
      const i = y * w + x;
      if (!lung[i]) continue;
      const s = m.side[i] === 1 ? 1 : 0;
      const d = d2[(y - y0) * cw + (x - x0)] as number;
      if (d > (dmax[s] as number)) dmax[s] = d;
    }
  }
  // d and dmax are squared distances: d ≤ dmax / 3 ⇔ 9·d² ≤ dmax²
  const peripheral = (s: number, d: number): boolean => 9 * d <= (dmax[s] as number);
  const lower = (s: number, y: number): boolean => 2 * y > (ry0[s] as number) + (ry1[s] as number);
  for (let y = y0; y <= y1; y++) {
    for (let x = x0; x <= x1; x++) {
      const i = y * w + x;
      if (!lung[i]) continue;
      const s = m.side[i] === 1 ? 1 : 0;
      const d = d2[(y - y0) * cw + (x - x0)] as number;
      out.lungPx[s]++;
      if (lower(s, y)) out.lungLowerHalfPx[s]++;
      if (d >= 2) {
        out.lungInnerPx[s]++;
        if (peripheral(s, d)) out.lungPeripheralPx[s]++;
      }
    }
  }
  // opacity lies inside the lung: label it in the lung's box (the same raster order, so the same numbers)
  const ch = y1 - y0 + 1;
  const crop = new Uint8Array(cw * ch);
  let anyOpacity = false;
  for (let y = 0; y < ch; y++) {
    const row = (y + y0) * w + x0;
    for (let x = 0; x < cw; x++) {
      if (m.opacity.data[row + x]) {
        crop[y * cw + x] = 1;
        anyOpacity = true;
      }
    }
  }
  if (!anyOpacity) return out;
  const comps = label({ width: cw, height: ch, data: crop }, 4);
  if (comps.n === 0) return out;
  const n = comps.n;
  const px0 = new Float64Array(n + 1);
  const px1 = new Float64Array(n + 1);
  const high = new Float64Array(n + 1);
  const per = new Float64Array(n + 1);
  const low = new Float64Array(n + 1);
  const sx = new Float64Array(n + 1);
  const sy = new Float64Array(n + 1);
  const sxx = new Float64Array(n + 1);
  const syy = new Float64Array(n + 1);
  const sxy = new Float64Array(n + 1);
  const runs: number[][] = Array.from({ length: n + 1 }, () => []);
  const labels = comps.labels;
  for (let y = y0; y <= y1; y++) {
    let runLabel = 0;
    let runStart = 0;
    for (let x = x0; x <= x1 + 1; x++) {
      const l = x <= x1 ? (labels[(y - y0) * cw + (x - x0)] as number) : 0;
      if (l !== runLabel) {
        if (runLabel) (runs[runLabel] as number[]).push(y, runStart, x - 1);
        runLabel = l;
        runStart = x;
      }
      if (!l) continue;
      const i = y * w + x;
      const s = m.side[i] === 1 ? 1 : 0;
      if (s) px1[l] = (px1[l] as number) + 1;
      else px0[l] = (px0[l] as number) + 1;
      if (m.high.data[i]) high[l] = (high[l] as number) + 1;
      if (lung[i] && peripheral(s, d2[(y - y0) * cw + (x - x0)] as number)) per[l] = (per[l] as number) + 1;
      if (lower(s, y)) low[l] = (low[l] as number) + 1;
      sx[l] = (sx[l] as number) + x;
      sy[l] = (sy[l] as number) + y;
      sxx[l] = (sxx[l] as number) + x * x;
      syy[l] = (syy[l] as number) + y * y;
      sxy[l] = (sxy[l] as number) + x * y;
    }
  }
  for (let l = 1; l <= n; l++) {
    const cnt = comps.sizes[l] as number;
    out.foci.push({
      px: [px0[l] as number, px1[l] as number],
      highPx: high[l] as number,
      peripheralPx: per[l] as number,
      lowerHalfPx: low[l] as number,
      roundness: roundness(cnt, sx[l] as number, sy[l] as number, sxx[l] as number, syy[l] as number, sxy[l] as number, pxMm),
      runs: Int32Array.from(runs[l] as number[]),
    });
  }
  return out;
}
