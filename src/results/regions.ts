/**
 * Where a key slice's finding is, as SCOORD graphic data in the image coordinates of that CT slice
 * (column, row; (0,0) is the top-left corner of the top-left pixel, so pixel (c, r) has its centre
 * at (c + 0.5, r + 0.5)):
 *
 * 1. the outline of the opacity region the model work found (`region.polygon`, closed) → POLYLINE;
 * 2. else the finding's peak (`region.peak`: the attention peak inside the lungs) → POINT;
 * 3. else the peak of the slice's attention map (zero outside the lungs), mapped through its crop
 *    box onto the slice → POINT;
 * 4. else the centre of the image → POINT (there is always a SCOORD).
 *
 * And the image region the model analysed on a slice (the attention map's crop box, else the whole
 * image) as a closed rectangle.
 */
import { attentionPeak } from '../model/regions.js';
import type { ResultKeySlice } from '../contracts/result-record.js';
import type { GraphicType } from './content.js';

export interface SliceGeometry {
  columns: number;
  rows: number;
}

export interface KeyRegionGraphic {
  graphicType: Extract<GraphicType, 'POINT' | 'POLYLINE'>;
  points: number[];
  /** Where it came from, for the report's text. */
  source: 'opacity outline' | 'finding peak' | 'attention peak' | 'image centre';
  /** mm² inside the outline (POLYLINE from the model work only). */
  areaMm2?: number;
}

const inside = (g: SliceGeometry, x: number, y: number): boolean => x >= 0 && y >= 0 && x <= g.columns && y <= g.rows;

/** The SCOORD of a key slice (see the module comment for the order of preference). */
export function keyRegionGraphic(key: ResultKeySlice, geometry: SliceGeometry): KeyRegionGraphic {
  const poly = key.region?.polygon;
  if (poly && poly.length >= 8 && poly.length % 2 === 0 && poly.every(Number.isFinite)) {
    const closed =
      poly[0] === poly[poly.length - 2] && poly[1] === poly[poly.length - 1] ? poly : [...poly, poly[0] as number, poly[1] as number];
    return {
      graphicType: 'POLYLINE',
      points: closed,
      source: 'opacity outline',
      ...(key.region?.polygonAreaMm2 !== undefined ? { areaMm2: key.region.polygonAreaMm2 } : {}),
    };
  }
  const peak = key.region?.peak;
  if (peak && inside(geometry, peak[0], peak[1])) return { graphicType: 'POINT', points: [peak[0], peak[1]], source: 'finding peak' };
  const att =
    key.attention &&
    key.attention.imageWidth === geometry.columns &&
    key.attention.imageHeight === geometry.rows &&
    key.attention.data.length >= key.attention.width * key.attention.height
      ? attentionPeak(key.attention)
      : null;
  if (att) return { graphicType: 'POINT', points: att, source: 'attention peak' };
  return { graphicType: 'POINT', points: [geometry.columns / 2, geometry.rows / 2], source: 'image centre' };
}

/** The region of the slice the model analysed (its crop box, else the whole image), as a closed 5-point POLYLINE. */
export function analysedRegion(key: ResultKeySlice, geometry: SliceGeometry): number[] {
  const att = key.attention;
  const box =
    att && att.imageWidth === geometry.columns && att.imageHeight === geometry.rows
      ? { x0: att.cropBox.x0, y0: att.cropBox.y0, x1: att.cropBox.x1 + 1, y1: att.cropBox.y1 + 1 }
      : { x0: 0, y0: 0, x1: geometry.columns, y1: geometry.rows };
  return [box.x0, box.y0, box.x1, box.y0, box.x1, box.y1, box.x0, box.y1, box.x0, box.y0];
}
