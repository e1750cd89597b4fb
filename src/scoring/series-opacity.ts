/**
 * Series lung volumes and opacity from the per-slice areas: each slice stands for the slab between it and
 * its neighbours (the median spacing of the scored slices' positions), left and right are the patient's
 * (from ImageOrientationPatient: with the row direction along +x, image left is the patient's right).
 */
import type { ModelMetadata } from '../model/metadata.js';
import { groundGlassOpenMm, type RegionAreas, volumeMeasure } from '../model/opacity.js';
import type { SliceLungs } from './slice-preparer.js';

export interface OpacityMeasure {
  lungMl: number;
  opacityMl: number;
  highOpacityMl: number;
  percentOpacity: number;
  percentHighOpacity: number;
}

export interface SeriesOpacityResult {
  method: string;
  opacityHu: [number, number];
  highOpacityHu: [number, number];
  /** Slab thickness each slice stands for (mm). */
  sliceSpacingMm: number;
  /** Median SliceThickness of the slices (mm), when the headers carry it. */
  sliceThicknessMm?: number;
  /** Ground-glass opening radius at that thickness (mm): wider on thick slices (partial volume of vessels). */
  groundGlassOpenMm: number;
  total: OpacityMeasure;
  left: OpacityMeasure;
  right: OpacityMeasure;
}

/** Median of the known values, or null. */
export function median(values: readonly (number | null | undefined)[]): number | null {
  const v = values.filter((x): x is number => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const m = v.length >> 1;
  return v.length % 2 ? (v[m] as number) : ((v[m - 1] as number) + (v[m] as number)) / 2;
}

/** Median spacing of consecutive positions (mm); 1 when unknown (volumes then scale, percentages stay right). */
export function sliceSpacing(positions: readonly (number | null)[]): number {
  const p = positions.filter((x): x is number => x !== null);
  const d: number[] = [];
  for (let i = 1; i < p.length; i++) {
    const g = Math.abs((p[i] as number) - (p[i - 1] as number));
    if (g > 1e-3) d.push(g);
  }
  return median(d) ?? 1;
}

function measure(areas: readonly RegionAreas[], spacingMm: number): OpacityMeasure {
  return volumeMeasure(areas, spacingMm);
}

export function seriesOpacity(
  slices: readonly { lungs: SliceLungs; position: number | null; thicknessMm?: number | null }[],
  imageOrientationPatient: readonly number[] | null,
  meta: Pick<ModelMetadata, 'quantification'>,
): SeriesOpacityResult {
  const q = meta.quantification;
  if (!q) throw new Error('seriesOpacity: the model has no quantification');
  const spacing = sliceSpacing(slices.map((s) => s.position));
  const thickness = median(slices.map((s) => s.thicknessMm));
  const imageLeftIsRight = !imageOrientationPatient || (imageOrientationPatient[0] as number) >= 0;
  const left = slices.map((s) => (imageLeftIsRight ? s.lungs.imageRight : s.lungs.imageLeft));
  const right = slices.map((s) => (imageLeftIsRight ? s.lungs.imageLeft : s.lungs.imageRight));
  return {
    method: q.method,
    opacityHu: [q.opacityHu[0], q.highOpacityHu[1]],
    highOpacityHu: [q.highOpacityHu[0], q.highOpacityHu[1]],
    sliceSpacingMm: +spacing.toFixed(3),
    ...(thickness !== null ? { sliceThicknessMm: +thickness.toFixed(3) } : {}),
    groundGlassOpenMm: +groundGlassOpenMm(q, thickness).toFixed(3),
    total: measure(
      slices.map((s) => s.lungs.total),
      spacing,
    ),
    left: measure(left, spacing),
    right: measure(right, spacing),
  };
}
