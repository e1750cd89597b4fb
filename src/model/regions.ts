/**
 * Where on a key slice the finding is: the attention map restricted to the lungs, its peak, and the outline
 * of the largest opacity region, in DICOM image coordinates of the source slice (column, row; (0, 0) is the
 * top-left corner of the top-left pixel). Pure arrays in, numbers out.
 */
import type { CropBox } from './preprocess.js';
import { label, type Mask } from './morphology.js';

export interface AttentionGrid {
  width: number;
  height: number;
  /** Row-major, over the crop box of the source image. */
  data: ArrayLike<number>;
}

export interface MaskedAttention {
  width: number;
  height: number;
  /** Row-major 0..1 over `cropBox`, 0 outside the lung mask, max 1 inside (all 0 when no lung is in the box). */
  data: number[];
  imageWidth: number;
  imageHeight: number;
  cropBox: CropBox;
}

/** Bilinear sample (pixel-centre convention, clamped at the edges) of a grid at fractional (x, y). */
function bilinear(g: AttentionGrid, x: number, y: number): number {
  const fx = Math.min(g.width - 1, Math.max(0, x - 0.5));
  const fy = Math.min(g.height - 1, Math.max(0, y - 0.5));
  const x0 = Math.floor(fx);
  const y0 = Math.floor(fy);
  const x1 = Math.min(g.width - 1, x0 + 1);
  const y1 = Math.min(g.height - 1, y0 + 1);
  const tx = fx - x0;
  const ty = fy - y0;
  const at = (xx: number, yy: number): number => g.data[yy * g.width + xx] as number;
  return (at(x0, y0) * (1 - tx) + at(x1, y0) * tx) * (1 - ty) + (at(x0, y1) * (1 - tx) + at(x1, y1) * tx) * ty;
}

/**
 * The attention map over `crop`, resampled onto a grid of at most `maxSize` cells per side over the same box,
 * multiplied by the lung mask (`lung` on the working grid of an `imageWidth` × `imageHeight` source; each cell
 * takes the mask value of the working pixel under its centre) and scaled so its maximum is 1; values rounded
 * to 3 decimals (the map travels in the result record).
 */
export function maskAttention(
  att: AttentionGrid,
  crop: CropBox,
  lung: Mask,
  imageWidth: number,
  imageHeight: number,
  maxSize = 80,
): MaskedAttention {
  const cw = crop.x1 - crop.x0 + 1;
  const ch = crop.y1 - crop.y0 + 1;
  const scale = Math.min(1, maxSize / Math.max(cw, ch));
  const w = Math.max(1, Math.round(cw * scale));
  const h = Math.max(1, Math.round(ch * scale));
  const data = new Array<number>(w * h).fill(0);
  let max = 0;
  for (let v = 0; v < h; v++) {
    for (let u = 0; u < w; u++) {
      const srcX = crop.x0 + ((u + 0.5) * cw) / w; // cell centre, source pixels
      const srcY = crop.y0 + ((v + 0.5) * ch) / h;
      const gx = Math.min(lung.width - 1, Math.floor((srcX * lung.width) / imageWidth));
      const gy = Math.min(lung.height - 1, Math.floor((srcY * lung.height) / imageHeight));
      if (!lung.data[gy * lung.width + gx]) continue;
      const a = bilinear(att, ((u + 0.5) / w) * att.width, ((v + 0.5) / h) * att.height);
      data[v * w + u] = a;
      if (a > max) max = a;
    }
  }
  for (let i = 0; i < data.length; i++) data[i] = max > 0 ? Math.round((1000 * (data[i] as number)) / max) / 1000 : 0;
  return { width: w, height: h, data, imageWidth, imageHeight, cropBox: crop };
}

