/** Pieces every result object shares: copied patient/study modules, equipment, times, codes. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../config/load.js';
import type { ResultRecord } from '../contracts/result-record.js';
import { encodeElement, setCode, setSequence, setString, tagOf, type Code, type Dataset } from './dataset.js';
import { TYPE2_PATIENT_STUDY, type SourceInstance } from './source.js';

export const NOT_FOR_DIAGNOSTIC_USE = 'NOT FOR DIAGNOSTIC USE';
export const MANUFACTURER = 'mlsam-node';

let productVersion: string | undefined;
/** Version of this software (package.json). */
export function softwareVersion(): string {
  if (productVersion === undefined) {
    try {
      productVersion = String(
        (JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version?: string }).version ?? '0',
      );
    } catch {
      productVersion = '0';
    }
  }
  return productVersion;
}

/** Private coding scheme of this project (a "99" designator, PS3.16 8.2). */
export const LOCAL_SCHEME = '99MLSAM';

/** How a record's series score was made, in words (SR text, summary image). */
export function howScored(r: Pick<ResultRecord, 'k' | 'fusion' | 'slices'>): string {
  if (r.fusion === 'cnn+opacity') {
    const eligible = r.slices.filter((s) => s.eligible !== false).length;
    return `lung opacity burden x mean CNN probability of the top ${r.k ?? '?'} of ${eligible} eligible slices`;
  }
  return `mean of the top ${r.k ?? '?'} of ${r.slices.length} slices, CNN alone`;
}

export const Codes = {
  // IHE AI Results (AIR): Contributing Equipment purpose of reference for an AI model. DICOM's own
  // CID 7005 has no "processing algorithm" code (109103 is "Modifying Equipment").
  processingAlgorithm: { value: 'Newcode1', scheme: '99IHE', meaning: 'Processing Algorithm' },
  sourceImageForProcessing: { value: '121322', scheme: 'DCM', meaning: 'Source image for image processing operation' },
  noUnits: { value: '1', scheme: 'UCUM', meaning: 'no units' },
} satisfies Record<string, Code>;

/** Coding Scheme Identification Sequence item for LOCAL_SCHEME. */
export function setCodingSchemes(ds: Dataset): void {
  const item: Dataset = new Map();
  setString(item, tagOf(0x0008, 0x0102), 'SH', LOCAL_SCHEME);
  setString(item, tagOf(0x0008, 0x0115), 'ST', 'mlsam-node local codes');
  setString(item, tagOf(0x0008, 0x0116), 'ST', 'mlsam-node');
  setSequence(ds, tagOf(0x0008, 0x0110), [item]);
}

/**
 * Patient, Clinical Trial Subject, General Study, Patient Study and Clinical Trial Study modules,
 * plus Specific Character Set and Timezone Offset From UTC: copied as encoded in the source. Type 2
 * attributes the source lacks are added empty.
 */
export function copyPatientStudy(ds: Dataset, src: SourceInstance): void {
  for (const [tag, bytes] of src.copied) ds.set(tag, bytes);
  for (const [tag, vr] of TYPE2_PATIENT_STUDY) if (!ds.has(tag)) ds.set(tag, encodeElement(tag, vr, Buffer.alloc(0)));
}

export interface DicomDateTime {
  date: string;
  time: string;
}

/**
 * DA/TM of an ISO instant. In the source's time zone when it states one (Timezone Offset From UTC
 * is copied with the study, and applies to every date and time of the object), else in UTC.
 */
export function dicomDateTime(iso: string, timezoneOffset: string | null): DicomDateTime {
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) throw new Error(`not a date-time: ${iso}`);
  let offsetMin = 0;
  const m = timezoneOffset ? /^([+-])(\d{2})(\d{2})$/.exec(timezoneOffset.trim()) : null;
  if (m) offsetMin = (m[1] === '-' ? -1 : 1) * (Number(m[2]) * 60 + Number(m[3]));
  const d = new Date(t + offsetMin * 60_000);
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return {
    date: `${d.getUTCFullYear()}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}`,
    time: `${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}.${p(d.getUTCMilliseconds(), 3)}`,
  };
}

export interface ModelInfo {
  name: string;
  version: string;
  sha256: string;
}

/** General + Enhanced General Equipment: this software. */
export function setEquipment(ds: Dataset, deviceSerial: string): void {
  setString(ds, tagOf(0x0008, 0x0070), 'LO', MANUFACTURER);
  setString(ds, tagOf(0x0008, 0x1090), 'LO', MANUFACTURER);
  setString(ds, tagOf(0x0018, 0x1000), 'LO', deviceSerial);
  setString(ds, tagOf(0x0018, 0x1020), 'LO', softwareVersion());
}

/** Contributing Equipment Sequence: the model, with purpose "Processing Algorithm". */
export function setContributingEquipment(ds: Dataset, model: ModelInfo, when: DicomDateTime): void {
  const item: Dataset = new Map();
  setString(item, tagOf(0x0008, 0x0070), 'LO', MANUFACTURER);
  setString(item, tagOf(0x0008, 0x1090), 'LO', model.name);
  setString(item, tagOf(0x0018, 0x1020), 'LO', model.version);
  setString(item, tagOf(0x0018, 0xa002), 'DT', `${when.date}${when.time}`);
  setString(
    item,
    tagOf(0x0018, 0xa003),
    'ST',
    `${model.name} ${model.version} (sha256 ${model.sha256.slice(0, 16)}), ${NOT_FOR_DIAGNOSTIC_USE}`,
  );
  setCode(item, tagOf(0x0040, 0xa170), Codes.processingAlgorithm);
  setSequence(ds, tagOf(0x0018, 0xa001), [item]);
}

