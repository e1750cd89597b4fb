/**
 * Binary masks as row runs, for the lung and opacity passes (lung.ts, opacity.ts): row y's set pixels are the
 * half-open runs [s[k], e[k]) for k in rs[y] … rs[y + 1] − 1, sorted, disjoint and maximal (never touching).
 * Every operation is exact, pixel for pixel the same mask as morphology.ts gives on a byte mask, but costs
 * O(runs) instead of O(pixels): a lung slice has a few runs per row where its byte mask has hundreds of pixels.
 *
 * Morphology by a disc (morphology.ts diskHalfWidths: half-width hw(dy) per row offset) decomposes by rows:
 *   dilation: row y = ⋃_dy (row y + dy, each run widened by hw(dy)), within the clip box;
 *   erosion:  row y = ⋂_dy (row y + dy, each run narrowed by hw(dy)), empty where a row y + dy leaves the clip
 *             box; outside the clip box counts as unset (the edge of morphology.ts's window or image).
 * Components: union-find over runs (as morphology.ts label), numbered in raster order of their first pixel.
 */
import type { Box, Mask } from './morphology.js';

export class Runs {
  readonly width: number;
  readonly height: number;
  /** First run of each row; rs[height] = n. */
  readonly rs: Int32Array;
  s: Int32Array;
  e: Int32Array;
  n = 0;

  constructor(width: number, height: number, capacity = 256) {
    this.width = width;
    this.height = height;
    this.rs = new Int32Array(height + 1);
    this.s = new Int32Array(Math.max(16, capacity));
    this.e = new Int32Array(Math.max(16, capacity));
  }

  /** Appends a run to the row being built (a run that touches or overlaps the last one of the row joins it). */
  push(rowFirst: number, s: number, e: number): void {
    const n = this.n;
    if (n > rowFirst && (this.e[n - 1] as number) >= s) {
      if (e > (this.e[n - 1] as number)) this.e[n - 1] = e;
      return;
    }
    if (n === this.s.length) this.grow();
    this.s[n] = s;
    this.e[n] = e;
    this.n = n + 1;
  }

  private grow(): void {
    const s = new Int32Array(this.s.length * 2);
    const e = new Int32Array(this.e.length * 2);
    s.set(this.s);
    e.set(this.e);
    this.s = s;
    this.e = e;
  }
}

/**
 * Set pixels of a 0/1 mask (morphology.ts Mask). The run boundaries are found with the typed array's native
 * indexOf (a memchr over the zeros), so the cost follows the runs more than the pixels.
 */
export function runsOf(m: Mask): Runs {
  const { width: w, height: h, data } = m;
  const out = new Runs(w, h);
  const total = w * h;
  let y = 0; // rs[0 … y] are set
  out.rs[0] = 0;
  let pos = data.indexOf(1);
  while (pos >= 0 && pos < total) {
    const ry = (pos / w) | 0;
    while (y < ry) out.rs[++y] = out.n;
    const rowStart = ry * w;
    const rowEnd = rowStart + w;
    let end = data.indexOf(0, pos);
    if (end < 0 || end > rowEnd) end = rowEnd;
    out.push(out.rs[ry] as number, pos - rowStart, end - rowStart);
    pos = data.indexOf(1, end);
  }
  while (y < h) out.rs[++y] = out.n;
  return out;
}

/** Pixel count. */
export function countRuns(r: Runs): number {
  let c = 0;
  for (let k = 0; k < r.n; k++) c += (r.e[k] as number) - (r.s[k] as number);
  return c;
}

/** Inclusive bounding box, or null when empty. */
export function runsBox(r: Runs): Box | null {
  if (r.n === 0) return null;
  let y0 = 0;
  while ((r.rs[y0 + 1] as number) === 0) y0++;
  let y1 = r.height - 1;
  while ((r.rs[y1] as number) === r.n) y1--;
  let x0 = r.width;
  let x1 = -1;
  for (let y = y0; y <= y1; y++) {
    const a = r.rs[y] as number;
    const b = r.rs[y + 1] as number;
    if (a === b) continue;
    if ((r.s[a] as number) < x0) x0 = r.s[a] as number;
    if ((r.e[b - 1] as number) - 1 > x1) x1 = (r.e[b - 1] as number) - 1;
  }
  return { x0, y0, x1, y1 };
}

