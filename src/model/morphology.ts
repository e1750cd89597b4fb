/**
 * Binary morphology and connected components on small row-major masks (TypeScript twin of the helpers in
 * training/lung.py). A mask is a Uint8Array of 0/1, `width` × `height`.
 *
 * disk(r) = {(dy, dx) : dy² + dx² ≤ (RADIUS_SLACK · r)²} (r in pixels, may be fractional). Dilation = OR of the mask shifted by
 * every offset, erosion = AND; pixels outside the image count as 0 for both (so erosion eats the border).
 * Both run on per-row distances to the nearest set (unset) pixel, combined over 2R + 1 rows: O(R · n).
 * Components are numbered 1..n in raster order of their first pixel (scipy.ndimage.label does the same).
 */

export interface Mask {
  width: number;
  height: number;
  data: Uint8Array;
}

export function emptyMask(width: number, height: number): Mask {
  return { width, height, data: new Uint8Array(width * height) };
}

const EPS = 1e-9;

/**
 * Radii are mm / (mm per working pixel), and the working pixel is workMm only up to the rounding of the grid
 * size (±0.25 % with the field of view: 302 mm → 1.2479, 383 mm → 1.2516 mm). 1.25 mm and 2.5 mm at 1.25 mm/px
 * are whole pixels, so without slack the field of view decided whether a 1-px erosion or halo happened at all.
 * A disc includes the offsets up to RADIUS_SLACK × r (twin: training/lung.py RADIUS_SLACK).
 */
export const RADIUS_SLACK = 1.005;

/** Half-widths of disk(r) per row offset dy = −R..R (index dy + R). */
export function diskHalfWidths(radius: number): Int32Array {
  const r = radius * RADIUS_SLACK;
  const R = Math.floor(r + EPS);
  const out = new Int32Array(2 * R + 1);
  for (let dy = -R; dy <= R; dy++) {
    let hw = 0;
    while ((hw + 1) * (hw + 1) + dy * dy <= r * r + EPS) hw++;
    out[dy + R] = hw;
  }
  return out;
}

/** Scratch for the morphology passes (the worker runs one slice at a time per thread). */
let distScratch = new Int32Array(0);
let firstScratch = new Int32Array(0);
let lastScratch = new Int32Array(0);

function scratchInts(n: number, h: number): { dist: Int32Array; first: Int32Array; last: Int32Array } {
  if (distScratch.length < n) distScratch = new Int32Array(n);
  if (firstScratch.length < h) {
    firstScratch = new Int32Array(h);
    lastScratch = new Int32Array(h);
  }
  return { dist: distScratch, first: firstScratch, last: lastScratch };
}

/** Per row, the first and last set column (−1, −1 for a row with none). */
function rowExtents(data: Uint8Array, w: number, h: number, first: Int32Array, last: Int32Array): void {
  for (let y = 0; y < h; y++) {
    const base = y * w;
    let a = 0;
    while (a < w && !data[base + a]) a++;
    if (a === w) {
      first[y] = -1;
      last[y] = -1;
      continue;
    }
    let b = w - 1;
    while (!data[base + b]) b--;
    first[y] = a;
    last[y] = b;
  }
}

/**
 * Row y's distances (in pixels, capped at `cap`) from each pixel to the nearest pixel of value `target` in the
 * same row, left or right, into d[y·w …]; the outside of the row counts as `target` when `outsideIsTarget`.
 */
function rowDistances(data: Uint8Array, w: number, y: number, target: 0 | 1, outsideIsTarget: boolean, cap: number, d: Int32Array): void {
  const base = y * w;
  let last = outsideIsTarget ? -1 : -cap - 1; // column of the last target pixel seen from the left
  for (let x = 0; x < w; x++) {
    if (data[base + x] === target) last = x;
    const r = x - last;
    d[base + x] = r < cap ? r : cap;
  }
  last = outsideIsTarget ? w : w + cap + 1;
  for (let x = w - 1; x >= 0; x--) {
    if (data[base + x] === target) last = x;
    const r = last - x;
    if (r < (d[base + x] as number)) d[base + x] = r < cap ? r : cap;
  }
}

