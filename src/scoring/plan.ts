/**
 * Series planning for scoreFiles: DICOM instances grouped by SeriesInstanceUID, their slices selected
 * and ordered (select-slices.ts); each PNG/JPEG file is a one-slice series of its own. Series that
 * cannot be scored go to `notScored` with the reason.
 */
import type { DicomHeader } from '../dicom/decode/index.js';
import type { Input } from './discover.js';
import type { ImageFormat } from './image-file.js';
import { type DroppedSlice, type SelectedSlice, selectSlices } from './select-slices.js';
import type { UnscoredSeries } from './types.js';

export interface PlannedSlice {
  file: string;
  header: DicomHeader | null;
  position: number | null;
}

export interface PlannedSeries {
  key: string;
  seriesInstanceUid: string | null;
  studyInstanceUid: string | null;
  source: 'dicom' | ImageFormat;
  slices: PlannedSlice[];
  dropped: DroppedSlice[];
}

/** DICOM series first (in order of first appearance), then the image files. */
export function planSeries(inputs: readonly Input[], notScored: UnscoredSeries[], minSlices: number): PlannedSeries[] {
  const bySeries = new Map<string, { file: string; header: DicomHeader }[]>();
  const planned: PlannedSeries[] = [];
  for (const inp of inputs) {
    if (inp.kind === 'image') {
      planned.push({
        key: `image:${inp.file}`,
        seriesInstanceUid: null,
        studyInstanceUid: null,
        source: inp.format,
        slices: [{ file: inp.file, header: null, position: null }],
        dropped: [],
      });
      continue;
    }
    const uid = inp.header.seriesInstanceUid;
    if (!uid) {
      notScored.push({ seriesInstanceUid: null, file: inp.file, reason: 'no SeriesInstanceUID', dropped: [] });
      continue;
    }
    const list = bySeries.get(uid) ?? [];
    list.push({ file: inp.file, header: inp.header });
    bySeries.set(uid, list);
  }
  const dicom: PlannedSeries[] = [];
  for (const [uid, list] of bySeries) {
    const sel = selectSlices(list);
    if (sel.slices.length === 0) {
      notScored.push({
        seriesInstanceUid: uid,
        reason: 'no scorable slices (CT Image Storage, axial, not localizer, with pixel data)',
        dropped: sel.dropped,
      });
      continue;
    }
    if (sel.slices.length < minSlices) {
      notScored.push({
        seriesInstanceUid: uid,
        reason: `too few axial slices (${sel.slices.length} < ${minSlices})`,
        dropped: sel.dropped,
      });
      continue;
    }
    dicom.push({
      key: uid,
      seriesInstanceUid: uid,
      studyInstanceUid: list[0]?.header.studyInstanceUid ?? null,
      source: 'dicom',
      slices: sel.slices.map((s: SelectedSlice) => ({ file: s.file, header: s.header, position: s.position })),
      dropped: sel.dropped,
    });
  }
  return [...dicom, ...planned];
}
