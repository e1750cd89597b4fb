/**
 * Slice selection for scoring (DESIGN "Slice selection and scoring"): keep single-frame CT Image
 * Storage instances that are axial (|slice normal · z| > AXIAL_MIN_COS), not LOCALIZER, with
 * pixel data and a position; order them along the slice normal, most superior (head) first; of
 * instances at the same position keep the later acquisition. Every dropped instance gets a reason.
 */
import type { DicomHeader } from '../dicom/decode/header.js';

export const CT_IMAGE_STORAGE = '1.2.840.10008.5.1.4.1.1.2';
/** |normal·z| above this counts as axial (about 25° of tilt). */
export const AXIAL_MIN_COS = 0.9;
/** Positions closer than this (mm) along the normal are the same slice position. */
export const SAME_POSITION_MM = 0.01;

export interface Candidate<T = unknown> {
  file: string;
  header: DicomHeader;
  /** Anything the caller wants carried along. */
  ref?: T;
}

export interface SelectedSlice<T = unknown> extends Candidate<T> {
  /** Position along the (superior-pointing) slice normal, mm. */
  position: number;
}

export interface DroppedSlice {
  file: string;
  sopInstanceUid: string | null;
  reason: string;
}

export interface Selection<T = unknown> {
  slices: SelectedSlice<T>[];
  dropped: DroppedSlice[];
}

export function sliceNormal(iop: readonly number[]): [number, number, number] {
  const [rx, ry, rz, cx, cy, cz] = iop as [number, number, number, number, number, number];
  const n: [number, number, number] = [ry * cz - rz * cy, rz * cx - rx * cz, rx * cy - ry * cx];
  const len = Math.hypot(...n);
  return len > 0 ? [n[0] / len, n[1] / len, n[2] / len] : [0, 0, 0];
}

/** Why an instance is not scored, or null when it is a candidate slice. */
export function rejectReason(h: DicomHeader): string | null {
  if (h.sopClassUid !== CT_IMAGE_STORAGE) return `SOP class ${h.sopClassUid ?? '(none)'} is not CT Image Storage`;
  if (h.imageType.includes('LOCALIZER')) return 'localizer (ImageType LOCALIZER)';
  if (!h.hasPixelData) return 'no Pixel Data';
  if (h.numberOfFrames > 1) return `multi-frame (${h.numberOfFrames} frames)`;
  if (!h.imageOrientationPatient) return 'no valid ImageOrientationPatient';
  const n = sliceNormal(h.imageOrientationPatient);
  const cos = Math.abs(n[2]);
  if (!(cos > AXIAL_MIN_COS)) return `not axial (|normal·z| = ${cos.toFixed(3)})`;
  if (!h.imagePositionPatient) return 'no valid ImagePositionPatient';
  if (!h.sopInstanceUid) return 'no SOP Instance UID';
  return null;
}

/** "Later acquisition" order: AcquisitionNumber, AcquisitionTime, ContentTime, InstanceNumber. */
function laterThan(a: DicomHeader, b: DicomHeader): number {
  const num = (x: number | null) => (x === null ? -Infinity : x);
  const time = (x: string | null) => (x === null ? -Infinity : Number(x.replace(/[^0-9.]/g, '')) || -Infinity);
  return (
    num(a.acquisitionNumber) - num(b.acquisitionNumber) ||
    time(a.acquisitionTime) - time(b.acquisitionTime) ||
    time(a.contentTime) - time(b.contentTime) ||
    num(a.instanceNumber) - num(b.instanceNumber)
  );
}

export function selectSlices<T>(candidates: readonly Candidate<T>[]): Selection<T> {
  const dropped: DroppedSlice[] = [];
  const kept: Candidate<T>[] = [];
  for (const c of candidates) {
    const why = rejectReason(c.header);
    if (why) dropped.push({ file: c.file, sopInstanceUid: c.header.sopInstanceUid, reason: why });
    else kept.push(c);
  }
  if (kept.length === 0) return { slices: [], dropped };

  // One normal for the series: the mean of the slice normals, pointing superior (+z).
  let ax = 0;
  let ay = 0;
  let az = 0;
  for (const c of kept) {
    const n = sliceNormal(c.header.imageOrientationPatient as number[]);
    const s = n[2] < 0 ? -1 : 1;
    ax += s * n[0];
    ay += s * n[1];
    az += s * n[2];
  }
  const len = Math.hypot(ax, ay, az);
  const normal: [number, number, number] = [ax / len, ay / len, az / len];

  const withPos: SelectedSlice<T>[] = kept.map((c) => {
    const p = c.header.imagePositionPatient as number[];
    return { ...c, position: (p[0] as number) * normal[0] + (p[1] as number) * normal[1] + (p[2] as number) * normal[2] };
  });
  // Superior first; runs of positions closer than SAME_POSITION_MM are one position, of which
  // the later acquisition is kept.
  withPos.sort((a, b) => b.position - a.position || a.file.localeCompare(b.file));
  const slices: SelectedSlice<T>[] = [];
  let i = 0;
  while (i < withPos.length) {
    let j = i + 1;
    while (
      j < withPos.length &&
      (withPos[j - 1] as SelectedSlice<T>).position - (withPos[j] as SelectedSlice<T>).position < SAME_POSITION_MM
    )
      j++;
    const group = withPos.slice(i, j);
    let best = group[0] as SelectedSlice<T>;
    for (const g of group) if (laterThan(g.header, best.header) > 0) best = g;
    slices.push(best);
    for (const g of group) {
      if (g === best) continue;
      dropped.push({
        file: g.file,
        sopInstanceUid: g.header.sopInstanceUid,
        reason: `duplicate position ${g.position.toFixed(2)} mm; kept the later acquisition ${best.header.sopInstanceUid}`,
      });
    }
    i = j;
  }
  return { slices, dropped };
}
