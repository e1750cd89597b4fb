/** The header attributes slice selection, scoring and reporting need, read from a parsed dataset. */
import type { DicomDataset } from 'dcmjs';
import type { ParsedDicom } from './read.js';

export interface DicomHeader {
  transferSyntaxUid: string;
  sopClassUid: string | null;
  sopInstanceUid: string | null;
  seriesInstanceUid: string | null;
  studyInstanceUid: string | null;
  modality: string | null;
  imageType: string[];
  /** Six direction cosines (row, then column), or null when missing or malformed. */
  imageOrientationPatient: number[] | null;
  /** Three coordinates (mm), or null. */
  imagePositionPatient: number[] | null;
  instanceNumber: number | null;
  acquisitionNumber: number | null;
  /** "HHMMSS.ffffff" as stored, for ordering duplicate acquisitions. */
  acquisitionTime: string | null;
  contentTime: string | null;
  rows: number | null;
  columns: number | null;
  /** PixelSpacing: [row spacing, column spacing] in mm, or null when missing or malformed. */
  pixelSpacing: [number, number] | null;
  /** SliceThickness (mm), or null when missing or not positive. */
  sliceThickness: number | null;
  numberOfFrames: number;
  hasPixelData: boolean;
}

function first(ds: DicomDataset, tag: string): unknown {
  return ds[tag]?.Value?.[0];
}

function str(ds: DicomDataset, tag: string): string | null {
  const v = first(ds, tag);
  if (v === undefined || v === null) return null;
  const s = String(v).replace(/\0/g, '').trim();
  return s === '' ? null : s;
}

function num(ds: DicomDataset, tag: string): number | null {
  const v = first(ds, tag);
  if (v === undefined || v === null || v === '') return null;
  const n = typeof v === 'number' ? v : Number(String(v).trim());
  return Number.isFinite(n) ? n : null;
}

function nums(ds: DicomDataset, tag: string, count: number): number[] | null {
  const vals = ds[tag]?.Value;
  if (!vals || vals.length !== count) return null;
  const out = vals.map((v) => (typeof v === 'number' ? v : Number(String(v).trim())));
  return out.every((n) => Number.isFinite(n)) ? out : null;
}

function spacingValue(v: number[] | null): [number, number] | null {
  if (!v || !(v[0]! > 0) || !(v[1]! > 0)) return null;
  return [v[0]!, v[1]!];
}

function positive(v: number | null): number | null {
  return v !== null && v > 0 ? v : null;
}

export function numberValue(ds: DicomDataset, tag: string): number | null {
  return num(ds, tag);
}

export function stringValue(ds: DicomDataset, tag: string): string | null {
  return str(ds, tag);
}

/** A PN value's alphabetic form as stored (dcmjs gives { Alphabetic }), or null when missing or empty. */
export function personNameValue(ds: DicomDataset, tag: string): string | null {
  const v = first(ds, tag);
  const raw = v && typeof v === 'object' ? (v as { Alphabetic?: unknown }).Alphabetic : v;
  if (raw === undefined || raw === null) return null;
  const s = String(raw).replace(/\0/g, '').trim();
  return s === '' ? null : s;
}

/** PixelSpacing (row, column; both > 0) and SliceThickness (> 0) of a dataset, null where missing or malformed. */
export function imageSpacing(ds: DicomDataset): { pixelSpacing: [number, number] | null; sliceThickness: number | null } {
  return { pixelSpacing: spacingValue(nums(ds, '00280030', 2)), sliceThickness: positive(num(ds, '00180050')) };
}

export function readHeader(parsed: ParsedDicom): DicomHeader {
  const ds = parsed.dataset;
  const imageType = (ds['00080008']?.Value ?? []).map((v) => String(v).trim().toUpperCase());
  const frames = num(ds, '00280008');
  const { pixelSpacing, sliceThickness } = imageSpacing(ds);
  return {
    transferSyntaxUid: parsed.transferSyntaxUid,
    sopClassUid: str(ds, '00080016') ?? str(parsed.meta, '00020002'),
    sopInstanceUid: str(ds, '00080018') ?? str(parsed.meta, '00020003'),
    seriesInstanceUid: str(ds, '0020000E'),
    studyInstanceUid: str(ds, '0020000D'),
    modality: str(ds, '00080060'),
    imageType,
    imageOrientationPatient: nums(ds, '00200037', 6),
    imagePositionPatient: nums(ds, '00200032', 3),
    instanceNumber: num(ds, '00200013'),
    acquisitionNumber: num(ds, '00200012'),
    acquisitionTime: str(ds, '00080032'),
    contentTime: str(ds, '00080033'),
    rows: num(ds, '00280010'),
    columns: num(ds, '00280011'),
    pixelSpacing,
    sliceThickness,
    numberOfFrames: frames !== null && frames > 0 ? Math.floor(frames) : 1,
    hasPixelData: parsed.hasPixelData,
  };
}
