/**
 * The standard data dictionary (dcmjs's), for byte-level walkers of implicit VR datasets, where
 * the VR is not on the wire.
 */
import dcmjs from 'dcmjs';
import { KNOWN_VRS } from './encoding.js';

type DictEntry = { vr?: string };

const cache = new Map<number, string | null>();
const hex4 = (n: number): string => n.toString(16).toUpperCase().padStart(4, '0');

/**
 * VR of a standard data element; undefined for private tags, group lengths, tags the dictionary
 * does not know and ambiguous ones (US or SS, OB or OW).
 */
export function standardVr(tag: number): string | undefined {
  let vr = cache.get(tag);
  if (vr === undefined) {
    vr = null;
    if ((tag >>> 16) % 2 === 0 && (tag & 0xffff) !== 0) {
      // dcmjs's dictionary answers lookups by key but does not enumerate its entries.
      const dict = (dcmjs.data.DicomMetaDictionary as unknown as { dictionary: Record<string, DictEntry | undefined> }).dictionary;
      const v = dict[`(${hex4(tag >>> 16)},${hex4(tag & 0xffff)})`]?.vr;
      if (v && KNOWN_VRS.has(v)) vr = v;
    }
    cache.set(tag, vr);
  }
  return vr ?? undefined;
}
