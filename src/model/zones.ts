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
