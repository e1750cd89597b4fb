/**
 * The DICOM Segmentation (PS3.3 A.51, Segmentation Storage) of a scored HU series: what the opacity burden is
 * measured on, as an overlay over the whole CT in its own Frame of Reference.
 *
 * Four segments: 1 left lung, 2 right lung (the patient's, from ImageOrientationPatient), 3 ground glass,
 * 4 consolidation (ground glass = the opacity mask less its high-opacity part; consolidation = the high-opacity
 * mask: the masks the SR's volumes are summed from, src/model/opacity.ts). BINARY, one frame per segment per
 * slice that holds it, frames ordered by segment then from superior to inferior, each on the CT slice's pixel
 * grid with its Image Position (Patient) and a Derivation Image Sequence naming that slice. Segments overlap
 * (a lesion lies inside a lung): Segments Overlap YES.
 *
 * Size: a 512 × 512 binary frame is 32 KiB; a chest series has roughly 0.8 frames of lung per slice per lung
 * and fewer of lesions, so ~60–80 KiB per CT slice (README: sizes for 150 and 600 slices).
 */
import {
  LESION_CONSOLIDATION,
  LESION_GROUND_GLASS,
  LUNG_IMAGE_LEFT,
  LUNG_IMAGE_RIGHT,
  runsOf,
  type SliceLabelRuns,
} from '../model/seg-masks.js';
import { MANUFACTURER, NOT_FOR_DIAGNOSTIC_USE, setObjectHeader, type ResultObjectInput } from './common.js';
import {
  encodeElement,
  formatDs,
  setCode,
  sequenceElement,
  setOBInPlace,
  setSequence,
  setString,
  setUS,
  tagOf,
  type Code,
  type Dataset,
} from './dataset.js';

export const SEGMENTATION_STORAGE = '1.2.840.10008.5.1.4.1.1.66.4';

/** One scored slice with its labels (scored order, superior first). */
export interface SegSlice {
  sopClassUid: string;
  sopInstanceUid: string;
  imagePositionPatient: number[];
  labels: SliceLabelRuns;
}

export interface SegInput extends ResultObjectInput {
  /** The CT series segmented. */
  sourceSeriesInstanceUid: string;
  dimensionOrganizationUid: string;
  imageOrientationPatient: number[];
  /** [row mm, column mm]. */
  pixelSpacing: [number, number];
  /** SliceThickness of the CT (mm), else the slice spacing. */
  sliceThicknessMm: number;
  slices: SegSlice[];
  /** The quantification method and its HU ranges, for the algorithm's parameters. */
  method: string;
  parameters: string;
}

interface SegmentDef {
  number: number;
  label: string;
  description: string;
  category: Code;
  type: Code;
  anatomicRegion?: Code;
  /** sRGB of the recommended display colour. */
  rgb: [number, number, number];
}

const SCT = (value: string, meaning: string): Code => ({ value, scheme: 'SCT', meaning });
const CATEGORY_ANATOMY = SCT('123037004', 'Anatomical Structure');
const CATEGORY_MORPHOLOGY = SCT('49755003', 'Morphologically Altered Structure');
const LUNG = SCT('39607008', 'Lung');

export const SEGMENTS: readonly SegmentDef[] = [
  {
    number: 1,
    label: 'Left lung',
    description: 'Lung mask, patient left',
    category: CATEGORY_ANATOMY,
    type: SCT('44029006', 'Left lung'),
    rgb: [80, 160, 255],
  },
  {
    number: 2,
    label: 'Right lung',
    description: 'Lung mask, patient right',
    category: CATEGORY_ANATOMY,
    type: SCT('3341006', 'Right lung'),
    rgb: [80, 220, 140],
  },
  {
    number: 3,
    label: 'Ground glass',
    description: 'Ground-glass opacity (opacity HU range below consolidation, vessels removed)',
    category: CATEGORY_MORPHOLOGY,
    type: SCT('1217294009', 'Ground glass opacity'),
    anatomicRegion: LUNG,
    rgb: [255, 210, 0],
  },
  {
    number: 4,
    label: 'Consolidation',
    description: 'Consolidation (high-opacity HU range)',
    category: CATEGORY_MORPHOLOGY,
    type: SCT('95436008', 'Lung consolidation'),
    anatomicRegion: LUNG,
    rgb: [255, 40, 40],
  },
];

const ALGORITHM_FAMILY: Code = { value: '123104', scheme: 'DCM', meaning: 'Morphological Operations' };
const SOURCE_IMAGE: Code = { value: '121322', scheme: 'DCM', meaning: 'Source image for image processing operation' };
const DERIVATION_SEGMENTATION: Code = { value: '113076', scheme: 'DCM', meaning: 'Segmentation' };