/** Patient Orientation (row\column direction letters) from Image Orientation (Patient). */
export function patientOrientation(iop: number[] | null): string[] | null {
  if (!iop) return null;
  const letters = (v: number[]): string => {
    const axes: [number, string, string][] = [
      [v[0] as number, 'L', 'R'],
      [v[1] as number, 'P', 'A'],
      [v[2] as number, 'H', 'F'],
    ];
    return axes
      .filter(([c]) => Math.abs(c) > 0.25)
      .sort((a, b) => Math.abs(b[0]) - Math.abs(a[0]))
      .map(([c, pos, neg]) => (c > 0 ? pos : neg))
      .join('');
  };
  const row = letters(iop.slice(0, 3));
  const col = letters(iop.slice(3, 6));
  return row && col ? [row, col] : null;
}

/** Series numbers of the result series: 8000 + source series number (KO), 8500 + it (SEG), 8700 + it (PR), 9000 + it (SR), 9500 + it (SC). */
export function resultSeriesNumbers(sourceSeriesNumber: number | null): { kos: number; seg: number; pr: number; sr: number; sc: number } {
  const s = sourceSeriesNumber !== null && Number.isInteger(sourceSeriesNumber) && sourceSeriesNumber >= 0 ? sourceSeriesNumber : 0;
  return { kos: 8000 + s, seg: 8500 + s, pr: 8700 + s, sr: 9000 + s, sc: 9500 + s };
}

/**
 * What every result object is built from first: the source slice whose patient and study it joins,
 * the model that made it, its own SOP Instance UID and series, the AE title and time of creation.
 * Each object's input (SR, KOS, SEG, SC, GSPS) extends it with what is its own.
 */
export interface ResultObjectInput {
  source: SourceInstance;
  model: ModelInfo;
  sopInstanceUid: string;
  seriesInstanceUid: string;
  seriesNumber: number;
  aeTitle: string;
  when: DicomDateTime;
}

/** A CT slice a result object is drawn on or derived from (GSPS image, SC heatmap source). */
export interface SourceSlice {
  sopClassUid: string;
  sopInstanceUid: string;
  instance: SourceInstance;
}

/** A result object that is one numbered instance of several in its series (SC, GSPS). */
export interface NumberedObjectInput extends ResultObjectInput {
  instanceNumber: number;
}

/** What the SR and the Key Object Selection are built from. */
export interface DocumentInput extends ResultObjectInput {
  record: ResultRecord;
  deviceObserverUid: string;
}

/** What every result object's header says about itself. */
export interface ObjectHeader extends NumberedObjectInput {
  sopClassUid: string;
  modality: string;
  seriesDescription: string;
}

/**
 * SeriesDescription: what the object is first (viewers' study browsers cut the description short), then the
 * model, then the caution; the model is left out where all of it would not fit the 64 characters of an LO.
 */
export function seriesDescription(what: string, model: Pick<ModelInfo, 'name' | 'version'>): string {
  const full = `${what} ${model.name} ${model.version} - ${NOT_FOR_DIAGNOSTIC_USE}`;
  return full.length <= 64 ? full : `${what.slice(0, 64 - NOT_FOR_DIAGNOSTIC_USE.length - 3).trimEnd()} - ${NOT_FOR_DIAGNOSTIC_USE}`;
}

/**
 * Patient and study modules (copied), SOP Common, General Series, General Equipment, and the
 * instance number and content date/time: the header every result object shares.
 */
export function setObjectHeader(ds: Dataset, h: ObjectHeader): void {
  copyPatientStudy(ds, h.source);
  setString(ds, tagOf(0x0008, 0x0016), 'UI', h.sopClassUid);
  setString(ds, tagOf(0x0008, 0x0018), 'UI', h.sopInstanceUid);
  setString(ds, tagOf(0x0008, 0x0012), 'DA', h.when.date);
  setString(ds, tagOf(0x0008, 0x0013), 'TM', h.when.time);
  setContributingEquipment(ds, h.model, h.when);
  setString(ds, tagOf(0x0008, 0x0060), 'CS', h.modality);
  setString(ds, tagOf(0x0020, 0x000e), 'UI', h.seriesInstanceUid);
  setString(ds, tagOf(0x0020, 0x0011), 'IS', String(h.seriesNumber));
  setString(ds, tagOf(0x0008, 0x0021), 'DA', h.when.date);
  setString(ds, tagOf(0x0008, 0x0031), 'TM', h.when.time);
  setString(ds, tagOf(0x0008, 0x103e), 'LO', seriesDescription(h.seriesDescription, h.model));
  setEquipment(ds, h.aeTitle);
  setString(ds, tagOf(0x0020, 0x0013), 'IS', String(h.instanceNumber));
  setString(ds, tagOf(0x0008, 0x0023), 'DA', h.when.date);
  setString(ds, tagOf(0x0008, 0x0033), 'TM', h.when.time);
}
