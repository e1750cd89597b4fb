/**
 * Reads a source instance (a spooled CT slice) for the result objects: the patient and study
 * modules as they are encoded there (copied verbatim into every result object) and the few
 * attributes the results need (geometry, numbers, time zone).
 *
 * Walks the top-level elements of the dataset (Explicit or Implicit VR Little Endian, the syntaxes
 * the listener stores; the datasets of encapsulated syntaxes are explicit VR little endian too)
 * up to Pixel Data. Explicit VR elements are kept byte for byte; implicit VR ones get the VR of
 * the data dictionary and keep their value bytes (nested sequence content is re-encoded the same
 * way), which is the same value in the result's Explicit VR Little Endian.
 */
import { readFile } from 'node:fs/promises';
import { standardVr } from '../dicom/dictionary.js';
import { LONG_LENGTH_VRS, readElementHeader, Tag, UNDEFINED_LENGTH } from '../dicom/encoding.js';
import { type FileMeta, hasPart10Preamble, parseFileMeta } from '../dicom/part10.js';
import { isWalkableSyntax, TransferSyntax } from '../dicom/uids.js';
import { encodeElement, tagName, tagOf } from './dataset.js';

/** Patient, Clinical Trial Subject, General Study, Patient Study and Clinical Trial Study modules (PS3.3 C.7.1.1, C.7.1.3, C.7.2.1-3). */
const COPIED: ReadonlySet<number> = new Set([
  // SOP Common: the character set the copied strings are encoded in, and the time zone of their dates and times.
  tagOf(0x0008, 0x0005),
  tagOf(0x0008, 0x0201),
  // Patient
  tagOf(0x0008, 0x1120),
  tagOf(0x0010, 0x0010),
  tagOf(0x0010, 0x0020),
  tagOf(0x0010, 0x0021),
  tagOf(0x0010, 0x0022),
  tagOf(0x0010, 0x0024),
  tagOf(0x0010, 0x0026),
  tagOf(0x0010, 0x0027),
  tagOf(0x0010, 0x0030),
  tagOf(0x0010, 0x0032),
  tagOf(0x0010, 0x0033),
  tagOf(0x0010, 0x0034),
  tagOf(0x0010, 0x0035),
  tagOf(0x0010, 0x0040),
  tagOf(0x0010, 0x0200),
  tagOf(0x0010, 0x0212),
  tagOf(0x0010, 0x0213),
  tagOf(0x0010, 0x0216),
  tagOf(0x0010, 0x0218),
  tagOf(0x0010, 0x0219),
  tagOf(0x0010, 0x0221),
  tagOf(0x0010, 0x1001),
  tagOf(0x0010, 0x1002),
  tagOf(0x0010, 0x1100),
  tagOf(0x0010, 0x2160),
  tagOf(0x0010, 0x2201),
  tagOf(0x0010, 0x2202),
  tagOf(0x0010, 0x2292),
  tagOf(0x0010, 0x2293),
  tagOf(0x0010, 0x2294),
  tagOf(0x0010, 0x2297),
  tagOf(0x0010, 0x2298),
  tagOf(0x0010, 0x2299),
  tagOf(0x0010, 0x4000),
  tagOf(0x0012, 0x0062),
  tagOf(0x0012, 0x0063),
  tagOf(0x0012, 0x0064),
  // Clinical Trial Subject
  tagOf(0x0012, 0x0010),
  tagOf(0x0012, 0x0020),
  tagOf(0x0012, 0x0021),
  tagOf(0x0012, 0x0030),
  tagOf(0x0012, 0x0031),
  tagOf(0x0012, 0x0040),
  tagOf(0x0012, 0x0042),
  tagOf(0x0012, 0x0081),
  tagOf(0x0012, 0x0082),
  // General Study
  tagOf(0x0008, 0x0020),
  tagOf(0x0008, 0x0030),
  tagOf(0x0008, 0x0050),
  tagOf(0x0008, 0x0051),
  tagOf(0x0008, 0x0090),
  tagOf(0x0008, 0x0096),
  tagOf(0x0008, 0x009c),
  tagOf(0x0008, 0x009d),
  tagOf(0x0008, 0x1030),
  tagOf(0x0008, 0x1032),
  tagOf(0x0008, 0x1048),
  tagOf(0x0008, 0x1049),
  tagOf(0x0008, 0x1060),
  tagOf(0x0008, 0x1062),
  tagOf(0x0008, 0x1110),
  tagOf(0x0020, 0x000d),
  tagOf(0x0020, 0x0010),
  tagOf(0x0032, 0x1034),
  tagOf(0x0040, 0x1012),
  // Patient Study
  tagOf(0x0008, 0x1080),
  tagOf(0x0008, 0x1084),
  tagOf(0x0010, 0x1010),
  tagOf(0x0010, 0x1020),
  tagOf(0x0010, 0x1021),
  tagOf(0x0010, 0x1022),
  tagOf(0x0010, 0x1023),
  tagOf(0x0010, 0x1024),
  tagOf(0x0010, 0x1030),
  tagOf(0x0010, 0x2000),
  tagOf(0x0010, 0x2110),
  tagOf(0x0010, 0x2180),
  tagOf(0x0010, 0x21a0),
  tagOf(0x0010, 0x21b0),
  tagOf(0x0010, 0x21c0),
  tagOf(0x0010, 0x21d0),
  tagOf(0x0010, 0x2203),
  tagOf(0x0038, 0x0010),
  tagOf(0x0038, 0x0014),
  tagOf(0x0038, 0x0060),
  tagOf(0x0038, 0x0062),
  tagOf(0x0038, 0x0064),
  tagOf(0x0038, 0x0500),
  tagOf(0x0038, 0x0502),
  // Clinical Trial Study
  tagOf(0x0012, 0x0050),
  tagOf(0x0012, 0x0051),
  tagOf(0x0012, 0x0052),
  tagOf(0x0012, 0x0053),
  tagOf(0x0012, 0x0083),
]);

