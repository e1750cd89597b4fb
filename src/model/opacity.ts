/**
 * Opacity quantification from HU inside the lung mask: TypeScript twin of training/lung.py `quantify` and
 * `analyse_slice` (the documentation of every step is there). Parameters from the model metadata's
 * `quantification` block. Ground glass = HU in [opacityHu[0], highOpacityHu[0]], consolidation ("high
 * opacity") = HU in (highOpacityHu[0], highOpacityHu[1]]; vessels removed by openings and a halo.
 */
import { z } from 'zod';
import { segmentLungs, toWorkGrid, type LungSegmentation, type LungSpec, type WorkGrid } from './lung.js';
import { diskHalfWidths, emptyMask, type Box, type Mask } from './morphology.js';
import {
  dilateRuns,
  erodeRuns,
  intersectRuns,
  paintRuns,
  removeSmallRuns,
  Runs,
  runsBox,
  runsOf,
  subtractRuns,
  unionRuns,
} from './runs.js';

export const quantificationSpecSchema = z.object({
  method: z.literal('hu-opacity-v1'),
  opacityHu: z.tuple([z.number(), z.number()]),
  highOpacityHu: z.tuple([z.number(), z.number()]),
  erodeMm: z.number().min(0),
  consolidationOpenMm: z.number().min(0),
  vesselHaloMm: z.number().min(0),
  groundGlassOpenMm: z.number().min(0),
  minLesionMm2: z.number().min(0),
  /**
   * Thick slices average vessels into ground-glass HU (partial volume): above referenceMm of SliceThickness the
   * ground-glass opening widens by groundGlassOpenMmPerMm per mm, up to maxGroundGlassOpenMm. Absent (model
   * 2.0.0) or no SliceThickness: no widening.
   */
  thickSlice: z
    .object({
      referenceMm: z.number().positive(),
      groundGlassOpenMmPerMm: z.number().min(0),
      maxGroundGlassOpenMm: z.number().min(0),
    })
    .optional(),
});
export type QuantificationSpec = z.infer<typeof quantificationSpecSchema>;

/**
 * Above this SliceThickness (mm) reports say that partial volume makes the opacity measurement coarser than on the
 * thin slices it was tuned on (the SR, `mlsam score`).
 */
export const THICK_SLICE_NOTE_MM = 3;

/** The ground-glass opening radius (mm) for a slice of this thickness (twin: lung.py ground_glass_open_mm). */
export function groundGlassOpenMm(spec: QuantificationSpec, thicknessMm?: number | null): number {
  const base = spec.groundGlassOpenMm;
  const t = spec.thickSlice;
  if (!t || thicknessMm === undefined || thicknessMm === null || !(thicknessMm > 0)) return base;
  const extra = t.groundGlassOpenMmPerMm * Math.max(0, thicknessMm - t.referenceMm);
  return Math.min(Math.max(base, t.maxGroundGlassOpenMm), base + extra);
}

export interface OpacityMasks {
  /** Ground glass + consolidation. */
  opacity: Mask;
  /** Consolidation within `opacity`. */
  high: Mask;
}

/**
 * Opacity masks on the working grid. They lie inside the lung mask, so the work is done in its bounding box
 * (+ a margin; every step is local, and outside the lung every mask is empty), on row runs (runs.ts): pixel
 * for pixel the byte-mask steps of the twin on its crop, at a cost in runs rather than pixels.
 */
export function quantify(g: WorkGrid, lung: Mask, spec: QuantificationSpec, thicknessMm?: number | null): OpacityMasks {
  const lr = runsOf(lung);
  const b = runsBox(lr);
  if (!b) return { opacity: emptyMask(g.width, g.height), high: emptyMask(g.width, g.height) };
  const rPx = Math.sqrt(g.pxMm[0] * g.pxMm[1]);
  const ggoOpen = groundGlassOpenMm(spec, thicknessMm);
  const margin = Math.floor(Math.max(spec.erodeMm, spec.consolidationOpenMm, spec.vesselHaloMm, ggoOpen) / rPx + 1e-9) + 2;
  const win = {
    x0: Math.max(0, b.x0 - margin),
    y0: Math.max(0, b.y0 - margin),
    x1: Math.min(g.width - 1, b.x1 + margin),
    y1: Math.min(g.height - 1, b.y1 + margin),
  };
  const m = quantifyWindow(g, lr, win, spec, ggoOpen);
  return { opacity: paintRuns(m.opacity), high: paintRuns(m.high) };
}