/** The peak of an attention map over its crop box, in image coordinates (centre of its best cell); null when all ≤ 0. */
export function attentionPeak(
  m: Pick<MaskedAttention, 'width' | 'height' | 'cropBox'> & { data: ArrayLike<number> },
): [number, number] | null {
  let best = 0;
  let bi = -1;
  for (let i = 0; i < m.data.length; i++) {
    if ((m.data[i] as number) > best) {
      best = m.data[i] as number;
      bi = i;
    }
  }
  if (bi < 0) return null;
  const cw = m.cropBox.x1 - m.cropBox.x0 + 1;
  const ch = m.cropBox.y1 - m.cropBox.y0 + 1;
  return [m.cropBox.x0 + (((bi % m.width) + 0.5) * cw) / m.width, m.cropBox.y0 + ((Math.floor(bi / m.width) + 0.5) * ch) / m.height];
}

/** Image coordinates of the centre of working pixel (gx, gy). */
function centreOf(
  gx: number,
  gy: number,
  grid: { width: number; height: number },
  imageWidth: number,
  imageHeight: number,
): [number, number] {
  return [((gx + 0.5) * imageWidth) / grid.width, ((gy + 0.5) * imageHeight) / grid.height];
}

/**
 * The set pixel of `mask` nearest its centroid (image coordinates of its centre), or null: a point that is
 * always inside the mask, even for a crescent-shaped lung.
 */
export function centroid(mask: Mask, imageWidth: number, imageHeight: number): [number, number] | null {
  let sx = 0;
  let sy = 0;
  let n = 0;
  for (let i = 0; i < mask.data.length; i++) {
    if (!mask.data[i]) continue;
    sx += i % mask.width;
    sy += Math.floor(i / mask.width);
    n++;
  }
  if (!n) return null;
  const cx = sx / n;
  const cy = sy / n;
  let best = -1;
  let bd = Infinity;
  for (let i = 0; i < mask.data.length; i++) {
    if (!mask.data[i]) continue;
    const d = ((i % mask.width) - cx) ** 2 + (Math.floor(i / mask.width) - cy) ** 2;
    if (d < bd) {
      bd = d;
      best = i;
    }
  }
  return centreOf(best % mask.width, Math.floor(best / mask.width), mask, imageWidth, imageHeight);
}

export interface Outline {
  /** Closed polygon in image coordinates, flat [x0, y0, …, x0, y0]. */
  polygon: number[];
  /** Pixels of the region on the working grid. */
  pixels: number;
}

/**
 * Outline of the largest 4-connected region of `mask` (on a working grid of a `imageWidth` × `imageHeight`
 * source): its outer boundary traced along pixel edges, simplified (Douglas–Peucker, `tolerance` working px,
 * at most `maxPoints` vertices), mapped to image coordinates. Null when the mask is empty.
 */
