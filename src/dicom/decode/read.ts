/**
 * Parse a DICOM file or bare dataset into dcmjs's element dictionary. Part 10 files (preamble +
 * "DICM" + file meta) are read as they are; a bare dataset with no preamble or meta (some archives
 * and the odd test file hold those) is read by guessing implicit vs explicit VR little endian from
 * its first element and putting a synthetic file meta in front.
 */
import dcmjs, { type DicomDataset, type DicomElement } from 'dcmjs';
import { DecodeError } from './errors.js';
import { checkNesting, metaEnd } from './nesting-guard.js';
import { KNOWN_VRS } from '../encoding.js';
import { hasPart10Preamble } from '../part10.js';
import { TransferSyntax } from '../uids.js';

// dcmjs logs through loglevel, partly with console.log (stdout): keep stdout clean for --json.
dcmjs.log.setLevel('error');
dcmjs.log.getLogger('validation.dcmjs').setLevel('silent');

export interface ParsedDicom {
  transferSyntaxUid: string;
  /** Dataset elements keyed by tag ("00080018"); PixelData omitted when read header-only. */
  dataset: DicomDataset;
  /** File meta elements (group 0002); synthetic for a bare dataset. */
  meta: DicomDataset;
  /** True when Pixel Data (7FE0,0010) is present (even if its value was not read). */
  hasPixelData: boolean;
  /** True when the input had no preamble/file meta. */
  bareDataset: boolean;
}

export interface ReadOptions {
  /** Stop before Pixel Data: enough for slice selection, and cheap. */
  headerOnly?: boolean;
}

const PIXEL_DATA = '7FE00010';

export { hasPart10Preamble };

/**
 * For a buffer without preamble: the transfer syntax of a plausible bare dataset (first element
 * in group 0008, little endian), or null when it does not look like DICOM.
 */
export function sniffBareDataset(buf: Uint8Array): string | null {
  if (buf.length < 16) return null;
  const group = (buf[0] as number) | ((buf[1] as number) << 8);
  if (group !== 0x0008) return null;
  const vr = String.fromCharCode(buf[4] as number, buf[5] as number);
  return KNOWN_VRS.has(vr) ? TransferSyntax.ExplicitVRLittleEndian : TransferSyntax.ImplicitVRLittleEndian;
}

/** Looks like DICOM: part 10, or a bare little-endian dataset starting in group 0008. */
export function looksLikeDicom(buf: Uint8Array): boolean {
  return hasPart10Preamble(buf) || sniffBareDataset(buf) !== null;
}

/** Preamble + DICM + (0002,0000) + (0002,0010) in explicit VR LE, for a bare dataset. */
function syntheticPart10(transferSyntaxUid: string, body: Uint8Array): ArrayBuffer {
  let uid = transferSyntaxUid;
  if (uid.length % 2) uid += '\0';
  const tsElementLength = 8 + uid.length;
  const head = 128 + 4 + 12 + tsElementLength;
  const out = new Uint8Array(head + body.length);
  const dv = new DataView(out.buffer);
  out.set([0x44, 0x49, 0x43, 0x4d], 128);
  let p = 132;
  dv.setUint16(p, 0x0002, true);
  dv.setUint16(p + 2, 0x0000, true);
  out[p + 4] = 0x55;
  out[p + 5] = 0x4c; // UL
  dv.setUint16(p + 6, 4, true);
  dv.setUint32(p + 8, tsElementLength, true);
  p += 12;
  dv.setUint16(p, 0x0002, true);
  dv.setUint16(p + 2, 0x0010, true);
  out[p + 4] = 0x55;
  out[p + 5] = 0x49; // UI
  dv.setUint16(p + 6, uid.length, true);
  for (let i = 0; i < uid.length; i++) out[p + 8 + i] = uid.charCodeAt(i);
  out.set(body, head);
  return out.buffer;
}

function toArrayBuffer(buf: Uint8Array): ArrayBuffer {
  if (buf.byteOffset === 0 && buf.byteLength === buf.buffer.byteLength && buf.buffer instanceof ArrayBuffer) {
    return buf.buffer;
  }
  // a copy (Buffer.prototype.slice is a view: a small Buffer from Node's pool would hand dcmjs the whole pool)
  return Uint8Array.prototype.slice.call(buf).buffer as ArrayBuffer;
}

/** Refuse absurdly nested datasets before dcmjs spends minutes on them (see nesting-guard.ts). */
function guardNesting(buf: Uint8Array, offset: number, pixelData: boolean): void {
  if (offset < 0 || offset + 8 > buf.length) return;
  // Only walk what plainly starts like a dataset (not a deflated stream): first group 0004..0028.
  const g0 = (buf[offset] as number) | ((buf[offset + 1] as number) << 8);
  const g1 = ((buf[offset] as number) << 8) | (buf[offset + 1] as number);
  if (!((g0 >= 0x0004 && g0 <= 0x0028) || (g1 >= 0x0004 && g1 <= 0x0028))) return;
  const littleEndian = !((buf[offset] as number) === 0x00 && (buf[offset + 1] as number) === 0x08);
  const explicit = KNOWN_VRS.has(String.fromCharCode(buf[offset + 4] as number, buf[offset + 5] as number));
  checkNesting(buf, offset, explicit, littleEndian, { pixelData });
}

/** Parse a DICOM buffer; throws DecodeError('not-dicom' | 'parse-failed'). */
export function parseDicom(buf: Uint8Array, opts: ReadOptions = {}): ParsedDicom {
  let ab: ArrayBuffer;
  let bare = false;
  if (hasPart10Preamble(buf)) {
    ab = toArrayBuffer(buf);
  } else {
    const ts = sniffBareDataset(buf);
    if (!ts) throw new DecodeError('not-dicom', 'not a DICOM file (no DICM preamble and no recognisable dataset)');
    ab = syntheticPart10(ts, buf);
    bare = true;
  }
  guardNesting(buf, bare ? 0 : metaEnd(buf), !opts.headerOnly);
  let dict: ReturnType<typeof dcmjs.data.DicomMessage.readFile>;
  try {
    dict = dcmjs.data.DicomMessage.readFile(ab, {
      ignoreErrors: false,
      untilTag: opts.headerOnly ? PIXEL_DATA : null,
      includeUntilTagValue: false,
    });
  } catch (err) {
    const e = err as Error;
    const why = e instanceof RangeError ? `${e.message} (nesting too deep or corrupt)` : e.message;
    throw new DecodeError('parse-failed', `cannot parse DICOM: ${why}`, { cause: err });
  }
  const tsEl: DicomElement | undefined = dict.meta['00020010'];
  const ts = typeof tsEl?.Value?.[0] === 'string' ? (tsEl.Value[0] as string).replace(/\0/g, '').trim() : '';
  if (!ts) throw new DecodeError('parse-failed', 'file meta has no Transfer Syntax UID');
  return {
    transferSyntaxUid: ts,
    dataset: dict.dict,
    meta: dict.meta,
    hasPixelData: PIXEL_DATA in dict.dict,
    bareDataset: bare,
  };
}
