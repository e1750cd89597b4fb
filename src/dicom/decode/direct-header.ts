/**
 * Discovery's header reader: the attributes of DicomHeader read from the first bytes of a plain Part 10 file with
 * the element-header walk of direct.ts, stopping at Pixel Data, instead of reading the whole file and letting dcmjs
 * parse its header into objects. Values are read the way dcmjs 0.51 reads them (latin1 text, split at backslashes,
 * UI stripped to [0-9.], CS trimmed, IS/DS through dcmjs's number formatting, TM as stored) into a small
 * dcmjs-shaped dataset that readHeader (header.ts) turns into the DicomHeader, so the answers are the same.
 *
 * It gives up (null: the caller parses the file with dcmjs as before) on anything else: what direct.ts gives up on
 * (no preamble, odd file meta, big endian, deflate, a transfer syntax it does not know, a VR other than the
 * standard one for an attribute it reads, an undefined-length UN, deep nesting, a character set dcmjs might
 * refuse, a length running past the end of the file), a sequence or unknown value that holds the Pixel Data tag,
 * an empty Image Type or a US that is not one value, and a file whose SOP Class or SOP Instance UID would come from
 * the file meta. 'more' asks for more of the file when the bytes end before Pixel Data.
 */
import type { DicomDataset, DicomElement } from 'dcmjs';
import { readElementHeader, UNDEFINED_LENGTH } from '../encoding.js';
import { hasPart10Preamble, PART10_META_START, parseFileMeta } from '../part10.js';
import { TransferSyntax } from '../uids.js';
import { ENCAPSULATED_SYNTAXES } from './codecs.js';
import { CHARACTER_SETS, NotDirect, notDirect, SPECIFIC_CHARACTER_SET, skipValue, type Walk } from './direct.js';
import { type DicomHeader, readHeader, stringValue } from './header.js';

type HeaderVr = 'US' | 'CS' | 'IS' | 'DS' | 'UI' | 'TM';

/** The attributes readHeader reads: tag → the VR dcmjs's dictionary gives it (and an explicit VR file must use). */
const WANTED: ReadonlyMap<number, { vr: HeaderVr; key: string }> = new Map(
  (
    [
      [0x00080008, 'CS'], // ImageType
      [0x00080016, 'UI'], // SOPClassUID
      [0x00080018, 'UI'], // SOPInstanceUID
      [0x00080032, 'TM'], // AcquisitionTime
      [0x00080033, 'TM'], // ContentTime
      [0x00080060, 'CS'], // Modality
      [0x0020000d, 'UI'], // StudyInstanceUID
      [0x0020000e, 'UI'], // SeriesInstanceUID
      [0x00200012, 'IS'], // AcquisitionNumber
      [0x00200013, 'IS'], // InstanceNumber
      [0x00200032, 'DS'], // ImagePositionPatient
      [0x00200037, 'DS'], // ImageOrientationPatient
      [0x00280008, 'IS'], // NumberOfFrames
      [0x00280010, 'US'], // Rows
      [0x00280011, 'US'], // Columns
      [0x00280030, 'DS'], // PixelSpacing
      [0x00180050, 'DS'], // SliceThickness
    ] as const
  ).map(([tag, vr]) => [tag, { vr, key: tag.toString(16).padStart(8, '0').toUpperCase() }]),
);

/** Transfer syntaxes read here: the two little-endian native ones and the encapsulated ones the decoder knows. */
const READABLE = new Set<string>([
  TransferSyntax.ImplicitVRLittleEndian,
  TransferSyntax.ExplicitVRLittleEndian,
  ...Object.keys(ENCAPSULATED_SYNTAXES),
]);

/** (7FE0,0010) as it is stored in little endian: found inside a skipped value, the file is left to dcmjs. */
const PIXEL_DATA = 0x7fe00010;
const PIXEL_DATA_BYTES = Buffer.from([0xe0, 0x7f, 0x10, 0x00]);

/** Thrown when the bytes end before Pixel Data and the file goes on. */
class NeedMore extends Error {}

/** dcmjs's DS/IS formatting of one value: trimmed, stripped to [0-9.+-e], '' → null, else Number(). */
function formatNumber(s: string): number | null {
  const v = s.trim().replace(/[^0-9.\\\-+e]/gi, '');
  return v === '' ? null : Number(v);
}

