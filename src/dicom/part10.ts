/**
 * The Part 10 file meta information (PS3.10 §7.1): the one reader of group 0002 in src/, used by
 * the SCU (scu/part10-info.ts), the spool reader (spool/reader.ts), the result objects' source
 * reader (results/source.ts) and the decoder's nesting guard (decode/nesting-guard.ts).
 */
import { LONG_LENGTH_VRS, UNDEFINED_LENGTH } from './encoding.js';

/** Where the file meta starts in a Part 10 file: after the 128-byte preamble and "DICM". */
export const PART10_META_START = 132;

/** "DICM" at offset 128. */
export function hasPart10Preamble(buf: Uint8Array): boolean {
  return buf.length >= 132 && buf[128] === 0x44 && buf[129] === 0x49 && buf[130] === 0x43 && buf[131] === 0x4d;
}

export interface FileMeta {
  /** (0002,0002) Media Storage SOP Class UID; '' when absent. */
  sopClassUid: string;
  /** (0002,0003) Media Storage SOP Instance UID; '' when absent. */
  sopInstanceUid: string;
  /** (0002,0010) Transfer Syntax UID; '' when absent. */
  transferSyntaxUid: string;
  /** Offset of the first byte after the group (where the dataset starts). */
  end: number;
}

/** The file meta group cannot be read (undefined length, or it runs past the end of the file). */
export class FileMetaError extends Error {}

const VR_PATTERN = /^[A-Z]{2}$/;

const asBuffer = (b: Uint8Array): Buffer => (Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength));

/** A UI/SH value as text: trailing NUL and space padding (and leading spaces) removed. */
const text = (buf: Buffer, start: number, length: number): string =>
  buf
    .toString('latin1', start, start + length)
    .replace(/[\0 ]+$/, '')
    .replace(/^ +/, '');

/**
 * Parses the group 0002 elements starting at `start` (explicit VR little endian as the standard
 * requires; implicit VR meta as written by some old tools is tolerated) up to the first element
 * of another group. `atEof`: `buf` holds the whole file; otherwise undefined is returned when the
 * bytes run out before the group ends (the caller reads more). Throws FileMetaError for an
 * undefined length or, at the end of the file, an element cut short.
 */
export function parseFileMeta(bytes: Uint8Array, start = PART10_META_START, atEof = true): FileMeta | undefined {
  const buf = asBuffer(bytes);
  const out: FileMeta = { sopClassUid: '', sopInstanceUid: '', transferSyntaxUid: '', end: start };
  let pos = start;
  for (;;) {
    if (pos + 8 > buf.length) {
      if (atEof) return { ...out, end: pos };
      return undefined;
    }
    const group = buf.readUInt16LE(pos);
    if (group !== 0x0002) return { ...out, end: pos };
    const element = buf.readUInt16LE(pos + 2);
    const vr = buf.toString('latin1', pos + 4, pos + 6);
    let length: number;
    let header: number;
    if (!VR_PATTERN.test(vr)) {
      length = buf.readUInt32LE(pos + 4);
      header = 8;
    } else if (LONG_LENGTH_VRS.has(vr)) {
      if (pos + 12 > buf.length) return atEof ? { ...out, end: pos } : undefined;
      length = buf.readUInt32LE(pos + 8);
      header = 12;
    } else {
      length = buf.readUInt16LE(pos + 6);
      header = 8;
    }
    if (length === UNDEFINED_LENGTH) throw new FileMetaError('undefined length in the file meta group');
    if (pos + header + length > buf.length) {
      if (atEof) throw new FileMetaError('file meta group runs past the end of the file');
      return undefined;
    }
    const v = pos + header;
    if (element === 0x0002) out.sopClassUid = text(buf, v, length);
    else if (element === 0x0003) out.sopInstanceUid = text(buf, v, length);
    else if (element === 0x0010) out.transferSyntaxUid = text(buf, v, length);
    pos = v + length;
  }
}