/** What both disc passes start from: the disc's half-widths, each row's set extent, and each set (dilate) or
 * unset (erode) pixel's distance along its row to the nearest pixel of the other kind, up to R + 1. Undefined
 * for a disc of radius 0 (the mask is its own answer). */
const DILATE = { seek: 1, inverse: false } as const;
const ERODE = { seek: 0, inverse: true } as const;
function discPass(m: Mask, r: number, mode: { seek: 0 | 1; inverse: boolean }) {
  const { width: w, height: h, data } = m;
  const hws = diskHalfWidths(r);
  const R = (hws.length - 1) >> 1;
  if (R === 0) return undefined;
  const { dist, first, last } = scratchInts(w * h, h);
  rowExtents(data, w, h, first, last);
  for (let y = 0; y < h; y++) if ((first[y] as number) >= 0) rowDistances(data, w, y, mode.seek, mode.inverse, R + 1, dist);
  return { hws, R, dist, first, last };
}

/**
 * Dilation: 1 where some row y + dy inside the image has a set pixel within hw(dy) columns. Only rows with set
 * pixels contribute, and each only within its first − hw … last + hw columns.
 */
export function dilate(m: Mask, r: number): Mask {
  const { width: w, height: h, data } = m;
  const p = discPass(m, r, DILATE);
  if (!p) return { width: w, height: h, data: data.slice() };
  const { hws, R, dist, first, last } = p;
  const res = new Uint8Array(w * h);
  for (let yy = 0; yy < h; yy++) {
    const f = first[yy] as number;
    if (f < 0) continue;
    const l = last[yy] as number;
    const sb = yy * w;
    for (let dy = -R; dy <= R; dy++) {
      const y = yy - dy; // row yy lies dy below row y
      if (y < 0 || y >= h) continue;
      const hw = hws[dy + R] as number;
      const base = y * w;
      const x0 = f - hw > 0 ? f - hw : 0;
      const x1 = l + hw < w - 1 ? l + hw : w - 1;
      for (let x = x0; x <= x1; x++) if ((dist[sb + x] as number) <= hw) res[base + x] = 1;
    }
  }
  return { width: w, height: h, data: res };
}

/**
 * Erosion: 1 where every row y + dy is inside the image and holds no unset pixel (nor the edge) within hw(dy).
 * A pixel can only survive within the set columns of every row it looks at, so each row is scanned only over
 * the intersection of their extents.
 */
export function erode(m: Mask, r: number): Mask {
  const { width: w, height: h, data } = m;
  const p = discPass(m, r, ERODE);
  if (!p) return { width: w, height: h, data: data.slice() };
  const { hws, R, dist, first, last } = p;
  const res = new Uint8Array(w * h);
  for (let y = R; y < h - R; y++) {
    let x0 = 0;
    let x1 = w - 1;
    for (let dy = -R; dy <= R && x0 <= x1; dy++) {
      const f = first[y + dy] as number;
      const l = last[y + dy] as number;
      if (f < 0) {
        x1 = -1;
        break;
      }
      if (f > x0) x0 = f;
      if (l < x1) x1 = l;
    }
    const base = y * w;
    for (let x = x0; x <= x1; x++) {
      if (!data[base + x]) continue;
      let ok = 1;
      for (let dy = -R; dy <= R; dy++) {
        if ((dist[(y + dy) * w + x] as number) <= (hws[dy + R] as number)) {
          ok = 0;
          break;
        }
      }
      res[base + x] = ok;
    }
  }
  return { width: w, height: h, data: res };
}

export function opening(m: Mask, r: number): Mask {
  return dilate(erode(m, r), r);
}

export function closing(m: Mask, r: number): Mask {
  return erode(dilate(m, r), r);
}

export function invert(m: Mask): Mask {
  const d = new Uint8Array(m.data.length);
  for (let i = 0; i < d.length; i++) d[i] = m.data[i] ? 0 : 1;
  return { width: m.width, height: m.height, data: d };
}