/** Type 2 attributes of the Patient and General Study modules: present (empty) even when the source lacks them. */
export const TYPE2_PATIENT_STUDY: ReadonlyArray<[number, string]> = [
  [tagOf(0x0010, 0x0010), 'PN'],
  [tagOf(0x0010, 0x0020), 'LO'],
  [tagOf(0x0010, 0x0030), 'DA'],
  [tagOf(0x0010, 0x0040), 'CS'],
  [tagOf(0x0008, 0x0020), 'DA'],
  [tagOf(0x0008, 0x0030), 'TM'],
  [tagOf(0x0008, 0x0090), 'PN'],
  [tagOf(0x0020, 0x0010), 'SH'],
  [tagOf(0x0008, 0x0050), 'SH'],
];

const VALUES: ReadonlySet<number> = new Set([
  tagOf(0x0008, 0x0016),
  tagOf(0x0008, 0x0018),
  tagOf(0x0008, 0x0060),
  tagOf(0x0020, 0x000e),
  tagOf(0x0020, 0x0011),
  tagOf(0x0020, 0x0013),
  tagOf(0x0020, 0x0037),
  tagOf(0x0028, 0x0030),
  tagOf(0x0028, 0x0010),
  tagOf(0x0028, 0x0011),
  tagOf(0x0008, 0x0201),
  tagOf(0x0018, 0x0015),
  tagOf(0x0020, 0x000d),
  tagOf(0x0008, 0x0023),
  tagOf(0x0008, 0x0033),
  tagOf(0x0020, 0x0052),
  tagOf(0x0018, 0x0050),
  tagOf(0x0028, 0x1052),
  tagOf(0x0028, 0x1053),
  tagOf(0x0028, 0x1054),
]);

const PIXEL_DATA = tagOf(0x7fe0, 0x0010);

export interface SourceInstance {
  /** Encoded elements (Explicit VR LE) of the copied modules, by tag. */
  copied: Map<number, Buffer>;
  sopClassUid: string;
  sopInstanceUid: string;
  studyInstanceUid: string;
  seriesInstanceUid: string;
  modality: string | null;
  seriesNumber: number | null;
  instanceNumber: number | null;
  imageOrientationPatient: number[] | null;
  pixelSpacing: string | null;
  rows: number | null;
  columns: number | null;
  timezoneOffset: string | null;
  bodyPartExamined: string | null;
  contentDate: string | null;
  contentTime: string | null;
  /** Frame of Reference UID (a Segmentation shares the CT's). */
  frameOfReferenceUid: string | null;
  /** SliceThickness as stored (DS). */
  sliceThickness: string | null;
  /** Rescale Intercept, Slope and Type as stored (a presentation state's Modality LUT repeats them). */
  rescale: { intercept: string; slope: string; type: string | null } | null;
}

