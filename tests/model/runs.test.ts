/**
 * Row-run masks (src/model/runs.ts) give pixel for pixel the masks of the byte-mask morphology they replace in the
 * lung and opacity passes (src/model/morphology.ts, itself checked against the shift-OR / shift-AND definition in
 * lung.test.ts): dilation, erosion (whole image and clipped to a window, as the twin's crops), hole filling with
 * and without a size limit, labelling, small-component removal, union / intersection / difference. Seeded random
 * masks of several densities, with holes and touching edges.
 */
import { describe, expect, it } from 'vitest';
import {
  and,
  andNot,
  dilate,
  diskHalfWidths,
  erode,
  fillHoles,
  label,
  or,
  removeSmall,
  type Box,
  type Mask,
} from '../../src/model/morphology.js';
import {
  countRuns,
  dilateRuns,
  erodeRuns,
  fillHolesRuns,
  intersectRuns,
  labelRuns,
  paintRuns,
  removeSmallRuns,
  runsBox,
  runsOf,
  subtractRuns,
  unionRuns,
} from '../../src/model/runs.js';
import { bbox } from '../../src/model/morphology.js';

function rng(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s / 2147483648;
  };
}

/** A random mask: blobs (discs) of set pixels with random holes punched, plus salt. */
function randomMask(w: number, h: number, seed: number, density: number): Mask {
  const rnd = rng(seed);
  const data = new Uint8Array(w * h);
  const disc = (cx: number, cy: number, r: number, v: number) => {
    for (let y = Math.max(0, Math.floor(cy - r)); y <= Math.min(h - 1, Math.ceil(cy + r)); y++)
      for (let x = Math.max(0, Math.floor(cx - r)); x <= Math.min(w - 1, Math.ceil(cx + r)); x++)
        if ((x - cx) ** 2 + (y - cy) ** 2 <= r * r) data[y * w + x] = v;
  };
  for (let k = 0; k < 6; k++) disc(rnd() * w, rnd() * h, 2 + rnd() * (w / 4), 1);
  for (let k = 0; k < 12; k++) disc(rnd() * w, rnd() * h, rnd() * 3, 0);
  for (let i = 0; i < data.length; i++) if (rnd() < density) data[i] = data[i] ? (rnd() < 0.5 ? 0 : 1) : 1;
  return { width: w, height: h, data };
}

/** The box of a mask cropped out (as lung.ts / opacity.ts crop their windows) and placed back. */
function crop(m: Mask, b: Box): Mask {
  const cw = b.x1 - b.x0 + 1;
  const ch = b.y1 - b.y0 + 1;
  const data = new Uint8Array(cw * ch);
  for (let y = 0; y < ch; y++) for (let x = 0; x < cw; x++) data[y * cw + x] = m.data[(y + b.y0) * m.width + x + b.x0] as number;
  return { width: cw, height: ch, data };
}
function paste(m: Mask, b: Box, w: number, h: number): Uint8Array {
  const out = new Uint8Array(w * h);
  for (let y = 0; y < m.height; y++) for (let x = 0; x < m.width; x++) out[(y + b.y0) * w + x + b.x0] = m.data[y * m.width + x] as number;
  return out;
}