/** One attribute as dcmjs 0.51 gives it (its Value array), or notDirect where that is not plain. */
function element(buf: Buffer, vr: HeaderVr, start: number, length: number): DicomElement {
  if (vr === 'US') {
    if (length !== 2) notDirect(); // dcmjs gives 0 for an empty US, several values for a longer one
    return { vr, Value: [buf.readUInt16LE(start)] };
  }
  let end = start + length;
  // UI: dcmjs drops one trailing NUL pad byte before splitting (readPaddedAsciiString)
  if (vr === 'UI' && length > 0 && buf[end - 1] === 0) end -= 1;
  const parts = buf.toString('latin1', start, end).split('\\');
  if (vr === 'CS') return { vr, Value: parts.map((p) => p.trim()) };
  if (vr === 'UI') return { vr, Value: parts.map((p) => p.replace(/[^0-9.]/g, '')) };
  if (vr === 'TM') {
    // dcmjs right-trims the whole value before splitting; readHeader reads the first value only, trimmed
    return { vr, Value: buf.toString('latin1', start, end).replace(/\s*$/g, '').split('\\') };
  }
  return { vr, Value: parts.map(formatNumber) };
}

function walk(buf: Buffer, atEof: boolean): DicomHeader | null {
  if (buf.length < PART10_META_START + 12 && !atEof) throw new NeedMore();
  if (!hasPart10Preamble(buf)) return null;
  const gl = readElementHeader(buf, PART10_META_START, false);
  if (!gl && !atEof) throw new NeedMore();
  if (gl?.tag !== 0x00020000 || gl.vr !== 'UL' || gl.length !== 4 || buf.length < PART10_META_START + 12) return null;
  const metaEnd = PART10_META_START + 12 + buf.readUInt32LE(PART10_META_START + 8);
  if (metaEnd > buf.length) {
    if (!atEof) throw new NeedMore();
    return null;
  }
  const meta = parseFileMeta(buf.subarray(0, metaEnd));
  if (!meta || meta.end !== metaEnd) return null;
  const ts = meta.transferSyntaxUid;
  if (!READABLE.has(ts)) return null;
  const w: Walk = { buf, implicit: ts === TransferSyntax.ImplicitVRLittleEndian };
  const ds: DicomDataset = {};
  let hasPixelData = false;
  let p = meta.end;
  for (;;) {
    if (p >= buf.length) {
      if (!atEof) throw new NeedMore();
      break;
    }
    if (buf.length - p >= 4 && ((buf.readUInt16LE(p) << 16) | buf.readUInt16LE(p + 2)) >>> 0 === PIXEL_DATA) {
      // dcmjs (untilTag) stops at the tag, without reading its VR, length or value
      hasPixelData = true;
      break;
    }
    const h = readElementHeader(buf, p, w.implicit);
    if (h === undefined && !atEof) throw new NeedMore();
    if (!h || h.tag >>> 16 === 0xfffe || h.tag >>> 16 === 0x0002) return null;
    const q = p + h.headerLength;
    if (h.length !== UNDEFINED_LENGTH && q + h.length > buf.length) {
      if (!atEof) throw new NeedMore();
      return null;
    }
    const want = WANTED.get(h.tag);
    if (want) {
      if ((!w.implicit && h.vr !== want.vr) || h.length === UNDEFINED_LENGTH) return null;
      if (h.tag === 0x00080008 && h.length === 0) return null; // dcmjs's empty Image Type: left to it
      ds[want.key] = element(buf, want.vr, q, h.length);
      p = q + h.length;
      continue;
    }
    if (h.tag === SPECIFIC_CHARACTER_SET) {
      if ((!w.implicit && h.vr !== 'CS') || h.length === UNDEFINED_LENGTH) return null;
      const values = buf.toString('latin1', q, q + h.length).split('\\');
      if (values.length !== 1 || !CHARACTER_SETS.has((values[0] as string).trim())) return null;
    }
    let end: number;
    try {
      end = skipValue(w, h.vr, h.length, q, 0);
    } catch (err) {
      // an undefined-length sequence running past the bytes read: more of the file may finish it
      if (err instanceof NotDirect && !atEof) throw new NeedMore();
      throw err;
    }
    // a sequence (or, implicit VR, any value) that holds the Pixel Data tag: dcmjs's untilTag stops inside it
    if (h.vr !== 'OB' && h.vr !== 'OW' && buf.subarray(q, end).indexOf(PIXEL_DATA_BYTES) >= 0) return null;
    p = end;
  }
  // SOP Class / Instance UID from the file meta (dcmjs's reading of it): left to the full parse
  if (stringValue(ds, '00080016') === null || stringValue(ds, '00080018') === null) return null;
  return readHeader({ transferSyntaxUid: ts, dataset: ds, meta: {}, hasPixelData, bareDataset: false });
}

/**
 * The DicomHeader of a plain Part 10 file from its first bytes (`atEof`: they are the whole file); 'more' when
 * Pixel Data is not reached yet and more of the file is needed; null when the file must be parsed with dcmjs.
 */
export function readHeaderDirect(bytes: Uint8Array, atEof: boolean): DicomHeader | 'more' | null {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  try {
    return walk(buf, atEof);
  } catch (err) {
    if (err instanceof NeedMore) return 'more';
    if (err instanceof NotDirect) return null;
    throw err;
  }
}