/** The runs as a byte mask (a fresh one, or `into` cleared first). */
export function paintRuns(r: Runs, into?: Uint8Array): Mask {
  const w = r.width;
  const data = into ?? new Uint8Array(w * r.height);
  if (into) into.fill(0);
  for (let y = 0; y < r.height; y++) {
    const base = y * w;
    for (let k = r.rs[y] as number; k < (r.rs[y + 1] as number); k++) data.fill(1, base + (r.s[k] as number), base + (r.e[k] as number));
  }
  return { width: w, height: r.height, data };
}

/** Runs whose label (labelOf[k] for run k) is flagged in keep. */
export function selectRuns(r: Runs, labelOf: Int32Array, keep: Uint8Array): Runs {
  const out = new Runs(r.width, r.height, r.n);
  for (let y = 0; y < r.height; y++) {
    out.rs[y] = out.n;
    for (let k = r.rs[y] as number; k < (r.rs[y + 1] as number); k++) {
      if (keep[labelOf[k] as number]) out.push(out.rs[y] as number, r.s[k] as number, r.e[k] as number);
    }
  }
  out.rs[r.height] = out.n;
  return out;
}

type RowOp = (out: Runs, f: number, a: Runs, a0: number, a1: number, b: Runs, b0: number, b1: number) => void;

function rowUnion(out: Runs, f: number, a: Runs, i: number, ia: number, b: Runs, j: number, jb: number): void {
  while (i < ia || j < jb) {
    if (j >= jb || (i < ia && (a.s[i] as number) <= (b.s[j] as number))) {
      out.push(f, a.s[i] as number, a.e[i] as number);
      i++;
    } else {
      out.push(f, b.s[j] as number, b.e[j] as number);
      j++;
    }
  }
}

function rowIntersect(out: Runs, f: number, a: Runs, i: number, ia: number, b: Runs, j: number, jb: number): void {
  while (i < ia && j < jb) {
    const as = a.s[i] as number;
    const ae = a.e[i] as number;
    const bs = b.s[j] as number;
    const be = b.e[j] as number;
    const lo = as > bs ? as : bs;
    const hi = ae < be ? ae : be;
    if (lo < hi) out.push(f, lo, hi);
    if (ae < be) i++;
    else j++;
  }
}

function rowSubtract(out: Runs, f: number, a: Runs, i: number, ia: number, b: Runs, j: number, jb: number): void {
  for (; i < ia; i++) {
    let s = a.s[i] as number;
    const e = a.e[i] as number;
    while (j < jb && (b.e[j] as number) <= s) j++;
    let q = j;
    while (q < jb && (b.s[q] as number) < e) {
      if ((b.s[q] as number) > s) out.push(f, s, b.s[q] as number);
      if ((b.e[q] as number) > s) s = b.e[q] as number;
      if (s >= e) break;
      q++;
    }
    if (s < e) out.push(f, s, e);
  }
}

function rowwise(a: Runs, b: Runs, op: RowOp, cap: number): Runs {
  const out = new Runs(a.width, a.height, cap);
  for (let y = 0; y < a.height; y++) {
    const f = out.n;
    out.rs[y] = f;
    op(out, f, a, a.rs[y] as number, a.rs[y + 1] as number, b, b.rs[y] as number, b.rs[y + 1] as number);
  }
  out.rs[a.height] = out.n;
  return out;
}

export const unionRuns = (a: Runs, b: Runs): Runs => rowwise(a, b, rowUnion, a.n + b.n);
export const intersectRuns = (a: Runs, b: Runs): Runs => rowwise(a, b, rowIntersect, Math.max(a.n, b.n));
/** a and not b. */
export const subtractRuns = (a: Runs, b: Runs): Runs => rowwise(a, b, rowSubtract, a.n + b.n);