export function and(a: Mask, b: Mask): Mask {
  const d = new Uint8Array(a.data.length);
  for (let i = 0; i < d.length; i++) d[i] = a.data[i] && b.data[i] ? 1 : 0;
  return { width: a.width, height: a.height, data: d };
}

export function or(a: Mask, b: Mask): Mask {
  const d = new Uint8Array(a.data.length);
  for (let i = 0; i < d.length; i++) d[i] = a.data[i] || b.data[i] ? 1 : 0;
  return { width: a.width, height: a.height, data: d };
}

export function andNot(a: Mask, b: Mask): Mask {
  const d = new Uint8Array(a.data.length);
  for (let i = 0; i < d.length; i++) d[i] = a.data[i] && !b.data[i] ? 1 : 0;
  return { width: a.width, height: a.height, data: d };
}

export function count(m: Mask): number {
  let n = 0;
  for (let i = 0; i < m.data.length; i++) n += m.data[i] as number;
  return n;
}

export interface Components {
  /** 0 = background, 1..n. */
  labels: Int32Array;
  n: number;
  /** Pixel count per label (index 0 unused). */
  sizes: Int32Array;
}

/** Growable scratch arrays for label(): runs and their union-find parents, reused from call to call. */
let runStart = new Int32Array(4096);
let runEnd = new Int32Array(4096);
let runParent = new Int32Array(4096);
let runLabel = new Int32Array(4096);
let runRow = new Int32Array(4096);

function growRuns(need: number): void {
  if (need <= runStart.length) return;
  let n = runStart.length;
  while (n < need) n *= 2;
  const g = (a: Int32Array): Int32Array<ArrayBuffer> => {
    const b = new Int32Array(n);
    b.set(a);
    return b;
  };
  runStart = g(runStart);
  runEnd = g(runEnd);
  runParent = g(runParent);
  runRow = g(runRow);
  runLabel = new Int32Array(n);
}

function findRun(x: number): number {
  let r = x;
  while (runParent[r] !== r) r = runParent[r] as number;
  while (runParent[x] !== r) {
    const nx = runParent[x] as number;
    runParent[x] = r;
    x = nx;
  }
  return r;
}

/**
 * Connected components of the set pixels (4- or 8-connectivity), numbered in raster order of first pixel.
 *
 * Run-based union-find: each row's runs of set pixels are joined to the overlapping runs of the row above (for
 * 8-connectivity, runs that touch diagonally too); a set's root is its lowest-numbered run. Runs are numbered in
 * raster order, so a component's first run holds its first pixel, and numbering the roots in run order numbers
 * the components in raster order of their first pixel (what scipy.ndimage.label and the per-pixel version did).
 */
export function label(m: Mask, connectivity: 4 | 8): Components {
  const { width: w, height: h, data } = m;
  const reach = connectivity === 8 ? 1 : 0;
  let nRuns = 0;
  let prevFirst = 0; // runs of the row above: prevFirst .. prevEnd - 1
  let prevEnd = 0;
  for (let y = 0; y < h; y++) {
    const row = y * w;
    const first = nRuns;
    let p = prevFirst; // the first run above that may still overlap
    let x = 0;
    while (x < w) {
      if (!data[row + x]) {
        x++;
        continue;
      }
      const s = x;
      while (x < w && data[row + x]) x++;
      const e = x; // run is [s, e)
      if (nRuns >= runStart.length) growRuns(nRuns + 1);
      const id = nRuns++;
      runStart[id] = s;
      runEnd[id] = e;
      runRow[id] = row;
      runParent[id] = id;
      // runs above overlapping [s - reach, e + reach)
      while (p < prevEnd && (runEnd[p] as number) + reach <= s) p++;
      for (let q = p; q < prevEnd && (runStart[q] as number) < e + reach; q++) {
        const a = findRun(q);
        const b = findRun(id);
        if (a < b) runParent[b] = a;
        else if (b < a) runParent[a] = b;
      }
    }
    prevFirst = first;
    prevEnd = nRuns;
  }
  const labels = new Int32Array(w * h);
  let n = 0;
  for (let i = 0; i < nRuns; i++) {
    const r = findRun(i);
    runLabel[i] = r === i ? ++n : (runLabel[r] as number);
  }
  const sizes = new Int32Array(n + 1);
  for (let i = 0; i < nRuns; i++) {
    const s = runStart[i] as number;
    const e = runEnd[i] as number;
    const l = runLabel[i] as number;
    const row = runRow[i] as number;
    labels.fill(l, row + s, row + e);
    sizes[l] = (sizes[l] as number) + (e - s);
  }
  return { labels, n, sizes };
}