/** sRGB (0–255) → DICOM CIELab (PS3.3 C.10.7.1.1: L* 0–100, a* and b* −128–127 scaled to 0–65535, D65). */
export function rgbToDicomLab([r, g, b]: [number, number, number]): [number, number, number] {
  const lin = (c: number) => {
    const v = c / 255;
    return v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  };
  const [R, G, B] = [lin(r), lin(g), lin(b)];
  const X = (0.4124 * R + 0.3576 * G + 0.1805 * B) / 0.95047;
  const Y = 0.2126 * R + 0.7152 * G + 0.0722 * B;
  const Z = (0.0193 * R + 0.1192 * G + 0.9505 * B) / 1.08883;
  const f = (t: number) => (t > 216 / 24389 ? Math.cbrt(t) : (841 / 108) * t + 4 / 29);
  const L = 116 * f(Y) - 16;
  const a = 500 * (f(X) - f(Y));
  const bb = 200 * (f(Y) - f(Z));
  const clamp = (v: number) => Math.max(0, Math.min(65535, Math.round(v)));
  return [clamp((L * 65535) / 100), clamp(((a + 128) * 65535) / 255), clamp(((bb + 128) * 65535) / 255)];
}

function setUL(ds: Dataset, tag: number, ...values: number[]): void {
  const b = Buffer.alloc(values.length * 4);
  for (const [i, v] of values.entries()) b.writeUInt32LE(v >>> 0, i * 4);
  ds.set(tag, encodeElement(tag, 'UL', b));
}

function setAT(ds: Dataset, tag: number, pointer: number): void {
  const b = Buffer.alloc(4);
  b.writeUInt16LE(pointer >>> 16, 0);
  b.writeUInt16LE(pointer & 0xffff, 2);
  ds.set(tag, encodeElement(tag, 'AT', b));
}

const T = {
  segmentIdentification: tagOf(0x0062, 0x000a),
  referencedSegmentNumber: tagOf(0x0062, 0x000b),
  planePosition: tagOf(0x0020, 0x9113),
  imagePositionPatient: tagOf(0x0020, 0x0032),
};

/** Which label of which run set makes a segment, given which image side is the patient's left. */
function segmentPixels(
  seg: SegmentDef,
  labels: SliceLabelRuns,
  imageLeftIsPatientRight: boolean,
): { starts: number[]; lengths: number[]; count: number } {
  switch (seg.number) {
    case 1:
      return runsOf(labels.lung, imageLeftIsPatientRight ? LUNG_IMAGE_RIGHT : LUNG_IMAGE_LEFT);
    case 2:
      return runsOf(labels.lung, imageLeftIsPatientRight ? LUNG_IMAGE_LEFT : LUNG_IMAGE_RIGHT);
    case 3:
      return runsOf(labels.lesion, LESION_GROUND_GLASS);
    default:
      return runsOf(labels.lesion, LESION_CONSOLIDATION);
  }
}

export interface SegFrameSummary {
  /** Frames per segment number. */
  frames: Record<number, number>;
  /** Pixels per segment number. */
  pixels: Record<number, number>;
}

