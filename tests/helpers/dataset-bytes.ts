/**
 * DICOM dataset bytes built by hand for tests that need what no encoder writes: impossible
 * lengths, unclosed sequences, stray delimiters (PS3.5 7.1 element headers, little endian).
 */
import { LONG_LENGTH_VRS, Tag } from '../../src/dicom/encoding.js';

export const ITEM = Tag.Item;
export const ITEM_END = Tag.ItemDelimitation;
export const SEQ_END = Tag.SequenceDelimitation;
export const UNDEFINED = 0xffffffff;

/**
 * One data element: explicit VR (header of 8 or 12 bytes) or implicit (8 bytes). `length`
 * defaults to the value's; give another to declare what the value is not.
 */
export function element(explicit: boolean, tag: number, vr: string, value: Buffer, length = value.length): Buffer {
  const long = LONG_LENGTH_VRS.has(vr);
  const h = Buffer.alloc(explicit && long ? 12 : 8);
  h.writeUInt16LE(tag >>> 16, 0);
  h.writeUInt16LE(tag & 0xffff, 2);
  if (!explicit) h.writeUInt32LE(length >>> 0, 4);
  else {
    h.write(vr, 4, 'latin1');
    if (long) h.writeUInt32LE(length >>> 0, 8);
    else h.writeUInt16LE(length & 0xffff, 6);
  }
  return Buffer.concat([h, value]);
}

/** An explicit VR little endian element (group, element). */
export function el(group: number, elementNumber: number, vr: string, value: Buffer, length = value.length): Buffer {
  return element(true, ((group << 16) | elementNumber) >>> 0, vr, value, length);
}

/** An item or delimiter tag (FFFE,xxxx) with its 32-bit length. */
export function tagOnly(tag: number, length: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt16LE(tag >>> 16, 0);
  b.writeUInt16LE(tag & 0xffff, 2);
  b.writeUInt32LE(length >>> 0, 4);
  return b;
}

/** A UI value padded with NUL to even length. */
export const ui = (s: string): Buffer => Buffer.from(s.length % 2 ? `${s}\0` : s, 'latin1');
/** A text value padded with a space to even length. */
export const text = (s: string): Buffer => Buffer.from(s.length % 2 ? `${s} ` : s, 'latin1');
export const u16 = (n: number): Buffer => {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(n);
  return b;
};