/** k-way merge scratch (one prepare thread runs one slice at a time). */
let heads = new Int32Array(16);
let ends = new Int32Array(16);

/**
 * Dilation by the disc of half-widths `hws` (length 2R + 1), within the inclusive clip box (the image or window
 * morphology.ts would run on; `a` must lie inside it).
 */
export function dilateRuns(a: Runs, hws: Int32Array, clip: Box): Runs {
  const R = (hws.length - 1) >> 1;
  const out = new Runs(a.width, a.height, a.n * 2);
  if (heads.length < hws.length) {
    heads = new Int32Array(hws.length);
    ends = new Int32Array(hws.length);
  }
  const xlo = clip.x0;
  const xhi = clip.x1 + 1;
  for (let y = 0; y < a.height; y++) {
    const f = out.n;
    out.rs[y] = f;
    if (y < clip.y0 || y > clip.y1) continue;
    // row y gathers the runs of rows y + dy (dy = −R … R), each widened by hw(dy); merge them by start
    for (let k = 0; k <= 2 * R; k++) {
      const yy = y + k - R;
      if (yy < clip.y0 || yy > clip.y1) {
        heads[k] = 0;
        ends[k] = 0;
      } else {
        heads[k] = a.rs[yy] as number;
        ends[k] = a.rs[yy + 1] as number;
      }
    }
    for (;;) {
      let best = -1;
      let bestS = 0;
      for (let k = 0; k <= 2 * R; k++) {
        const h = heads[k] as number;
        if (h >= (ends[k] as number)) continue;
        const s = (a.s[h] as number) - (hws[k] as number);
        if (best < 0 || s < bestS) {
          best = k;
          bestS = s;
        }
      }
      if (best < 0) break;
      const h = heads[best] as number;
      heads[best] = h + 1;
      let e = (a.e[h] as number) + (hws[best] as number);
      let s = bestS;
      if (s < xlo) s = xlo;
      if (e > xhi) e = xhi;
      if (s < e) out.push(f, s, e);
    }
  }
  out.rs[a.height] = out.n;
  return out;
}

let tmpA = new Runs(1, 1, 64);
let tmpB = new Runs(1, 1, 64);

/** Erosion by the disc of half-widths `hws` within the inclusive clip box (outside it counts as unset). */
export function erodeRuns(a: Runs, hws: Int32Array, clip: Box): Runs {
  const R = (hws.length - 1) >> 1;
  const out = new Runs(a.width, a.height, a.n);
  const xlo = clip.x0;
  const xhi = clip.x1 + 1;
  for (let y = 0; y < a.height; y++) {
    const f = out.n;
    out.rs[y] = f;
    if (y - R < clip.y0 || y + R > clip.y1) continue;
    // cur = ⋂ over the rows so far; start with row y − R narrowed, then intersect with each next row narrowed
    let cur = tmpA;
    cur.n = 0;
    for (let k = 0; k <= 2 * R; k++) {
      const yy = y + k - R;
      const hw = hws[k] as number;
      const i0 = a.rs[yy] as number;
      const i1 = a.rs[yy + 1] as number;
      if (k === 0) {
        for (let i = i0; i < i1; i++) {
          let s = a.s[i] as number;
          let e = a.e[i] as number;
          if (s < xlo) s = xlo;
          if (e > xhi) e = xhi;
          s += hw;
          e -= hw;
          if (s < e) cur.push(0, s, e);
        }
      } else {
        const nxt = cur === tmpA ? tmpB : tmpA;
        nxt.n = 0;
        let j = 0;
        for (let i = i0; i < i1 && j < cur.n; i++) {
          let s = a.s[i] as number;
          let e = a.e[i] as number;
          if (s < xlo) s = xlo;
          if (e > xhi) e = xhi;
          s += hw;
          e -= hw;
          if (s >= e) continue;
          // intersect [s, e) with cur's runs from j
          while (j < cur.n && (cur.e[j] as number) <= s) j++;
          let q = j;
          while (q < cur.n && (cur.s[q] as number) < e) {
            const lo = (cur.s[q] as number) > s ? (cur.s[q] as number) : s;
            const hi = (cur.e[q] as number) < e ? (cur.e[q] as number) : e;
            if (lo < hi) nxt.push(0, lo, hi);
            q++;
          }
        }
        cur = nxt;
      }
      if (cur.n === 0) break;
    }
    for (let k = 0; k < cur.n; k++) out.push(f, cur.s[k] as number, cur.e[k] as number);
  }
  out.rs[a.height] = out.n;
  if (tmpA.s.length > 1 << 16) tmpA = new Runs(1, 1, 64);
  if (tmpB.s.length > 1 << 16) tmpB = new Runs(1, 1, 64);
  return out;
}