/** VR of a tag in the data dictionary (dictionary.ts); group lengths UL; UN when unknown, private or ambiguous. */
function dictionaryVr(tag: number): string {
  if ((tag >>> 16) % 2 === 1) return 'UN';
  if ((tag & 0xffff) === 0) return 'UL';
  return standardVr(tag) ?? 'UN';
}

class Reader {
  constructor(
    readonly buf: Buffer,
    readonly explicit: boolean,
  ) {}

  /** Reads one element header at `p`. */
  head(p: number): { tag: number; vr: string | null; length: number; valueAt: number } {
    const b = this.buf;
    const h = readElementHeader(b, p, !this.explicit);
    if (h === undefined) throw new Error('dataset truncated');
    if (h === null)
      throw new Error(`unknown VR "${b.toString('latin1', p + 4, p + 6)}" at ${tagName(tagOf(b.readUInt16LE(p), b.readUInt16LE(p + 2)))}`);
    return { tag: h.tag, vr: h.vr === '' ? null : h.vr, length: h.length, valueAt: p + h.headerLength };
  }

  /** End offset of a sequence value (or UN of undefined length) starting at `p`. */
  seqEnd(p: number, length: number): number {
    if (length !== UNDEFINED_LENGTH) return p + length;
    let q = p;
    for (;;) {
      const h = this.head(q);
      if (h.tag === Tag.SequenceDelimitation) return h.valueAt;
      if (h.tag !== Tag.Item) throw new Error(`expected an item in a sequence, found ${tagName(h.tag)}`);
      q = h.length === UNDEFINED_LENGTH ? this.itemEnd(h.valueAt) : h.valueAt + h.length;
    }
  }

  /** End offset (after the delimiter) of an undefined-length item starting at `p`. */
  itemEnd(p: number): number {
    let q = p;
    for (;;) {
      const h = this.head(q);
      if (h.tag === Tag.ItemDelimitation) return h.valueAt;
      q = this.elementEnd(h);
    }
  }

  elementEnd(h: { tag: number; vr: string | null; length: number; valueAt: number }): number {
    if (h.length === UNDEFINED_LENGTH) return this.seqEnd(h.valueAt, h.length);
    return h.valueAt + h.length;
  }

  /** Re-encodes implicit VR items [p, end) as explicit VR (defined lengths). */
  transcodeItems(p: number, length: number): Buffer {
    const out: Buffer[] = [];
    let q = p;
    const end = length === UNDEFINED_LENGTH ? Infinity : p + length;
    while (q < end) {
      const h = this.head(q);
      if (h.tag === Tag.SequenceDelimitation) break;
      if (h.tag !== Tag.Item) throw new Error(`expected an item, found ${tagName(h.tag)}`);
      const parts: Buffer[] = [];
      let r = h.valueAt;
      const itemEnd = h.length === UNDEFINED_LENGTH ? Infinity : h.valueAt + h.length;
      while (r < itemEnd) {
        const e = this.head(r);
        if (e.tag === Tag.ItemDelimitation) {
          r = e.valueAt;
          break;
        }
        parts.push(this.transcode(e));
        r = this.elementEnd(e);
      }
      const body = Buffer.concat(parts);
      const ih = Buffer.alloc(8);
      ih.writeUInt16LE(0xfffe, 0);
      ih.writeUInt16LE(0xe000, 2);
      ih.writeUInt32LE(body.length, 4);
      out.push(ih, body);
      q = itemEnd === Infinity ? r : itemEnd;
    }
    return Buffer.concat(out);
  }

  /** One implicit VR element as explicit VR. */
  transcode(h: { tag: number; vr: string | null; length: number; valueAt: number }): Buffer {
    let vr = dictionaryVr(h.tag);
    if (vr === 'SQ' || h.length === UNDEFINED_LENGTH) {
      const items = this.transcodeItems(h.valueAt, h.length);
      const head = Buffer.alloc(12);
      head.writeUInt16LE(h.tag >>> 16, 0);
      head.writeUInt16LE(h.tag & 0xffff, 2);
      head.write('SQ', 4, 'latin1');
      head.writeUInt32LE(items.length, 8);
      return Buffer.concat([head, items]);
    }
    const value = this.buf.subarray(h.valueAt, h.valueAt + h.length);
    if (!LONG_LENGTH_VRS.has(vr) && value.length > 0xffff) vr = 'UN';
    return encodeElement(h.tag, vr, value);
  }
}