/** First index where the two arrays differ, −1 when equal (toEqual on every typed array is slow). */
function diffAt(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return -2;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

const CASES = Array.from({ length: 24 }, (_, i) => ({
  w: 20 + ((i * 7) % 31),
  h: 15 + ((i * 11) % 29),
  seed: 17 + i,
  density: [0.02, 0.1, 0.3][i % 3] as number,
}));

describe('row runs = byte-mask morphology', () => {
  it('dilation and erosion by discs, on the whole image and clipped to a window', () => {
    for (const c of CASES) {
      const m = randomMask(c.w, c.h, c.seed, c.density);
      const whole: Box = { x0: 0, y0: 0, x1: c.w - 1, y1: c.h - 1 };
      const win: Box = { x0: 2, y0: 3, x1: c.w - 4, y1: c.h - 2 };
      const inWin = paste(crop(m, win), win, c.w, c.h);
      for (const r of [0.5, 1, 1.44, 2.4, 3.2, 0.998, 5]) {
        const hws = diskHalfWidths(r);
        expect(diffAt(paintRuns(dilateRuns(runsOf(m), hws, whole)).data, dilate(m, r).data)).toBe(-1);
        expect(diffAt(paintRuns(erodeRuns(runsOf(m), hws, whole)).data, erode(m, r).data)).toBe(-1);
        const wm = runsOf({ width: c.w, height: c.h, data: inWin });
        expect(diffAt(paintRuns(dilateRuns(wm, hws, win)).data, paste(dilate(crop(m, win), r), win, c.w, c.h))).toBe(-1);
        expect(diffAt(paintRuns(erodeRuns(wm, hws, win)).data, paste(erode(crop(m, win), r), win, c.w, c.h))).toBe(-1);
      }
    }
  });

  it('fills holes (all, or up to a size) as fillHoles does, on the image and in a window', () => {
    for (const c of CASES) {
      const m = randomMask(c.w, c.h, c.seed, c.density);
      const whole: Box = { x0: 0, y0: 0, x1: c.w - 1, y1: c.h - 1 };
      expect(diffAt(paintRuns(fillHolesRuns(runsOf(m), whole)).data, fillHoles(m).data)).toBe(-1);
      for (const max of [0, 1, 3, 7.5, 40])
        expect(diffAt(paintRuns(fillHolesRuns(runsOf(m), whole, max)).data, fillHoles(m, max).data)).toBe(-1);
      const win: Box = { x0: 1, y0: 2, x1: c.w - 3, y1: c.h - 1 };
      const cm = crop(m, win);
      const wm = runsOf({ width: c.w, height: c.h, data: paste(cm, win, c.w, c.h) });
      expect(diffAt(paintRuns(fillHolesRuns(wm, win, 5)).data, paste(fillHoles(cm, 5), win, c.w, c.h))).toBe(-1);
      expect(diffAt(paintRuns(fillHolesRuns(wm, win)).data, paste(fillHoles(cm), win, c.w, c.h))).toBe(-1);
    }
  });

  it('labels in raster order with the same sizes, removes small components, and combines masks', () => {
    for (const c of CASES) {
      const m = randomMask(c.w, c.h, c.seed, c.density);
      const o = randomMask(c.w, c.h, c.seed + 100, c.density);
      const r = runsOf(m);
      for (const conn of [4, 8] as const) {
        const ref = label(m, conn);
        const got = labelRuns(r, conn);
        expect(got.n).toBe(ref.n);
        expect(Array.from(got.sizes)).toEqual(Array.from(ref.sizes));
        const px = new Int32Array(c.w * c.h);
        for (let y = 0; y < c.h; y++)
          for (let k = r.rs[y]!; k < r.rs[y + 1]!; k++) px.fill(got.labelOf[k]!, y * c.w + r.s[k]!, y * c.w + r.e[k]!);
        expect(diffAt(px, ref.labels)).toBe(-1);
      }
      for (const min of [1, 4, 12.8]) expect(diffAt(paintRuns(removeSmallRuns(r, min)).data, removeSmall(m, min).data)).toBe(-1);
      expect(diffAt(paintRuns(unionRuns(r, runsOf(o))).data, or(m, o).data)).toBe(-1);
      expect(diffAt(paintRuns(intersectRuns(r, runsOf(o))).data, and(m, o).data)).toBe(-1);
      expect(diffAt(paintRuns(subtractRuns(r, runsOf(o))).data, andNot(m, o).data)).toBe(-1);
      expect(countRuns(r)).toBe(m.data.reduce((a, b) => a + b, 0));
      expect(runsBox(r)).toEqual(bbox(m));
    }
  });
});
