/**
 * A cheap pre-scan that refuses datasets nested deeper than a limit before dcmjs parses them.
 * dcmjs parses sequences recursively, copying the remaining stream at each level: a file with
 * thousands of nested sequences (orthanc-tests' Deeply-Nested-Sequence, 3.6 MB) keeps it busy for
 * minutes before the stack overflows. This walk is iterative over elements, recursive only per
 * sequence level (bounded by the limit), and skips values by their lengths.
 *
 * It is a guard, not a validator: anything it cannot follow (odd lengths, truncation) ends the
 * walk silently and dcmjs gives the real verdict.
 */
import { DecodeError } from './errors.js';
import { LONG_LENGTH_VRS, Tag, UNDEFINED_LENGTH } from '../encoding.js';
import { parseFileMeta } from '../part10.js';

export const MAX_SEQUENCE_DEPTH = 32;

const PIXEL_DATA = 0x7fe00010;

class Stop extends Error {}

interface Walk {
  /** Also check Pixel Data lengths against the buffer (off for header-only reads). */
  pixelData: boolean;
  dv: DataView;
  le: boolean;
  explicit: boolean;
  max: number;
}

function tagAt(w: Walk, p: number): number {
  return ((w.dv.getUint16(p, w.le) << 16) | w.dv.getUint16(p + 2, w.le)) >>> 0;
}

function need(w: Walk, p: number, n: number): void {
  if (p + n > w.dv.byteLength) throw new Stop();
}

/** Walks a dataset from p to end (or to a delimiter when end is undefined); returns the position after it. */
function walkDataset(w: Walk, p: number, end: number, depth: number, stopAt: number): number {
  while (p < end) {
    need(w, p, 8);
    const tag = tagAt(w, p);
    if (tag === stopAt) return p + 8; // item delimiter of an undefined-length item
    if (tag === Tag.Item || tag === Tag.ItemDelimitation || tag === Tag.SequenceDelimitation) throw new Stop();
    let len: number;
    let vr = '';
    let q: number;
    if (w.explicit) {
      vr = String.fromCharCode(w.dv.getUint8(p + 4), w.dv.getUint8(p + 5));
      if (LONG_LENGTH_VRS.has(vr)) {
        need(w, p, 12);
        len = w.dv.getUint32(p + 8, w.le);
        q = p + 12;
      } else {
        len = w.dv.getUint16(p + 6, w.le);
        q = p + 8;
      }
    } else {
      len = w.dv.getUint32(p + 4, w.le);
      q = p + 8;
    }
    if (tag === PIXEL_DATA && depth === 0 && !w.pixelData) return end;
    if (tag === PIXEL_DATA && len === UNDEFINED_LENGTH && depth === 0) {
      p = checkFragments(w, q);
      continue;
    }
    const isSeq = vr === 'SQ' || len === UNDEFINED_LENGTH || (vr === '' || vr === 'UN' ? looksLikeItem(w, q, len) : false);
    if (isSeq) {
      p = walkSequence(w, q, len, depth + 1);
    } else {
      if (len === UNDEFINED_LENGTH) throw new Stop();
      if (depth === 0 && tag === PIXEL_DATA && q + len > w.dv.byteLength) {
        throw new DecodeError(
          'pixel-data-too-short',
          `Pixel Data is truncated (${len} bytes declared, ${w.dv.byteLength - q} in the file)`,
        );
      }
      p = q + len;
    }
  }
  return p;
}

/**
 * Encapsulated Pixel Data: every fragment item must fit in the buffer and the sequence delimiter
 * must follow. dcmjs silently truncates an overrunning fragment, and libjpeg then "decodes" the
 * truncated stream without error, so a cut-off file would score as a half-grey image.
 */
function checkFragments(w: Walk, p: number): number {
  for (;;) {
    if (p + 8 > w.dv.byteLength)
      throw new DecodeError('pixel-data-too-short', 'encapsulated Pixel Data is truncated (no sequence delimiter)');
    const tag = tagAt(w, p);
    const len = w.dv.getUint32(p + 4, w.le);
    p += 8;
    if (tag === Tag.SequenceDelimitation) return p;
    if (tag !== Tag.Item || len === UNDEFINED_LENGTH) throw new Stop();
    if (p + len > w.dv.byteLength) {
      throw new DecodeError(
        'pixel-data-too-short',
        `encapsulated Pixel Data is truncated (fragment of ${len} bytes, ${w.dv.byteLength - p} left)`,
      );
    }
    p += len;
  }
}

function looksLikeItem(w: Walk, q: number, len: number): boolean {
  return len !== UNDEFINED_LENGTH && len >= 8 && q + 8 <= w.dv.byteLength && tagAt(w, q) === Tag.Item;
}

function walkSequence(w: Walk, p: number, len: number, depth: number): number {
  if (depth > w.max) {
    throw new DecodeError('parse-failed', `sequences nested deeper than ${w.max} levels`);
  }
  const end = len === UNDEFINED_LENGTH ? w.dv.byteLength : p + len;
  while (p < end) {
    need(w, p, 8);
    const tag = tagAt(w, p);
    const ilen = w.dv.getUint32(p + 4, w.le);
    p += 8;
    if (tag === Tag.SequenceDelimitation) return p;
    if (tag !== Tag.Item) throw new Stop();
    if (ilen === UNDEFINED_LENGTH) p = walkDataset(w, p, w.dv.byteLength, depth, Tag.ItemDelimitation);
    else {
      walkDataset(w, p, Math.min(p + ilen, w.dv.byteLength), depth, -1);
      p += ilen;
    }
  }
  return p;
}

/**
 * Throws DecodeError('parse-failed') when sequences nest deeper than `max`, and
 * DecodeError('pixel-data-too-short') when Pixel Data runs past the end of the buffer. `offset` is where the
 * dataset starts; only little-endian and big-endian uncompressed-dataset syntaxes are walked.
 */
export function checkNesting(
  buf: Uint8Array,
  offset: number,
  explicit: boolean,
  littleEndian = true,
  opts: { max?: number; pixelData?: boolean } = {},
): void {
  const w: Walk = {
    dv: new DataView(buf.buffer, buf.byteOffset, buf.byteLength),
    le: littleEndian,
    explicit,
    max: opts.max ?? MAX_SEQUENCE_DEPTH,
    pixelData: opts.pixelData ?? true,
  };
  try {
    walkDataset(w, offset, buf.byteLength, 0, -1);
  } catch (err) {
    if (err instanceof Stop || err instanceof RangeError) return;
    throw err;
  }
}

/** End of the file meta group (explicit VR LE after "DICM"), or -1. */
export function metaEnd(buf: Uint8Array): number {
  try {
    return parseFileMeta(buf)?.end ?? -1;
  } catch {
    return -1;
  }
}
