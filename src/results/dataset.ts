/**
 * A small, deterministic DICOM dataset writer (Explicit VR Little Endian) for the result objects.
 *
 * A dataset is a map from tag to the element's complete encoding (header + value). Elements are
 * written in ascending tag order, sequences and items with defined lengths, so the same content
 * always gives the same bytes. Elements copied from a source instance go in as they were encoded
 * there (see source.ts), which keeps patient and study attributes byte for byte.
 */
import { LONG_LENGTH_VRS } from '../dicom/encoding.js';
import { buildPart10Header } from '../dicom/spool/file-meta.js';
import { TransferSyntax } from '../dicom/uids.js';

export type Dataset = Map<number, Buffer>;

export function tagOf(group: number, element: number): number {
  return ((group << 16) | element) >>> 0;
}

function header(tag: number, vr: string, length: number): Buffer {
  const long = LONG_LENGTH_VRS.has(vr);
  const h = Buffer.alloc(long ? 12 : 8);
  h.writeUInt16LE(tag >>> 16, 0);
  h.writeUInt16LE(tag & 0xffff, 2);
  h.write(vr, 4, 'latin1');
  if (long) h.writeUInt32LE(length >>> 0, 8);
  else {
    if (length > 0xffff) throw new Error(`value of ${tagName(tag)} (${vr}) too long: ${length} bytes`);
    h.writeUInt16LE(length, 6);
  }
  return h;
}

export function tagName(tag: number): string {
  const hex = (n: number) => n.toString(16).toUpperCase().padStart(4, '0');
  return `(${hex(tag >>> 16)},${hex(tag & 0xffff)})`;
}

/** Encodes one element from its value bytes (padded to even length here). */
export function encodeElement(tag: number, vr: string, value: Buffer, pad = 0x20): Buffer {
  const v = value.length % 2 ? Buffer.concat([value, Buffer.from([pad])]) : value;
  return Buffer.concat([header(tag, vr, v.length), v]);
}

/** Our own text is plain ASCII, valid in every character set a source may declare. */
export function ascii(s: string, newlines = false): string {
  return s.normalize('NFKD').replace(newlines ? /[^\x20-\x7e\r\n]/g : /[^\x20-\x7e]/g, '?');
}

const MAX_CHARS: Record<string, number> = { AE: 16, AS: 4, CS: 16, DA: 8, DS: 16, IS: 12, LO: 64, SH: 16, TM: 14, UI: 64, PN: 64 };

/** A string element (several values joined by backslash). */
export function setString(ds: Dataset, tag: number, vr: string, value: string | readonly string[] | null | undefined): void {
  const values = value === null || value === undefined ? [] : typeof value === 'string' ? [value] : [...value];
  const max = MAX_CHARS[vr];
  const parts = values.map((v) => {
    let s = ascii(v, vr === 'UT' || vr === 'LT' || vr === 'ST').replace(/\\/g, '/');
    if (max !== undefined && s.length > max) s = s.slice(0, max).trimEnd();
    return s;
  });
  ds.set(tag, encodeElement(tag, vr, Buffer.from(parts.join('\\'), 'latin1'), vr === 'UI' ? 0x00 : 0x20));
}

/** A DS value: at most 16 characters. */
export function formatDs(n: number, decimals = 6): string {
  for (let d = decimals; d >= 0; d--) {
    const s = String(Number(n.toFixed(d)));
    if (s.length <= 16) return s;
  }
  throw new Error(`DS value out of range: ${n}`);
}

export function setUS(ds: Dataset, tag: number, ...values: number[]): void {
  const b = Buffer.alloc(values.length * 2);
  values.forEach((v, i) => {
    b.writeUInt16LE(v, i * 2);
  });
  ds.set(tag, encodeElement(tag, 'US', b));
}

/** An FL element (32-bit floats, e.g. SCOORD Graphic Data). */
export function setFL(ds: Dataset, tag: number, values: readonly number[]): void {
  const b = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => {
    b.writeFloatLE(v, i * 4);
  });
  ds.set(tag, encodeElement(tag, 'FL', b));
}

export function setOB(ds: Dataset, tag: number, bytes: Buffer): void {
  ds.set(tag, encodeElement(tag, 'OB', bytes, 0x00));
}

/**
 * An OB element of `length` bytes (padded to even with 0) whose value `fill` writes in place, zeroed before:
 * a large value (a Segmentation's 40 MB of frames for a 600-slice series) is then allocated once, not built
 * and copied into its element.
 */
export function setOBInPlace(ds: Dataset, tag: number, length: number, fill: (value: Buffer) => void): void {
  const even = length + (length % 2);
  const h = header(tag, 'OB', even);
  const el = Buffer.alloc(h.length + even);
  h.copy(el, 0);
  fill(el.subarray(h.length, h.length + length));
  ds.set(tag, el);
}

/** The elements of a dataset in ascending tag order. */
function elements(ds: Dataset): Buffer[] {
  return [...ds.keys()].sort((a, b) => a - b).map((t) => ds.get(t) as Buffer);
}

/** Encodes a dataset: elements in ascending tag order. */
export function encodeDataset(ds: Dataset): Buffer {
  return Buffer.concat(elements(ds));
}

const ITEM = Buffer.from([0xfe, 0xff, 0x00, 0xe0]);

/** A sequence of defined length whose items have defined lengths. */
export function setSequence(ds: Dataset, tag: number, items: readonly Dataset[]): void {
  ds.set(tag, sequenceElement(tag, items));
}

/** setSequence's element encoding (header + items), for an element shared by several datasets. */
export function sequenceElement(tag: number, items: readonly Dataset[]): Buffer {
  const parts: Buffer[] = [];
  for (const item of items) {
    const body = encodeDataset(item);
    const len = Buffer.alloc(4);
    len.writeUInt32LE(body.length, 0);
    parts.push(ITEM, len, body);
  }
  const value = Buffer.concat(parts);
  return Buffer.concat([header(tag, 'SQ', value.length), value]);
}

/** A code sequence item (Code Value, Coding Scheme Designator, Code Meaning). */
export interface Code {
  value: string;
  scheme: string;
  meaning: string;
}

export function codeItem(c: Code): Dataset {
  const ds: Dataset = new Map();
  if (c.value.length > 16)
    setString(ds, tagOf(0x0008, 0x0119), 'UC', c.value); // Long Code Value
  else setString(ds, tagOf(0x0008, 0x0100), 'SH', c.value);
  setString(ds, tagOf(0x0008, 0x0102), 'SH', c.scheme);
  setString(ds, tagOf(0x0008, 0x0104), 'LO', c.meaning);
  return ds;
}

export function setCode(ds: Dataset, tag: number, c: Code): void {
  setSequence(ds, tag, [codeItem(c)]);
}

/** Preamble, file meta (Explicit VR Little Endian) and dataset: a complete Part-10 file. */
export function part10(ds: Dataset, sopClassUid: string, sopInstanceUid: string, sourceAeTitle: string): Buffer {
  return Buffer.concat(part10Chunks(ds, sopClassUid, sopInstanceUid, sourceAeTitle));
}

/**
 * part10 as the pieces that make the file, in order (the file meta, then every element): written with one
 * writev, a large element (a Segmentation's frames) goes to disk without being copied into a file-sized buffer.
 */
export function part10Chunks(ds: Dataset, sopClassUid: string, sopInstanceUid: string, sourceAeTitle: string): Buffer[] {
  return [
    buildPart10Header({ sopClassUid, sopInstanceUid, transferSyntaxUid: TransferSyntax.ExplicitVRLittleEndian, sourceAeTitle }),
    ...elements(ds),
  ];
}