/** Components of runs: label per run (1..n, raster order of the first pixel) and pixel count per label. */
export interface RunLabels {
  labelOf: Int32Array;
  n: number;
  sizes: Int32Array;
}

let parent = new Int32Array(1024);

function find(x: number): number {
  let r = x;
  while (parent[r] !== r) r = parent[r] as number;
  while (parent[x] !== r) {
    const nx = parent[x] as number;
    parent[x] = r;
    x = nx;
  }
  return r;
}

/**
 * 4- or 8-connected components: each row's runs join the overlapping runs of the row above (8: diagonal touch
 * too); a set's root is its lowest run, so numbering roots in run order numbers components in raster order of
 * their first pixel, as morphology.ts label does.
 */
export function labelRuns(r: Runs, connectivity: 4 | 8): RunLabels {
  const reach = connectivity === 8 ? 1 : 0;
  if (parent.length < r.n) parent = new Int32Array(Math.max(r.n, parent.length * 2));
  for (let k = 0; k < r.n; k++) parent[k] = k;
  for (let y = 1; y < r.height; y++) {
    const p0 = r.rs[y - 1] as number;
    const p1 = r.rs[y] as number;
    const c1 = r.rs[y + 1] as number;
    let p = p0;
    for (let c = p1; c < c1; c++) {
      const s = r.s[c] as number;
      const e = r.e[c] as number;
      while (p < p1 && (r.e[p] as number) + reach <= s) p++;
      for (let q = p; q < p1 && (r.s[q] as number) < e + reach; q++) {
        const a = find(q);
        const b = find(c);
        if (a < b) parent[b] = a;
        else if (b < a) parent[a] = b;
      }
    }
  }
  const labelOf = new Int32Array(r.n);
  let n = 0;
  for (let k = 0; k < r.n; k++) {
    const root = find(k);
    labelOf[k] = root === k ? ++n : (labelOf[root] as number);
  }
  const sizes = new Int32Array(n + 1);
  for (let k = 0; k < r.n; k++) {
    const l = labelOf[k] as number;
    sizes[l] = (sizes[l] as number) + (r.e[k] as number) - (r.s[k] as number);
  }
  return { labelOf, n, sizes };
}

/** Keep 4-components of at least minPixels (morphology.ts removeSmall). */
export function removeSmallRuns(r: Runs, minPixels: number): Runs {
  const c = labelRuns(r, 4);
  const keep = new Uint8Array(c.n + 1);
  for (let l = 1; l <= c.n; l++) if ((c.sizes[l] as number) >= minPixels) keep[l] = 1;
  return selectRuns(r, c.labelOf, keep);
}

/**
 * morphology.ts fillHoles on runs, `clip` being the image it ran on: background 4-components of the window
 * (bounding box of the set pixels grown by one, within clip) that do not touch the window's edge are filled
 * (only those of ≤ maxPixels when given). The background of each row is its gaps: before the first run, between
 * runs, after the last; gaps in the window's first or last row, or at its left or right edge, touch the edge;
 * the others are joined to the gaps they overlap in the row above, by union-find.
 */