/** The three HU classes of the eroded lung's pixels, as runs, in one pass. */
function classify(g: WorkGrid, le: Runs, lo: number, hlo: number, hhi: number): { dense: Runs; denseAny: Runs; ggoCand: Runs } {
  const { width: w, height: h, hu } = g;
  const dense = new Runs(w, h, le.n * 2);
  const denseAny = new Runs(w, h, le.n * 2);
  const ggoCand = new Runs(w, h, le.n * 2);
  for (let y = 0; y < h; y++) {
    const fd = dense.n;
    const fa = denseAny.n;
    const fg = ggoCand.n;
    dense.rs[y] = fd;
    denseAny.rs[y] = fa;
    ggoCand.rs[y] = fg;
    const base = y * w;
    for (let k = le.rs[y] as number; k < (le.rs[y + 1] as number); k++) {
      const e = le.e[k] as number;
      // start of the open run of each class, −1 when none is open
      let sd = -1;
      let sa = -1;
      let sg = -1;
      for (let x = le.s[k] as number; x < e; x++) {
        const v = hu[base + x] as number;
        let d = false;
        let a = false;
        let c = false;
        if (v > hlo) {
          a = true;
          if (v <= hhi) d = true;
        } else if (v >= lo) {
          c = true;
        }
        if (d) {
          if (sd < 0) sd = x;
        } else if (sd >= 0) {
          dense.push(fd, sd, x);
          sd = -1;
        }
        if (a) {
          if (sa < 0) sa = x;
        } else if (sa >= 0) {
          denseAny.push(fa, sa, x);
          sa = -1;
        }
        if (c) {
          if (sg < 0) sg = x;
        } else if (sg >= 0) {
          ggoCand.push(fg, sg, x);
          sg = -1;
        }
      }
      if (sd >= 0) dense.push(fd, sd, e);
      if (sa >= 0) denseAny.push(fa, sa, e);
      if (sg >= 0) ggoCand.push(fg, sg, e);
    }
  }
  dense.rs[h] = dense.n;
  denseAny.rs[h] = denseAny.n;
  ggoCand.rs[h] = ggoCand.n;
  return { dense, denseAny, ggoCand };
}

/** The twin's steps on its crop `win` (morphology clipped to it). */
function quantifyWindow(g: WorkGrid, lung: Runs, win: Box, spec: QuantificationSpec, ggoOpenMm: number): { opacity: Runs; high: Runs } {
  const rPx = Math.sqrt(g.pxMm[0] * g.pxMm[1]);
  const pxArea = g.pxMm[0] * g.pxMm[1];
  const [lo] = spec.opacityHu;
  const [hlo, hhi] = spec.highOpacityHu;
  const le = erodeRuns(lung, diskHalfWidths(spec.erodeMm / rPx), win);
  const { dense, denseAny, ggoCand } = classify(g, le, lo, hlo, hhi);
  const open = (m: Runs, r: number): Runs => {
    const hws = diskHalfWidths(r);
    return dilateRuns(erodeRuns(m, hws, win), hws, win);
  };
  const cons = open(dense, spec.consolidationOpenMm / rPx);
  const vessel = dilateRuns(subtractRuns(denseAny, cons), diskHalfWidths(spec.vesselHaloMm / rPx), win);
  const ggo = open(subtractRuns(ggoCand, vessel), ggoOpenMm / rPx);
  const opacity = removeSmallRuns(unionRuns(ggo, cons), spec.minLesionMm2 / pxArea);
  return { opacity, high: intersectRuns(cons, opacity) };
}

export interface RegionAreas {
  lungMm2: number;
  opacityMm2: number;
  highMm2: number;
}

/** Volumes (mL, 2 decimals) and percentages of the lung (3 decimals) of a stack of slices' areas. */
export interface VolumeMeasure {
  lungMl: number;
  opacityMl: number;
  highOpacityMl: number;
  percentOpacity: number;
  percentHighOpacity: number;
}

/**
 * Sums slices' areas into volumes, each slice standing for a slab of `spacingMm`: the one rule the series
 * opacity, the zones and so the SR, the SEG check and the zone score share.
 */
export function volumeMeasure(areas: readonly RegionAreas[], spacingMm: number): VolumeMeasure {
  let lung = 0;
  let op = 0;
  let high = 0;
  for (const a of areas) {
    lung += a.lungMm2;
    op += a.opacityMm2;
    high += a.highMm2;
  }
  const ml = (mm2: number): number => +((mm2 * spacingMm) / 1000).toFixed(2);
  const pct = (x: number): number => (lung > 0 ? +Math.min(100, (100 * x) / lung).toFixed(3) : 0);
  return { lungMl: ml(lung), opacityMl: ml(op), highOpacityMl: ml(high), percentOpacity: pct(op), percentHighOpacity: pct(high) };
}

export interface SliceAnalysis {
  grid: WorkGrid;
  segmentation: LungSegmentation;
  masks: OpacityMasks;
  /** Areas on this slice: both lungs, image-left side, image-right side. */
  total: RegionAreas;
  imageLeft: RegionAreas;
  imageRight: RegionAreas;
}

/**
 * Lung mask, opacity masks and areas of one HU slice (spacing = PixelSpacing: [row mm, column mm];
 * thicknessMm = SliceThickness, when known).
 */
export function analyseSlice(
  hu: ArrayLike<number>,
  width: number,
  height: number,
  spacing: readonly [number, number],
  lungs: LungSpec,
  quant: QuantificationSpec,
  thicknessMm?: number | null,
): SliceAnalysis {
  const grid = toWorkGrid(hu, width, height, spacing, lungs.workMm);
  const segmentation = segmentLungs(grid, lungs);
  const masks = quantify(grid, segmentation.lung, quant, thicknessMm);
  const a = grid.pxMm[0] * grid.pxMm[1];
  const acc = (): RegionAreas => ({ lungMm2: 0, opacityMm2: 0, highMm2: 0 });
  const total = acc();
  const sides = [acc(), acc()] as const;
  const { lung, side } = segmentation;
  for (let i = 0; i < lung.data.length; i++) {
    if (!lung.data[i]) continue;
    const s = sides[side[i] === 0 ? 0 : 1];
    total.lungMm2 += a;
    s.lungMm2 += a;
    if (masks.opacity.data[i]) {
      total.opacityMm2 += a;
      s.opacityMm2 += a;
    }
    if (masks.high.data[i]) {
      total.highMm2 += a;
      s.highMm2 += a;
    }
  }
  return { grid, segmentation, masks, total, imageLeft: sides[0], imageRight: sides[1] };
}
