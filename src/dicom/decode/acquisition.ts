/**
 * The acquisition attributes a site validates and watches the node by (results store, validation
 * breakdown, drift): scanner make and model, reconstruction kernel, slice thickness, kVp, contrast.
 */
import { readFile } from 'node:fs/promises';
import type { DicomDataset } from 'dcmjs';
import { parseDicom } from './read.js';

export interface AcquisitionAttributes {
  manufacturer: string | null;
  manufacturerModel: string | null;
  /** ConvolutionKernel (multi-valued kernels joined with '\\'). */
  kernel: string | null;
  sliceThicknessMm: number | null;
  kvp: number | null;
  /** ContrastBolusAgent; '' when the element is present and empty (no contrast), null when absent. */
  contrast: string | null;
}

function text(ds: DicomDataset, tag: string): string | null {
  const vals = ds[tag]?.Value;
  if (!vals || vals.length === 0) return null;
  const s = vals
    .map((v) =>
      String(v ?? '')
        .replace(/\0/g, '')
        .trim(),
    )
    .filter((v) => v !== '')
    .join('\\');
  return s === '' ? null : s.slice(0, 200);
}

function positive(ds: DicomDataset, tag: string): number | null {
  const v = ds[tag]?.Value?.[0];
  const n = typeof v === 'number' ? v : Number(String(v ?? '').trim());
  return v !== undefined && v !== null && v !== '' && Number.isFinite(n) && n > 0 ? n : null;
}

export function acquisitionAttributes(ds: DicomDataset): AcquisitionAttributes {
  const contrastEl = ds['00180010'];
  return {
    manufacturer: text(ds, '00080070'),
    manufacturerModel: text(ds, '00081090'),
    kernel: text(ds, '00181210'),
    sliceThicknessMm: positive(ds, '00180050'),
    kvp: positive(ds, '00180060'),
    contrast: contrastEl ? (text(ds, '00180010') ?? '') : null,
  };
}

/** Reads the header of one Part-10 file (stops before Pixel Data). */
export async function readAcquisitionAttributes(path: string): Promise<AcquisitionAttributes> {
  return acquisitionAttributes(parseDicom(await readFile(path), { headerOnly: true }).dataset);
}