/** Labels that touch the image border. */
function borderLabels(c: Components, w: number, h: number): Uint8Array {
  const touch = new Uint8Array(c.n + 1);
  for (let x = 0; x < w; x++) {
    touch[c.labels[x] as number] = 1;
    touch[c.labels[(h - 1) * w + x] as number] = 1;
  }
  for (let y = 0; y < h; y++) {
    touch[c.labels[y * w] as number] = 1;
    touch[c.labels[y * w + w - 1] as number] = 1;
  }
  return touch;
}

/**
 * Fill background 4-components that do not touch the border (only those of ≤ maxPixels when given). Works in
 * the bounding box of the set pixels grown by one: its rim is background joined to the image border, so a
 * component touches the image border exactly when it touches the window's.
 */
export function fillHoles(m: Mask, maxPixels?: number): Mask {
  const out = m.data.slice();
  const b = bbox(m);
  if (!b) return { width: m.width, height: m.height, data: out };
  const x0 = Math.max(0, b.x0 - 1);
  const y0 = Math.max(0, b.y0 - 1);
  const x1 = Math.min(m.width - 1, b.x1 + 1);
  const y1 = Math.min(m.height - 1, b.y1 + 1);
  const ww = x1 - x0 + 1;
  const wh = y1 - y0 + 1;
  const inv = new Uint8Array(ww * wh);
  for (let y = 0; y < wh; y++) for (let x = 0; x < ww; x++) inv[y * ww + x] = m.data[(y + y0) * m.width + x + x0] ? 0 : 1;
  const c = label({ width: ww, height: wh, data: inv }, 4);
  const touch = borderLabels(c, ww, wh);
  for (let y = 0; y < wh; y++) {
    for (let x = 0; x < ww; x++) {
      const l = c.labels[y * ww + x] as number;
      if (l && !touch[l] && (maxPixels === undefined || (c.sizes[l] as number) <= maxPixels)) out[(y + y0) * m.width + x + x0] = 1;
    }
  }
  return { width: m.width, height: m.height, data: out };
}

/** Keep 4-components of at least minPixels. */
export function removeSmall(m: Mask, minPixels: number): Mask {
  const c = label(m, 4);
  const out = new Uint8Array(m.data.length);
  for (let i = 0; i < out.length; i++) {
    const l = c.labels[i] as number;
    if (l && (c.sizes[l] as number) >= minPixels) out[i] = 1;
  }
  return { width: m.width, height: m.height, data: out };
}

export interface Box {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}

/** Inclusive bounding box of the set pixels, or null. */
export function bbox(m: Mask): Box | null {
  const { width: w, height: h, data } = m;
  let y0 = 0;
  const rowEmpty = (y: number): boolean => {
    const base = y * w;
    for (let x = 0; x < w; x++) if (data[base + x]) return false;
    return true;
  };
  while (y0 < h && rowEmpty(y0)) y0++;
  if (y0 === h) return null;
  let y1 = h - 1;
  while (rowEmpty(y1)) y1--;
  let x0 = w;
  let x1 = -1;
  for (let y = y0; y <= y1; y++) {
    const base = y * w;
    for (let x = 0; x < x0; x++) {
      if (data[base + x]) {
        x0 = x;
        break;
      }
    }
    for (let x = w - 1; x > x1; x--) {
      if (data[base + x]) {
        x1 = x;
        break;
      }
    }
  }
  return { x0, y0, x1, y1 };
}
