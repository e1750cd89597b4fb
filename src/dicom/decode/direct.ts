/**
 * The scoring path's reader: from the bytes of a Part 10 file, only what decoding its image needs (the pixel
 * module, rescale, pixel spacing, slice thickness) and where its Pixel Data is, found with the element-header walk
 * of the other byte-level readers (encoding.ts readElementHeader) instead of dcmjs parsing the whole dataset into
 * objects. It reads the values the way dcmjs 0.51 reads them (the same numbers, the same trimming), into a small
 * dcmjs-shaped dataset, so that pixels.ts's checks and defaults apply unchanged.
 *
 * It reads files as plain as a scanner writes them and gives up (null) on anything else: no preamble, a file meta
 * without its group length or a length that disagrees, big endian, deflate, an encapsulated multi-frame, a VR other
 * than the standard one for an attribute it reads, an undefined-length UN, sequences nested deeper than the
 * nesting guard allows, a character set dcmjs would refuse, any length running past the end. The caller then
 * parses the file with dcmjs as before, so every odd or broken file gets exactly the answer (or the error) it got
 * before.
 */
import type { DicomDataset, DicomElement } from 'dcmjs';
import { readElementHeader, Tag, UNDEFINED_LENGTH } from '../encoding.js';
import { hasPart10Preamble, PART10_META_START, parseFileMeta } from '../part10.js';
import { TransferSyntax } from '../uids.js';
import { numberValue } from './header.js';
import { MAX_SEQUENCE_DEPTH } from './nesting-guard.js';

/** Where the image of a directly read file is. */
export interface DirectImage {
  transferSyntaxUid: string;
  /** The attributes read (dcmjs-shaped: tag → { vr, Value }), top level only. */
  dataset: DicomDataset;
  /** Native Pixel Data: its value. */
  native?: Uint8Array;
  /** Encapsulated Pixel Data: its fragments after the basic offset table. */
  fragments?: Uint8Array[];
}

/** Transfer syntaxes read directly: the two little-endian native ones, and encapsulated ones (explicit VR LE). */
const NATIVE_LE = new Set<string>([TransferSyntax.ImplicitVRLittleEndian, TransferSyntax.ExplicitVRLittleEndian]);
const NOT_DIRECT = new Set<string>([TransferSyntax.ExplicitVRBigEndian, TransferSyntax.DeflatedExplicitVRLittleEndian]);

type WantedVr = 'US' | 'CS' | 'IS' | 'DS';

/** The attributes read: tag → the VR dcmjs's dictionary gives it (and an explicit VR file must use), dcmjs's key. */
const WANTED: ReadonlyMap<number, { vr: WantedVr; key: string }> = new Map(
  (
    [
      [0x00280002, 'US'], // SamplesPerPixel
      [0x00280004, 'CS'], // PhotometricInterpretation
      [0x00280006, 'US'], // PlanarConfiguration
      [0x00280008, 'IS'], // NumberOfFrames
      [0x00280010, 'US'], // Rows
      [0x00280011, 'US'], // Columns
      [0x00280030, 'DS'], // PixelSpacing
      [0x00280100, 'US'], // BitsAllocated
      [0x00280101, 'US'], // BitsStored
      [0x00280102, 'US'], // HighBit
      [0x00280103, 'US'], // PixelRepresentation
      [0x00281052, 'DS'], // RescaleIntercept
      [0x00281053, 'DS'], // RescaleSlope
      [0x00180050, 'DS'], // SliceThickness
    ] as const
  ).map(([tag, vr]) => [tag, { vr, key: tag.toString(16).padStart(8, '0').toUpperCase() }]),
);

export const SPECIFIC_CHARACTER_SET = 0x00080005;
const SHARED_FUNCTIONAL_GROUPS = 0x52009229;
export const PIXEL_DATA = 0x7fe00010;
/** Character sets dcmjs 0.51 accepts (its encodingMapping), as written in the file: the common ones. */
export const CHARACTER_SETS = new Set(['', 'ISO_IR 6', 'ISO_IR 100', 'ISO_IR 192', 'ISO 2022 IR 6', 'ISO 2022 IR 100']);

/** Thrown inside the walk for anything it does not read; caught at the top (null). */
export class NotDirect extends Error {}

export function notDirect(): never {
  throw new NotDirect();
}

/** dcmjs's DS/IS formatting of one value: trimmed, stripped to [0-9.+-e], '' → null, else Number(). */
function formatNumber(s: string): number | null {
  const v = s.trim().replace(/[^0-9.\\\-+e]/gi, '');
  return v === '' ? null : Number(v);
}

function element(buf: Buffer, vr: WantedVr, start: number, length: number): DicomElement {
  if (vr === 'US') {
    if (length !== 2) notDirect(); // dcmjs gives 0 for an empty US, several values for a longer one
    return { vr, Value: [buf.readUInt16LE(start)] };
  }
  const parts = buf.toString('latin1', start, start + length).split('\\');
  if (vr === 'CS') return { vr, Value: parts.map((p) => p.trim()) };
  return { vr, Value: parts.map(formatNumber) };
}

export interface Walk {
  buf: Buffer;
  implicit: boolean;
}

