/**
 * Opacity quantification from HU inside the lung mask: TypeScript twin of training/lung.py `quantify` and
 * `analyse_slice` (the documentation of every step is there). Parameters from the model metadata's
 * `quantification` block. Ground glass = HU in [opacityHu[0], highOpacityHu[0]], consolidation ("high
 * opacity") = HU in (highOpacityHu[0], highOpacityHu[1]]; vessels removed by openings and a halo.
 */
import { z } from 'zod';
import { cropGrid, cropMask, pasteMask, segmentLungs, toWorkGrid, type LungSegmentation, type LungSpec, type WorkGrid } from './lung.js';
import { and, andNot, bbox, dilate, emptyMask, erode, opening, or, removeSmall, type Mask } from './morphology.js';

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
 * (+ a margin): every step is local, and outside the lung every mask is empty.
 */
export function quantify(g: WorkGrid, lung: Mask, spec: QuantificationSpec, thicknessMm?: number | null): OpacityMasks {
  const b = bbox(lung);
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
  const sub = cropGrid(g, win);
  const m = quantifyWindow(sub, cropMask(lung, win), spec, ggoOpen);
  return { opacity: pasteMask(m.opacity, win, g.width, g.height), high: pasteMask(m.high, win, g.width, g.height) };
}

function quantifyWindow(g: WorkGrid, lung: Mask, spec: QuantificationSpec, ggoOpenMm: number): OpacityMasks {
  const { width: w, height: h } = g;
  const rPx = Math.sqrt(g.pxMm[0] * g.pxMm[1]);
  const pxArea = g.pxMm[0] * g.pxMm[1];
  const [lo] = spec.opacityHu;
  const [hlo, hhi] = spec.highOpacityHu;
  const le = erode(lung, spec.erodeMm / rPx);
  const dense = emptyMask(w, h);
  const denseAny = emptyMask(w, h);
  const ggoCand = emptyMask(w, h);
  for (let i = 0; i < dense.data.length; i++) {
    if (!le.data[i]) continue;
    const v = g.hu[i] as number;
    if (v > hlo) {
      denseAny.data[i] = 1;
      if (v <= hhi) dense.data[i] = 1;
    } else if (v >= lo) {
      ggoCand.data[i] = 1;
    }
  }
  const cons = opening(dense, spec.consolidationOpenMm / rPx);
  const vessel = dilate(andNot(denseAny, cons), spec.vesselHaloMm / rPx);
  const ggo = opening(andNot(ggoCand, vessel), ggoOpenMm / rPx);
  const opacity = removeSmall(or(ggo, cons), spec.minLesionMm2 / pxArea);
  return { opacity, high: and(cons, opacity) };
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