export function fillHolesRuns(r: Runs, clip: Box, maxPixels?: number): Runs {
  const b = runsBox(r);
  if (!b) return r;
  const wx0 = Math.max(clip.x0, b.x0 - 1);
  const wy0 = Math.max(clip.y0, b.y0 - 1);
  const wx1 = Math.min(clip.x1, b.x1 + 1) + 1; // exclusive
  const wy1 = Math.min(clip.y1, b.y1 + 1);
  // gaps of the window rows, numbered in raster order; gapRow[y - wy0] = first gap of row y
  const rows = wy1 - wy0 + 1;
  const gapRow = new Int32Array(rows + 1);
  let gs = new Int32Array(r.n + 2 * rows);
  let ge = new Int32Array(r.n + 2 * rows);
  let ng = 0;
  for (let y = wy0; y <= wy1; y++) {
    gapRow[y - wy0] = ng;
    let x = wx0;
    for (let k = r.rs[y] as number; k < (r.rs[y + 1] as number); k++) {
      const s = r.s[k] as number;
      if (s > x) {
        gs[ng] = x;
        ge[ng] = s;
        ng++;
      }
      x = r.e[k] as number;
    }
    if (x < wx1) {
      gs[ng] = x;
      ge[ng] = wx1;
      ng++;
    }
    if (ng + rows > gs.length) {
      const g2 = new Int32Array(gs.length * 2);
      const e2 = new Int32Array(ge.length * 2);
      g2.set(gs);
      e2.set(ge);
      gs = g2;
      ge = e2;
    }
  }
  gapRow[rows] = ng;
  if (parent.length < ng) parent = new Int32Array(Math.max(ng, parent.length * 2));
  for (let k = 0; k < ng; k++) parent[k] = k;
  for (let y = 1; y < rows; y++) {
    const p0 = gapRow[y - 1] as number;
    const p1 = gapRow[y] as number;
    const c1 = gapRow[y + 1] as number;
    let p = p0;
    for (let c = p1; c < c1; c++) {
      const s = gs[c] as number;
      const e = ge[c] as number;
      while (p < p1 && (ge[p] as number) <= s) p++;
      for (let q = p; q < p1 && (gs[q] as number) < e; q++) {
        const a = find(q);
        const bb = find(c);
        if (a < bb) parent[bb] = a;
        else if (bb < a) parent[a] = bb;
      }
    }
  }
  // per root: touches the window's edge, and size
  const edge = new Uint8Array(ng);
  const size = new Float64Array(ng);
  for (let y = 0; y < rows; y++) {
    const last = y === 0 || y === rows - 1;
    for (let k = gapRow[y] as number; k < (gapRow[y + 1] as number); k++) {
      const root = find(k);
      size[root] = (size[root] as number) + (ge[k] as number) - (gs[k] as number);
      if (last || (gs[k] as number) === wx0 || (ge[k] as number) === wx1) edge[root] = 1;
    }
  }
  const out = new Runs(r.width, r.height, r.n);
  for (let y = 0; y < r.height; y++) {
    const f = out.n;
    out.rs[y] = f;
    const k0 = r.rs[y] as number;
    const k1 = r.rs[y + 1] as number;
    if (y < wy0 || y > wy1) {
      for (let k = k0; k < k1; k++) out.push(f, r.s[k] as number, r.e[k] as number);
      continue;
    }
    // a filled gap lies between two runs: pushing it joins them (push merges touching runs)
    let g = gapRow[y - wy0] as number;
    const g1 = gapRow[y - wy0 + 1] as number;
    for (let k = k0; k < k1; k++) {
      out.push(f, r.s[k] as number, r.e[k] as number);
      while (g < g1 && (gs[g] as number) < (r.e[k] as number)) g++;
      if (g < g1 && (gs[g] as number) === (r.e[k] as number)) {
        const root = find(g);
        if (!edge[root] && (maxPixels === undefined || (size[root] as number) <= maxPixels)) out.push(f, gs[g] as number, ge[g] as number);
      }
    }
  }
  out.rs[r.height] = out.n;
  return out;
}