/** Skips the items of a sequence whose value starts at p (defined length `len`, or undefined); returns its end. */
function skipSequence(w: Walk, p: number, len: number, depth: number): number {
  if (depth > MAX_SEQUENCE_DEPTH) notDirect();
  if (len !== UNDEFINED_LENGTH) {
    if (p + len > w.buf.length) notDirect();
    return p + len;
  }
  for (;;) {
    const h = readElementHeader(w.buf, p, true);
    if (!h) notDirect();
    p += 8;
    if (h.tag === Tag.SequenceDelimitation) return p;
    if (h.tag !== Tag.Item) notDirect();
    if (h.length !== UNDEFINED_LENGTH) {
      if (p + h.length > w.buf.length) notDirect();
      p += h.length;
    } else {
      p = skipDataset(w, p, depth);
    }
  }
}

/** Skips the elements of an undefined-length item from p to its item delimiter; returns the position after it. */
function skipDataset(w: Walk, p: number, depth: number): number {
  for (;;) {
    const h = readElementHeader(w.buf, p, w.implicit);
    if (!h) notDirect();
    if (h.tag === Tag.ItemDelimitation) return p + 8;
    if (h.tag >>> 16 === 0xfffe) notDirect();
    p = skipValue(w, h.vr, h.length, p + h.headerLength, depth);
  }
}

export function skipValue(w: Walk, vr: string, length: number, q: number, depth: number): number {
  if (length === UNDEFINED_LENGTH) {
    // a sequence (implicit VR: an undefined length is one); an undefined-length UN holds implicit VR data: not read
    if (vr !== 'SQ' && vr !== '') notDirect();
    return skipSequence(w, q, length, depth + 1);
  }
  if (q + length > w.buf.length) notDirect();
  return q + length;
}

/** The fragments of encapsulated Pixel Data whose first item starts at p; returns them and the end. */
function fragmentsAt(w: Walk, p: number): { fragments: Uint8Array[]; end: number } {
  const fragments: Uint8Array[] = [];
  let first = true;
  for (;;) {
    const h = readElementHeader(w.buf, p, true);
    if (!h) notDirect();
    p += 8;
    if (h.tag === Tag.SequenceDelimitation) {
      if (h.length !== 0 || first) notDirect();
      return { fragments, end: p };
    }
    if (h.tag !== Tag.Item || h.length === UNDEFINED_LENGTH || p + h.length > w.buf.length) notDirect();
    if (!first) fragments.push(w.buf.subarray(p, p + h.length));
    first = false;
    p += h.length;
  }
}

function walk(buf: Buffer): DirectImage | null {
  if (!hasPart10Preamble(buf)) return null;
  // dcmjs reads the file meta by its group length, which must come first
  const gl = readElementHeader(buf, PART10_META_START, false);
  if (gl?.tag !== 0x00020000 || gl.vr !== 'UL' || gl.length !== 4 || buf.length < PART10_META_START + 12) return null;
  const meta = parseFileMeta(buf);
  if (!meta || meta.end !== PART10_META_START + 12 + buf.readUInt32LE(PART10_META_START + 8)) return null;
  const ts = meta.transferSyntaxUid;
  if (!ts || NOT_DIRECT.has(ts)) return null;
  const native = NATIVE_LE.has(ts);
  const w: Walk = { buf, implicit: ts === TransferSyntax.ImplicitVRLittleEndian };
  const ds: DicomDataset = {};
  const out: DirectImage = { transferSyntaxUid: ts, dataset: ds };
  let sharedGroups = false;
  let p = meta.end;
  while (p < buf.length) {
    const h = readElementHeader(buf, p, w.implicit);
    if (!h || h.tag >>> 16 === 0xfffe || h.tag >>> 16 === 0x0002) return null;
    const q = p + h.headerLength;
    const want = WANTED.get(h.tag);
    if (h.tag === PIXEL_DATA) {
      if (h.length === UNDEFINED_LENGTH) {
        if (native) return null;
        const f = fragmentsAt(w, q);
        out.fragments = f.fragments;
        delete out.native;
        p = f.end;
      } else {
        if (!native || q + h.length > buf.length) return null;
        out.native = buf.subarray(q, q + h.length);
        delete out.fragments;
        p = q + h.length;
      }
      continue;
    }
    if (want) {
      if ((!w.implicit && h.vr !== want.vr) || h.length === UNDEFINED_LENGTH || q + h.length > buf.length) return null;
      ds[want.key] = element(buf, want.vr, q, h.length);
      p = q + h.length;
      continue;
    }
    if (h.tag === SPECIFIC_CHARACTER_SET) {
      if ((!w.implicit && h.vr !== 'CS') || h.length === UNDEFINED_LENGTH || q + h.length > buf.length) return null;
      const values = buf.toString('latin1', q, q + h.length).split('\\');
      if (values.length !== 1 || !CHARACTER_SETS.has((values[0] as string).trim())) return null;
    } else if (h.tag === SHARED_FUNCTIONAL_GROUPS) {
      sharedGroups = true;
    }
    p = skipValue(w, h.vr, h.length, q, 0);
  }
  if (!out.native && !out.fragments) return null;
  // rescale may come from the shared functional groups (enhanced objects): left to the full parse
  if (sharedGroups && (numberValue(ds, '00281053') === null || numberValue(ds, '00281052') === null)) return null;
  return out;
}

/** The image attributes and Pixel Data of a plain Part 10 file, or null when it must be parsed in full (dcmjs). */
export function readDirect(bytes: Uint8Array): DirectImage | null {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  try {
    return walk(buf);
  } catch (err) {
    if (err instanceof NotDirect) return null;
    throw err;
  }
}