function text(b: Buffer): string {
  return b
    .toString('latin1')
    .replace(/[\0 ]+$/, '')
    .trim();
}

/** Reads the source instance at `file` (Part 10, Explicit or Implicit VR Little Endian dataset). */
export async function readSourceInstance(file: string): Promise<SourceInstance> {
  return parseSourceInstance(await readFile(file), file);
}

export function parseSourceInstance(buf: Buffer, name = 'source'): SourceInstance {
  if (!hasPart10Preamble(buf)) throw new Error(`${name}: not a Part-10 DICOM file`);
  // File meta: the transfer syntax and the dataset start.
  const meta = parseFileMeta(buf) as FileMeta;
  let p = meta.end;
  const ts = meta.transferSyntaxUid;
  if (!isWalkableSyntax(ts) || ts === '') {
    throw new Error(`${name}: transfer syntax ${ts || '(none)'} is not supported for result objects`);
  }
  const explicit = ts !== TransferSyntax.ImplicitVRLittleEndian;
  const r = new Reader(buf, explicit);
  const copied = new Map<number, Buffer>();
  const values = new Map<number, string>();
  while (p + 8 <= buf.length) {
    const h = r.head(p);
    if (h.tag >= PIXEL_DATA) break;
    const end = r.elementEnd(h);
    if (COPIED.has(h.tag)) {
      if (explicit) {
        copied.set(h.tag, buf.subarray(p, end));
      } else {
        copied.set(h.tag, r.transcode(h));
      }
    }
    if (VALUES.has(h.tag) && h.length !== UNDEFINED_LENGTH) values.set(h.tag, text(buf.subarray(h.valueAt, h.valueAt + h.length)));
    if (h.tag === tagOf(0x0028, 0x0010) || h.tag === tagOf(0x0028, 0x0011)) {
      values.set(h.tag, String(h.length >= 2 ? buf.readUInt16LE(h.valueAt) : ''));
    }
    p = end;
  }
  const num = (t: number): number | null => {
    const v = values.get(t);
    if (v === undefined || v === '') return null;
    const n = Number(v.split('\\')[0]);
    return Number.isFinite(n) ? n : null;
  };
  const str = (t: number): string | null => values.get(t) || null;
  const iop = str(tagOf(0x0020, 0x0037))?.split('\\').map(Number) ?? null;
  const required = (t: number, what: string): string => {
    const v = str(t);
    if (!v) throw new Error(`${name}: no ${what}`);
    return v;
  };
  return {
    copied,
    sopClassUid: required(tagOf(0x0008, 0x0016), 'SOP Class UID'),
    sopInstanceUid: required(tagOf(0x0008, 0x0018), 'SOP Instance UID'),
    studyInstanceUid: required(tagOf(0x0020, 0x000d), 'Study Instance UID'),
    seriesInstanceUid: required(tagOf(0x0020, 0x000e), 'Series Instance UID'),
    modality: str(tagOf(0x0008, 0x0060)),
    seriesNumber: num(tagOf(0x0020, 0x0011)),
    instanceNumber: num(tagOf(0x0020, 0x0013)),
    imageOrientationPatient: iop && iop.length === 6 && iop.every(Number.isFinite) ? iop : null,
    pixelSpacing: str(tagOf(0x0028, 0x0030)),
    rows: num(tagOf(0x0028, 0x0010)),
    columns: num(tagOf(0x0028, 0x0011)),
    timezoneOffset: str(tagOf(0x0008, 0x0201)),
    bodyPartExamined: str(tagOf(0x0018, 0x0015)),
    contentDate: str(tagOf(0x0008, 0x0023)),
    contentTime: str(tagOf(0x0008, 0x0033)),
    frameOfReferenceUid: str(tagOf(0x0020, 0x0052)),
    sliceThickness: str(tagOf(0x0018, 0x0050)),
    rescale:
      str(tagOf(0x0028, 0x1052)) !== null && str(tagOf(0x0028, 0x1053)) !== null
        ? { intercept: str(tagOf(0x0028, 0x1052)) as string, slope: str(tagOf(0x0028, 0x1053)) as string, type: str(tagOf(0x0028, 0x1054)) }
        : null,
  };
}
