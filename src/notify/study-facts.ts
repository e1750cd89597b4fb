/**
 * What a notification says about the study besides the result: patient and order identifiers read
 * from one source instance of the series (or, once the inputs are gone, from the SR the node wrote,
 * which copies the Patient and General Study modules). Read here, sent to the target, never logged.
 */
import { readFile } from 'node:fs/promises';
import dcmjs, { type DicomDataset } from 'dcmjs';
import type { ResultRecord } from '../contracts/result-record.js';

export interface StudyFacts {
  patientId: string;
  issuerOfPatientId: string;
  /** DICOM PN: family^given^middle^prefix^suffix. */
  patientName: string;
  patientBirthDate: string;
  patientSex: string;
  accessionNumber: string;
  studyDate: string;
  studyTime: string;
  studyDescription: string;
  /** Placer / filler order numbers (Imaging Service Request, or the Request Attributes Sequence). */
  placerOrderNumber: string;
  fillerOrderNumber: string;
  requestedProcedureId: string;
  referringPhysician: string;
}

const EMPTY: StudyFacts = {
  patientId: '',
  issuerOfPatientId: '',
  patientName: '',
  patientBirthDate: '',
  patientSex: '',
  accessionNumber: '',
  studyDate: '',
  studyTime: '',
  studyDescription: '',
  placerOrderNumber: '',
  fillerOrderNumber: '',
  requestedProcedureId: '',
  referringPhysician: '',
};

function text(ds: DicomDataset | undefined, tag: string): string {
  const v = ds?.[tag]?.Value?.[0];
  if (v === undefined || v === null) return '';
  if (typeof v === 'object' && 'Alphabetic' in (v as object)) return String((v as { Alphabetic?: unknown }).Alphabetic ?? '').trim();
  return String(v).replace(/\0/g, '').trim();
}

/** The facts in a dataset (dcmjs denaturalized form). */
export function factsFromDataset(ds: DicomDataset): StudyFacts {
  const req = (ds['00400275']?.Value?.[0] as DicomDataset | undefined) ?? undefined;
  return {
    patientId: text(ds, '00100020'),
    issuerOfPatientId: text(ds, '00100021'),
    patientName: text(ds, '00100010'),
    patientBirthDate: text(ds, '00100030'),
    patientSex: text(ds, '00100040'),
    accessionNumber: text(ds, '00080050') || text(req, '00080050'),
    studyDate: text(ds, '00080020'),
    studyTime: text(ds, '00080030'),
    studyDescription: text(ds, '00081030'),
    placerOrderNumber: text(ds, '00402016') || text(req, '00402016'),
    fillerOrderNumber: text(ds, '00402017') || text(req, '00402017'),
    requestedProcedureId: text(req, '00401001') || text(ds, '00401001'),
    referringPhysician: text(ds, '00080090'),
  };
}

async function readFacts(file: string): Promise<StudyFacts> {
  const buf = await readFile(file);
  const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer;
  const dict = dcmjs.data.DicomMessage.readFile(ab, { untilTag: '7FE00010', includeUntilTagValue: false, ignoreErrors: true });
  return factsFromDataset(dict.dict);
}

/** The facts of the record's study: from a source slice, else from its SR; empty fields when neither can be read. */
export async function studyFacts(record: ResultRecord): Promise<StudyFacts> {
  const candidates = [
    ...record.slices.slice(0, 1).map((s) => s.file),
    ...(record.outputs ?? []).filter((o) => o.kind === 'sr').map((o) => o.path),
  ];
  for (const f of candidates) {
    try {
      return await readFacts(f);
    } catch {
      /* next */
    }
  }
  return { ...EMPTY };
}
