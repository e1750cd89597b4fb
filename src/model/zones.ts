/**
 * Upper, middle and lower zones of a lung: thirds of that lung's craniocaudal extent (twin: training/pattern.py
 * `lung_zones`). One rule for every zone figure of the node (pattern features, zone scores).
 *
 * Per lung (patient side), over the series' slices in scored order (superior first):
 *   extent   = from the first to the last slice whose lung area on that side is at least ZONE_MIN_FRACTION of
 *              that lung's largest slice area (a stray speck of "lung" below the diaphragm does not stretch it);
 *   u        = distance of the slice from the first slice of the extent along the series, L = the extent's length
 *              (slice positions in mm when every slice has one, else slice indices);
 *   zone     = upper when 3u < L, middle when 3u < 2L, lower otherwise; slices above the extent are upper, below
 *              it lower; an extent of one slice is middle.
 * Why thirds and not landmarks (carina, hila): the node segments no airways or hila, thirds are reproducible from
 * the lung mask alone and are what several CT severity scores use when lobes are not segmented.
 */
import { volumeMeasure } from './opacity.js';

export type Zone = 'upper' | 'middle' | 'lower';
export const ZONES: readonly Zone[] = ['upper', 'middle', 'lower'];

/** A slice counts toward a lung's extent when its lung area on that side is at least this share of the largest. */
export const ZONE_MIN_FRACTION = 0.01;

/**
 * Zone of each slice for one lung. `areas`: that lung's area per slice (any unit), scored order (superior first);
 * `positions`: mm along the slice normal per slice (null when unknown: indices are used for all slices).
 * A lung with no area anywhere gets 'middle' for every slice.
 */
export function lungZones(areas: readonly number[], positions: readonly (number | null)[]): Zone[] {
  const n = areas.length;
  let max = 0;
  for (const a of areas) if (a > max) max = a;
  if (!(max > 0)) return new Array<Zone>(n).fill('middle');
  const min = ZONE_MIN_FRACTION * max;
  let first = -1;
  let last = -1;
  for (let i = 0; i < n; i++) {
    if ((areas[i] as number) >= min) {
      if (first < 0) first = i;
      last = i;
    }
  }
  const usePos = positions.length === n && positions.every((p) => typeof p === 'number' && Number.isFinite(p));
  const coord = (i: number): number => (usePos ? (positions[i] as number) : i);
  const top = coord(first);
  const length = Math.abs(coord(last) - top);
  const dir = coord(last) >= top ? 1 : -1;
  const out: Zone[] = [];
  for (let i = 0; i < n; i++) {
    if (i < first) out.push('upper');
    else if (i > last) out.push('lower');
    else if (length === 0) out.push('middle');
    else {
      const u = (coord(i) - top) * dir;
      out.push(3 * u < length ? 'upper' : 3 * u < 2 * length ? 'middle' : 'lower');
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// The zone score (issue 23): per zone the extent bin radiologists use for the lobar CT severity score (Pan et al.,
// Radiology 2020: 0 none, 1 < 5 %, 2 5–25 %, 3 26–49 %, 4 50–75 %, 5 > 75 % of the zone's lung volume opacified),
// summed over the six zones: 0–30. A ZONE score: the lobar score needs lobes, which the node does not segment.
// The zones are lungZones' (above), so the score and the pattern features share one rule.

export const ZONE_NAMES = ZONES;
export type ZoneName = Zone;
export type LungSide = 'right' | 'left';

/** Areas (mm²) of one lung region on one slice. */
export interface ZoneAreas {
  lungMm2: number;
  opacityMm2: number;
  highMm2: number;
}

export interface ZoneSliceInput {
  /** mm along the slice normal, or null. */
  position: number | null;
  /** Areas per image side as stored (image left = patient right when the rows run along +x). */
  imageLeft: ZoneAreas;
  imageRight: ZoneAreas;
}

export interface ZoneMeasure {
  lungMl: number;
  opacityMl: number;
  highOpacityMl: number;
  /** opacityMl / lungMl × 100 (0 without lung). */
  percentOpacity: number;
  percentHighOpacity: number;
  /** Pan et al. extent bin of percentOpacity, 0–5. */
  score: number;
  /** Slices of this zone that hold this lung (scored order, 0 = most superior): first and last index (−1: none), count. */
  firstSlice: number;
  lastSlice: number;
  slices: number;
}

export type LungZones = Record<Zone, ZoneMeasure>;

export interface SeriesZones {
  /** Rule id: thirds of each lung's craniocaudal extent (lungZones). */
  rule: 'lung-thirds-v1';
  right: LungZones;
  left: LungZones;
  /** Sum of the six zone scores, 0–30. */
  score: number;
}

/** Pan et al. extent bin (0 none, 1 < 5 %, 2 5–25 %, 3 26–49 %, 4 50–75 %, 5 > 75 %) of a percentage. */
export function extentScore(percent: number, opacityMl = percent): number {
  if (!(percent > 0) || !(opacityMl > 0)) return 0;
  if (percent < 5) return 1;
  if (percent <= 25) return 2;
  if (percent < 50) return 3;
  if (percent <= 75) return 4;
  return 5;
}

function zoneMeasure(areas: ZoneAreas[], idx: number[], spacingMm: number): ZoneMeasure {
  const m = volumeMeasure(areas, spacingMm);
  const opacityMm2 = areas.reduce((t, a) => t + a.opacityMm2, 0);
  return {
    ...m,
    score: extentScore(m.percentOpacity, opacityMm2),
    firstSlice: idx.length ? (idx[0] as number) : -1,
    lastSlice: idx.length ? (idx[idx.length - 1] as number) : -1,
    slices: idx.length,
  };
}

/**
 * The six zones of a series from its slices' per-side areas (scored order, superior first), the slab each slice
 * stands for (`spacingMm`, as the series volumes use) and ImageOrientationPatient (which image side is the
 * patient's right; rows along +x or unknown: image left is the patient's right). Every slice is in one zone of
 * each lung, so the zones' volumes add up to the lung's.
 */
export function seriesZones(
  slices: readonly ZoneSliceInput[],
  spacingMm: number,
  imageOrientationPatient: readonly number[] | null,
): SeriesZones {
  const imageLeftIsRight = !imageOrientationPatient || (imageOrientationPatient[0] as number) >= 0;
  const positions = slices.map((s) => s.position);
  const lung = (side: LungSide): LungZones => {
    const areas = slices.map((s) => ((side === 'right') === imageLeftIsRight ? s.imageLeft : s.imageRight));
    const zone = lungZones(
      areas.map((a) => a.lungMm2),
      positions,
    );
    const out = {} as LungZones;
    for (const name of ZONES) {
      const all = zone.flatMap((z, i) => (z === name ? [i] : []));
      out[name] = zoneMeasure(
        all.map((i) => areas[i] as ZoneAreas),
        all.filter((i) => (areas[i] as ZoneAreas).lungMm2 > 0),
        spacingMm,
      );
    }
    return out;
  };
  const right = lung('right');
  const left = lung('left');
  const score = ZONES.reduce((s, z) => s + right[z].score + left[z].score, 0);
  return { rule: 'lung-thirds-v1', right, left, score };
}
