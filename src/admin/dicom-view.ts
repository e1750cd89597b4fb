/**
 * Result objects for the dashboard, in-process (nothing external runs at request time):
 * - the SR's content tree as plain nodes (read with dcmjs), rendered as text by the pages;
 * - a Secondary Capture's uncompressed pixel data (RGB or MONOCHROME2, 8 bit) as a PNG (sharp).
 */
import { readFile } from 'node:fs/promises';
import dcmjs, { type DicomDataset } from 'dcmjs';
import sharp from 'sharp';
import { parseDicom } from '../dicom/decode/read.js';

export interface SrNode {
  relationship?: string;
  valueType: string;
  name?: string;
  value?: string;
  children: SrNode[];
}

export interface SrDocument {
  title: string;
  completionFlag?: string;
  verificationFlag?: string;
  seriesDescription?: string;
  content: SrNode[];
}

type Nat = Record<string, unknown>;

const asArray = (v: unknown): Nat[] => (Array.isArray(v) ? (v as Nat[]) : v && typeof v === 'object' ? [v as Nat] : []);
const str = (v: unknown): string | undefined => {
  if (v === undefined || v === null) return undefined;
  if (Array.isArray(v)) return v.map((x) => str(x) ?? '').join('\\');
  if (typeof v === 'object') {
    const pn = v as { Alphabetic?: string };
    return pn.Alphabetic !== undefined ? String(pn.Alphabetic) : JSON.stringify(v);
  }
  return String(v);
};

function codeMeaning(seq: unknown): string | undefined {
  const item = asArray(seq)[0];
  if (!item) return undefined;
  return str(item.CodeMeaning) ?? (item.CodeValue ? `(${str(item.CodeValue)}, ${str(item.CodingSchemeDesignator)})` : undefined);
}

function nodeValue(item: Nat): string | undefined {
  switch (str(item.ValueType)) {
    case 'TEXT':
      return str(item.TextValue);
    case 'CODE':
      return codeMeaning(item.ConceptCodeSequence);
    case 'NUM': {
      const mv = asArray(item.MeasuredValueSequence)[0];
      if (!mv) return undefined;
      const unit = asArray(mv.MeasurementUnitsCodeSequence)[0];
      const u = unit ? (str(unit.CodeValue) ?? '') : '';
      return `${str(mv.NumericValue) ?? ''}${u && u !== '1' ? ` ${u}` : ''}`.trim();
    }
    case 'UIDREF':
      return str(item.UID);
    case 'DATETIME':
      return str(item.DateTime);
    case 'DATE':
      return str(item.Date);
    case 'TIME':
      return str(item.Time);
    case 'PNAME':
      return str(item.PersonName);
    case 'IMAGE':
    case 'COMPOSITE': {
      const ref = asArray(item.ReferencedSOPSequence)[0];
      if (!ref) return undefined;
      const frame = ref.ReferencedFrameNumber !== undefined ? ` frame ${str(ref.ReferencedFrameNumber)}` : '';
      return `${str(ref.ReferencedSOPInstanceUID) ?? ''}${frame}`;
    }
    default:
      return undefined;
  }
}

function walk(items: unknown, depth: number): SrNode[] {
  if (depth > 32) return [];
  return asArray(items).map((item) => {
    const node: SrNode = { valueType: str(item.ValueType) ?? '', children: walk(item.ContentSequence, depth + 1) };
    const rel = str(item.RelationshipType);
    const name = codeMeaning(item.ConceptNameCodeSequence);
    const value = nodeValue(item);
    if (rel) node.relationship = rel;
    if (name) node.name = name;
    if (value !== undefined) node.value = value;
    return node;
  });
}

export async function readSr(path: string): Promise<SrDocument> {
  const parsed = parseDicom(await readFile(path), { headerOnly: true });
  const ds = dcmjs.data.DicomMetaDictionary.naturalizeDataset(parsed.dataset) as Nat;
  const doc: SrDocument = {
    title: codeMeaning(ds.ConceptNameCodeSequence) ?? 'Structured report',
    content: walk(ds.ContentSequence, 0),
  };
  const cf = str(ds.CompletionFlag);
  const vf = str(ds.VerificationFlag);
  const sd = str(ds.SeriesDescription);
  if (cf) doc.completionFlag = cf;
  if (vf) doc.verificationFlag = vf;
  if (sd) doc.seriesDescription = sd;
  return doc;
}

/** The SR tree as indented text lines ("CONTAINS NUM Probability = 0.93"). */
export function srText(doc: SrDocument): string {
  const lines: string[] = [doc.title];
  const visit = (nodes: SrNode[], indent: string): void => {
    for (const n of nodes) {
      const head = [n.relationship, n.valueType].filter(Boolean).join(' ');
      lines.push(`${indent}${head}${n.name ? ` ${n.name}` : ''}${n.value !== undefined ? ` = ${n.value}` : ''}`);
      visit(n.children, `${indent}  `);
    }
  };
  visit(doc.content, '  ');
  return lines.join('\n');
}

const num = (ds: DicomDataset, tag: string): number | undefined => {
  const v = ds[tag]?.Value?.[0];
  return typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : undefined;
};
const text = (ds: DicomDataset, tag: string): string => String(ds[tag]?.Value?.[0] ?? '').trim();

/** PNG of an uncompressed 8-bit RGB or MONOCHROME1/2 Part-10 image (the SC heatmaps, the summary image). */
export async function part10ToPng(path: string): Promise<Buffer> {
  const parsed = parseDicom(await readFile(path));
  const ds = parsed.dataset;
  if (dcmjs.data.DicomMessage.isEncapsulated(parsed.transferSyntaxUid)) {
    throw new Error(`compressed pixel data (${parsed.transferSyntaxUid}) is not rendered`);
  }
  const rows = num(ds, '00280010');
  const cols = num(ds, '00280011');
  const spp = num(ds, '00280002') ?? 1;
  const bits = num(ds, '00280100') ?? 8;
  const planar = num(ds, '00280006') ?? 0;
  const photometric = text(ds, '00280004');
  const frame = ds['7FE00010']?.Value?.[0];
  if (!rows || !cols || !(frame instanceof ArrayBuffer)) throw new Error('no pixel data');
  if (bits !== 8) throw new Error(`BitsAllocated ${bits} is not rendered (8 only)`);
  const n = rows * cols;
  const src = new Uint8Array(frame, 0, Math.min(frame.byteLength, n * spp));
  if (src.length < n * spp) throw new Error('pixel data shorter than Rows × Columns × SamplesPerPixel');
  let raw: Uint8Array = src;
  if (spp === 3 && planar === 1) {
    raw = new Uint8Array(n * 3);
    for (let i = 0; i < n; i++) {
      raw[i * 3] = src[i]!;
      raw[i * 3 + 1] = src[n + i]!;
      raw[i * 3 + 2] = src[2 * n + i]!;
    }
  } else if (spp === 1 && photometric === 'MONOCHROME1') {
    raw = src.map((v) => 255 - v);
  } else if (spp !== 3 && spp !== 1) {
    throw new Error(`SamplesPerPixel ${spp} is not rendered`);
  }
  return sharp(Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength), { raw: { width: cols, height: rows, channels: spp as 1 | 3 } })
    .png()
    .toBuffer();
}
