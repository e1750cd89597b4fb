/** Data element encoding rules (PS3.5 §7) shared by every byte-level DICOM reader and writer here. */

/**
 * Explicit VRs whose header has 2 reserved bytes and a 32-bit length (PS3.5 Table 7.1-1);
 * every other explicit VR has a 16-bit length.
 */
export const LONG_LENGTH_VRS: ReadonlySet<string> = new Set([
  'OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV',
]);

/** Explicit VRs with a 16-bit length right after the VR. */
export const SHORT_LENGTH_VRS: ReadonlySet<string> = new Set([
  'AE', 'AS', 'AT', 'CS', 'DA', 'DS', 'DT', 'FD', 'FL', 'IS', 'LO', 'LT', 'PN', 'SH', 'SL', 'SS', 'ST', 'TM',
  'UI', 'UL', 'US',
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