export function largestOutline(mask: Mask, imageWidth: number, imageHeight: number, tolerance = 0.75, maxPoints = 64): Outline | null {
  const c = label(mask, 4);
  if (c.n === 0) return null;
  let best = 1;
  for (let l = 2; l <= c.n; l++) if ((c.sizes[l] as number) > (c.sizes[best] as number)) best = l;
  const w = mask.width;
  const h = mask.height;
  const inside = (x: number, y: number): boolean => x >= 0 && y >= 0 && x < w && y < h && c.labels[y * w + x] === best;
  // directed boundary edges, region on the left (y grows downwards: left of a step (dx, dy) is (dy, −dx))
  const out = new Map<number, number[]>(); // start vertex → end vertices
  const key = (x: number, y: number): number => y * (w + 1) + x;
  const add = (x0: number, y0: number, x1: number, y1: number): void => {
    const k = key(x0, y0);
    const list = out.get(k);
    if (list) list.push(key(x1, y1));
    else out.set(k, [key(x1, y1)]);
  };
  let startKey = -1;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      if (!inside(x, y)) continue;
      if (!inside(x, y - 1)) add(x + 1, y, x, y); // top edge, leftwards
      if (!inside(x - 1, y)) add(x, y, x, y + 1); // left edge, downwards
      if (!inside(x, y + 1)) add(x, y + 1, x + 1, y + 1); // bottom edge, rightwards
      if (!inside(x + 1, y)) add(x + 1, y + 1, x + 1, y); // right edge, upwards
      if (startKey < 0) startKey = key(x + 1, y); // the top-left pixel's top edge starts the outer boundary
    }
  }
  const vx = (k: number): number => k % (w + 1);
  const vy = (k: number): number => Math.floor(k / (w + 1));
  const loop: number[] = [startKey];
  let prev = -1;
  let cur = startKey;
  for (let guard = 0; guard < 4 * w * h + 4; guard++) {
    const list = out.get(cur);
    if (!list || list.length === 0) break;
    let pick = 0;
    if (list.length > 1 && prev >= 0) {
      // saddle: the boundary runs counter-clockwise on screen (region on the left), so the left turn hugs the
      // region and keeps diagonal neighbours apart, as 4-connectivity does
      const dx = vx(cur) - vx(prev);
      const dy = vy(cur) - vy(prev);
      let bestScore = Infinity;
      list.forEach((nk, j) => {
        const ex = vx(nk) - vx(cur);
        const ey = vy(nk) - vy(cur);
        const cross = dx * ey - dy * ex; // < 0: a left turn on screen (y down)
        const score = cross < 0 ? 0 : cross === 0 ? 1 : 2;
        if (score < bestScore) {
          bestScore = score;
          pick = j;
        }
      });
    }
    const next = list.splice(pick, 1)[0] as number;
    prev = cur;
    cur = next;
    if (cur === startKey) break;
    loop.push(cur);
  }
  const pts = loop.map((k) => [vx(k), vy(k)] as [number, number]);
  const simple = simplifyClosed(pts, tolerance, maxPoints);
  const polygon: number[] = [];
  for (const [x, y] of simple) polygon.push((x * imageWidth) / w, (y * imageHeight) / h);
  polygon.push(polygon[0] as number, polygon[1] as number);
  return { polygon, pixels: c.sizes[best] as number };
}

function perpDistance(p: [number, number], a: [number, number], b: [number, number]): number {
  const dx = b[0] - a[0];
  const dy = b[1] - a[1];
  const len = Math.hypot(dx, dy);
  if (len === 0) return Math.hypot(p[0] - a[0], p[1] - a[1]);
  return Math.abs(dy * p[0] - dx * p[1] + b[0] * a[1] - b[1] * a[0]) / len;
}

function douglasPeucker(pts: [number, number][], tol: number): [number, number][] {
  if (pts.length < 3) return pts;
  const keep = new Uint8Array(pts.length);
  keep[0] = 1;
  keep[pts.length - 1] = 1;
  const stack: [number, number][] = [[0, pts.length - 1]];
  while (stack.length) {
    const [a, b] = stack.pop() as [number, number];
    let worst = -1;
    let wd = 0;
    for (let i = a + 1; i < b; i++) {
      const d = perpDistance(pts[i] as [number, number], pts[a] as [number, number], pts[b] as [number, number]);
      if (d > wd) {
        wd = d;
        worst = i;
      }
    }
    if (worst > 0 && wd > tol) {
      keep[worst] = 1;
      stack.push([a, worst], [worst, b]);
    }
  }
  return pts.filter((_, i) => keep[i]);
}

/** Simplify a closed ring (without its repeated first point): split at the point farthest from the first. */
function simplifyClosed(pts: [number, number][], tol: number, maxPoints: number): [number, number][] {
  if (pts.length <= 4) return pts;
  let far = 0;
  let fd = -1;
  const p0 = pts[0] as [number, number];
  pts.forEach((p, i) => {
    const d = Math.hypot(p[0] - p0[0], p[1] - p0[1]);
    if (d > fd) {
      fd = d;
      far = i;
    }
  });
  let t = tol;
  for (;;) {
    const a = douglasPeucker(pts.slice(0, far + 1), t);
    const b = douglasPeucker([...pts.slice(far), p0], t);
    const ring = [...a, ...b.slice(1, -1)];
    if (ring.length <= maxPoints || t > 64) return ring;
    t *= 1.5;
  }
}
