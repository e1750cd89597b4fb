/** Data element encoding rules (PS3.5 §7) shared by every byte-level DICOM reader and writer here. */

/**
 * Explicit VRs whose header has 2 reserved bytes and a 32-bit length (PS3.5 Table 7.1-1);
 * every other explicit VR has a 16-bit length.
 */
export const LONG_LENGTH_VRS: ReadonlySet<string> = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);

/** Explicit VRs with a 16-bit length right after the VR. */
export const SHORT_LENGTH_VRS: ReadonlySet<string> = new Set([
  'AE',
  'AS',
  'AT',
  'CS',
  'DA',
  'DS',
  'DT',
  'FD',
  'FL',
  'IS',
  'LO',
  'LT',
  'PN',
  'SH',
  'SL',
  'SS',
  'ST',
  'TM',
  'UI',
  'UL',
  'US',
]);

/** Every VR this code knows; two bytes that are none of these are not an explicit VR. */
export const KNOWN_VRS: ReadonlySet<string> = new Set([...SHORT_LENGTH_VRS, ...LONG_LENGTH_VRS]);

/** Value length meaning "undefined, ends at a delimitation item". */
export const UNDEFINED_LENGTH = 0xffffffff;

/** Item and delimitation tags, (group << 16 | element). Their group is 0xFFFE. */
export const Tag = {
  Item: 0xfffee000,
  ItemDelimitation: 0xfffee00d,
  SequenceDelimitation: 0xfffee0dd,
} as const;

/** A data element header (PS3.5 §7.1). */
export interface ElementHeader {
  /** (group << 16 | element). */
  tag: number;
  /** The VR on the wire; '' for implicit VR elements and for item and delimitation tags (group FFFE). */
  vr: string;
  /** Value length (UNDEFINED_LENGTH for an undefined length). */
  length: number;
  /** Bytes of the header: 8, or 12 for explicit VRs with a 32-bit length. */
  headerLength: number;
}

/**
 * The little-endian element header at `pos`, the one header reader of the byte-level walkers
 * (spool/header-scanner.ts, scu/explicit-to-implicit.ts, results/source.ts). `implicit`: implicit
 * VR (item and delimitation tags are read as implicit either way). Undefined when the header runs
 * past the end of `data` (the caller waits for more bytes or reports a cut dataset); null when
 * the two VR bytes of an explicit VR element are no VR (the caller names the error).
 */
export function readElementHeader(data: Buffer, pos: number, implicit: boolean): ElementHeader | undefined | null {
  if (data.length - pos < 8) return undefined;
  const group = data.readUInt16LE(pos);
  const tag = ((group << 16) | data.readUInt16LE(pos + 2)) >>> 0;
  if (group === 0xfffe || implicit) return { tag, vr: '', length: data.readUInt32LE(pos + 4), headerLength: 8 };
  const vr = data.toString('latin1', pos + 4, pos + 6);
  if (LONG_LENGTH_VRS.has(vr)) {
    if (data.length - pos < 12) return undefined;
    return { tag, vr, length: data.readUInt32LE(pos + 8), headerLength: 12 };
  }
  if (SHORT_LENGTH_VRS.has(vr)) return { tag, vr, length: data.readUInt16LE(pos + 6), headerLength: 8 };
  return null;
}