/** The Segmentation dataset (without file meta) and what it holds. */
export function buildSeg(inp: SegInput): { dataset: Dataset; summary: SegFrameSummary } {
  const { source, model } = inp;
  const first = inp.slices[0];
  if (!first) throw new Error('a Segmentation needs at least one slice');
  const { width, height } = first.labels;
  if (inp.slices.some((s) => s.labels.width !== width || s.labels.height !== height))
    throw new Error('Segmentation: slices of different sizes');
  const imageLeftIsPatientRight = (inp.imageOrientationPatient[0] as number) >= 0;
  const ds: Dataset = new Map();
  setObjectHeader(ds, {
    source,
    model,
    sopClassUid: SEGMENTATION_STORAGE,
    sopInstanceUid: inp.sopInstanceUid,
    modality: 'SEG',
    seriesInstanceUid: inp.seriesInstanceUid,
    seriesNumber: inp.seriesNumber,
    seriesDescription: 'AI segmentation',
    instanceNumber: 1,
    aeTitle: inp.aeTitle,
    when: inp.when,
  });
  // Frame of Reference: the CT's.
  setString(ds, tagOf(0x0020, 0x0052), 'UI', source.frameOfReferenceUid ?? '');
  setString(ds, tagOf(0x0020, 0x1040), 'LO', null);
  // Segmentation Image
  setString(ds, tagOf(0x0008, 0x0008), 'CS', ['DERIVED', 'PRIMARY']);
  setString(ds, tagOf(0x0070, 0x0080), 'CS', 'LUNG_OPACITY');
  setString(ds, tagOf(0x0070, 0x0081), 'LO', `${NOT_FOR_DIAGNOSTIC_USE}: lungs, ground glass, consolidation`);
  setString(ds, tagOf(0x0070, 0x0084), 'PN', null);
  setString(ds, tagOf(0x0062, 0x0001), 'CS', 'BINARY');
  setString(ds, tagOf(0x0062, 0x0013), 'CS', 'YES');
  setString(ds, tagOf(0x0028, 0x2110), 'CS', '00');
  setString(
    ds,
    tagOf(0x0020, 0x4000),
    'LT',
    `${NOT_FOR_DIAGNOSTIC_USE}. ${MANUFACTURER} ${inp.method} lung and opacity masks over the series; ${model.name} ${model.version}. ${inp.parameters}`,
  );
  setSequence(
    ds,
    tagOf(0x0062, 0x0002),
    SEGMENTS.map((s) => {
      const item: Dataset = new Map();
      setUS(item, tagOf(0x0062, 0x0004), s.number);
      setString(item, tagOf(0x0062, 0x0005), 'LO', s.label);
      setString(item, tagOf(0x0062, 0x0006), 'ST', `${s.description}. ${NOT_FOR_DIAGNOSTIC_USE}`);
      setString(item, tagOf(0x0062, 0x0008), 'CS', 'AUTOMATIC');
      setString(item, tagOf(0x0062, 0x0009), 'LO', `${MANUFACTURER} ${inp.method}`);
      const alg: Dataset = new Map();
      setCode(alg, tagOf(0x0066, 0x002f), ALGORITHM_FAMILY);
      setString(alg, tagOf(0x0066, 0x0031), 'LO', `${model.name} ${model.version}`);
      setString(alg, tagOf(0x0066, 0x0032), 'LT', inp.parameters);
      setString(alg, tagOf(0x0066, 0x0036), 'LO', `${MANUFACTURER} ${inp.method}`);
      setSequence(item, tagOf(0x0062, 0x0007), [alg]);
      setCode(item, tagOf(0x0062, 0x0003), s.category);
      setCode(item, tagOf(0x0062, 0x000f), s.type);
      if (s.anatomicRegion) setCode(item, tagOf(0x0008, 0x2218), s.anatomicRegion);
      setUS(item, tagOf(0x0062, 0x000d), ...rgbToDicomLab(s.rgb));
      return item;
    }),
  );
  // Image Pixel: 1 bit per pixel.
  setUS(ds, tagOf(0x0028, 0x0002), 1);
  setString(ds, tagOf(0x0028, 0x0004), 'CS', 'MONOCHROME2');
  setUS(ds, tagOf(0x0028, 0x0010), height);
  setUS(ds, tagOf(0x0028, 0x0011), width);
  setUS(ds, tagOf(0x0028, 0x0100), 1);
  setUS(ds, tagOf(0x0028, 0x0101), 1);
  setUS(ds, tagOf(0x0028, 0x0102), 0);
  setUS(ds, tagOf(0x0028, 0x0103), 0);

  // Multi-frame Dimension: segment, then position.
  const dimOrg: Dataset = new Map();
  setString(dimOrg, tagOf(0x0020, 0x9164), 'UI', inp.dimensionOrganizationUid);
  setSequence(ds, tagOf(0x0020, 0x9221), [dimOrg]);
  const dim = (pointer: number, group: number, description: string): Dataset => {
    const d: Dataset = new Map();
    setString(d, tagOf(0x0020, 0x9164), 'UI', inp.dimensionOrganizationUid);
    setAT(d, tagOf(0x0020, 0x9165), pointer);
    setAT(d, tagOf(0x0020, 0x9167), group);
    setString(d, tagOf(0x0020, 0x9421), 'LO', description);
    return d;
  };
  setSequence(ds, tagOf(0x0020, 0x9222), [
    dim(T.referencedSegmentNumber, T.segmentIdentification, 'Segment'),
    dim(T.imagePositionPatient, T.planePosition, 'Image position'),
  ]);

  // Shared functional groups: pixel measures and orientation of the CT.
  const shared: Dataset = new Map();
  const measures: Dataset = new Map();
  setString(
    measures,
    tagOf(0x0028, 0x0030),
    'DS',
    inp.pixelSpacing.map((v) => formatDs(v, 10)),
  );
  setString(measures, tagOf(0x0018, 0x0050), 'DS', formatDs(inp.sliceThicknessMm));
  setSequence(shared, tagOf(0x0028, 0x9110), [measures]);
  const orientation: Dataset = new Map();
  setString(
    orientation,
    tagOf(0x0020, 0x0037),
    'DS',
    inp.imageOrientationPatient.map((v) => formatDs(v, 10)),
  );
  setSequence(shared, tagOf(0x0020, 0x9116), [orientation]);
  setSequence(ds, tagOf(0x5200, 0x9229), [shared]);

  // Frames: per segment, every slice that holds it, superior first.
  const frameBits = width * height;
  const perFrame: Dataset[] = [];
  const frames: { starts: number[]; lengths: number[] }[] = [];
  const summary: SegFrameSummary = { frames: {}, pixels: {} };
  // The plane position and derivation of a slice are the same in each segment's frame of it: encoded once per
  // slice, on first use, and the element bytes shared (a 600-slice series has ~1200 frames).
  const sliceGroups = new Map<number, { position: Buffer; derivation: Buffer }>();
  const groupsOf = (i: number): { position: Buffer; derivation: Buffer } => {
    let g = sliceGroups.get(i);
    if (!g) {
      const sl = inp.slices[i] as (typeof inp.slices)[number];
      const position: Dataset = new Map();
      setString(
        position,
        T.imagePositionPatient,
        'DS',
        sl.imagePositionPatient.map((v) => formatDs(v, 10)),
      );
      const positionElement = sequenceElement(T.planePosition, [position]);
      const srcImage: Dataset = new Map();
      setString(srcImage, tagOf(0x0008, 0x1150), 'UI', sl.sopClassUid);
      setString(srcImage, tagOf(0x0008, 0x1155), 'UI', sl.sopInstanceUid);
      setCode(srcImage, tagOf(0x0040, 0xa170), SOURCE_IMAGE);
      const derivation: Dataset = new Map();
      setSequence(derivation, tagOf(0x0008, 0x2112), [srcImage]);
      setCode(derivation, tagOf(0x0008, 0x9215), DERIVATION_SEGMENTATION);
      g = { position: positionElement, derivation: sequenceElement(tagOf(0x0008, 0x9124), [derivation]) };
      sliceGroups.set(i, g);
    }
    return g;
  };
  for (const seg of SEGMENTS) {
    summary.frames[seg.number] = 0;
    summary.pixels[seg.number] = 0;
    const segId: Dataset = new Map();
    setUS(segId, T.referencedSegmentNumber, seg.number);
    const segIdElement = sequenceElement(T.segmentIdentification, [segId]);
    inp.slices.forEach((sl, i) => {
      const px = segmentPixels(seg, sl.labels, imageLeftIsPatientRight);
      if (px.count === 0) return;
      frames.push(px);
      (summary.frames[seg.number] as number)++;
      summary.pixels[seg.number] = (summary.pixels[seg.number] as number) + px.count;
      const fg: Dataset = new Map();
      const content: Dataset = new Map();
      setUL(content, tagOf(0x0020, 0x9157), seg.number, i + 1);
      setSequence(fg, tagOf(0x0020, 0x9111), [content]);
      const g = groupsOf(i);
      fg.set(T.planePosition, g.position);
      fg.set(tagOf(0x0008, 0x9124), g.derivation);
      fg.set(T.segmentIdentification, segIdElement);
      perFrame.push(fg);
    });
  }
  if (frames.length === 0) throw new Error('Segmentation: no segment has any pixel');
  setSequence(ds, tagOf(0x5200, 0x9230), perFrame);
  setString(ds, tagOf(0x0028, 0x0008), 'IS', String(frames.length));

  // Common Instance Reference: every slice of the CT series the frames derive from.
  const refs = inp.slices.map((s) => {
    const r: Dataset = new Map();
    setString(r, tagOf(0x0008, 0x1150), 'UI', s.sopClassUid);
    setString(r, tagOf(0x0008, 0x1155), 'UI', s.sopInstanceUid);
    return r;
  });
  const series: Dataset = new Map();
  setSequence(series, tagOf(0x0008, 0x114a), refs);
  setString(series, tagOf(0x0020, 0x000e), 'UI', inp.sourceSeriesInstanceUid);
  setSequence(ds, tagOf(0x0008, 0x1115), [series]);

  // Pixel Data: frames packed bit after bit, the first pixel in the least significant bit (PS3.5 8.1.1).
  setOBInPlace(ds, tagOf(0x7fe0, 0x0010), Math.ceil((frames.length * frameBits) / 8), (pixels) => {
    frames.forEach((f, k) => {
      const base = k * frameBits;
      for (let j = 0; j < f.starts.length; j++) {
        const from = base + (f.starts[j] as number);
        const to = from + (f.lengths[j] as number); // bits from … to − 1
        let b = from >> 3;
        const last = to >> 3; // the byte that holds bit `to` (not set)
        if (b === last) {
          pixels[b] = (pixels[b] as number) | ((((1 << (to - from)) - 1) << (from & 7)) & 0xff);
          continue;
        }
        if (from & 7) {
          pixels[b] = (pixels[b] as number) | ((0xff << (from & 7)) & 0xff);
          b++;
        }
        for (; b < last; b++) pixels[b] = 0xff;
        if (to & 7) pixels[last] = (pixels[last] as number) | ((1 << (to & 7)) - 1);
      }
    });
  });
  return { dataset: ds, summary };
}
