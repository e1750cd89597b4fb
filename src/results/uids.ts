/**
 * Deterministic UIDs of the result objects (invariant 2, docs/architecture.md): derived from the series, the hash
 * of the sorted SOP Instance UIDs scored and the model version, plus the object's role. The same
 * series content scored by the same model version always gives the same UIDs, so re-running a
 * job or re-sending a series never creates duplicates in the PACS.
 *
 * Form: "2.25." + the decimal of a 128-bit UUID (PS3.5 B.2), the UUID being the first 128 bits of
 * SHA-256 over the inputs with the RFC 9562 version 8 (custom) and variant bits set.
 */
import { createHash } from 'node:crypto';

export interface UidBasis {
  seriesInstanceUid: string;
  instancesHash: string;
  modelVersion: string;
}

/**
 * Roles: 'sr-series', 'sc-series', 'kos-series', 'seg-series', 'seg', 'seg-dimensions', 'pr-series', 'pr:<key slice SOP Instance UID>', 'sr', 'sr-not-scored', 'kos', 'summary', 'heatmap:<source SOP Instance UID>',
 * 'tracking' and 'tracking:<key slice SOP Instance UID>' (SR measurement groups), 'device:<AE title>:<model name>'.
 */
export function resultUid(basis: UidBasis, role: string): string {
  const h = createHash('sha256')
    .update(['mlsam-result-uid-v1', basis.seriesInstanceUid, basis.instancesHash, basis.modelVersion, role].join('\0'))
    .digest();
  const b = Buffer.from(h.subarray(0, 16));
  b[6] = ((b[6] as number) & 0x0f) | 0x80; // version 8
  b[8] = ((b[8] as number) & 0x3f) | 0x80; // variant 10xx
  return `2.25.${BigInt(`0x${b.toString('hex')}`).toString(10)}`;
}

/** The result UIDs of one scored content of a series. */
export function resultUids(basis: UidBasis): {
  srSeries: string;
  scSeries: string;
  kosSeries: string;
  segSeries: string;
  seg: string;
  prSeries: string;
  /** Presentation state of a key slice. */
  pr: (sourceSopInstanceUid: string) => string;
  /** Dimension Organization UID of the Segmentation. */
  segDimensions: string;
  sr: string;
  kos: string;
  srNotScored: string;
  summary: string;
  heatmap: (sourceSopInstanceUid: string) => string;
} {
  return {
    srSeries: resultUid(basis, 'sr-series'),
    scSeries: resultUid(basis, 'sc-series'),
    kosSeries: resultUid(basis, 'kos-series'),
    segSeries: resultUid(basis, 'seg-series'),
    prSeries: resultUid(basis, 'pr-series'),
    pr: (uid: string) => resultUid(basis, `pr:${uid}`),
    seg: resultUid(basis, 'seg'),
    segDimensions: resultUid(basis, 'seg-dimensions'),
    sr: resultUid(basis, 'sr'),
    kos: resultUid(basis, 'kos'),
    srNotScored: resultUid(basis, 'sr-not-scored'),
    summary: resultUid(basis, 'summary'),
    heatmap: (uid: string) => resultUid(basis, `heatmap:${uid}`),
  };
}
