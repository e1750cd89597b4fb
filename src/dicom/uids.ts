/** DICOM UIDs the listener speaks, and UID validation for anything that becomes a path. */

export const SopClass = {
  Verification: '1.2.840.10008.1.1',
  CtImageStorage: '1.2.840.10008.5.1.4.1.1.2',
  EnhancedCtImageStorage: '1.2.840.10008.5.1.4.1.1.2.1',
} as const;

export const TransferSyntax = {
  ImplicitVRLittleEndian: '1.2.840.10008.1.2',
  ExplicitVRLittleEndian: '1.2.840.10008.1.2.1',
  JpegLosslessSV1: '1.2.840.10008.1.2.4.70',
  JpegLossless: '1.2.840.10008.1.2.4.57',
  JpegLsLossless: '1.2.840.10008.1.2.4.80',
  Jpeg2000Lossless: '1.2.840.10008.1.2.4.90',
  RleLossless: '1.2.840.10008.1.2.5',
} as const;

/** SOP classes accepted for C-STORE. */
export const STORAGE_SOP_CLASSES: readonly string[] = [SopClass.CtImageStorage, SopClass.EnhancedCtImageStorage];

/**
 * Transfer syntaxes accepted for storage, best first: the compressed lossless ones keep the data
 * exactly as the sender holds it, then explicit, then implicit VR little endian.
 */
export const STORAGE_TRANSFER_SYNTAXES: readonly string[] = [
  TransferSyntax.JpegLosslessSV1,
  TransferSyntax.JpegLossless,
  TransferSyntax.JpegLsLossless,
  TransferSyntax.Jpeg2000Lossless,
  TransferSyntax.RleLossless,
  TransferSyntax.ExplicitVRLittleEndian,
  TransferSyntax.ImplicitVRLittleEndian,
];

export const VERIFICATION_TRANSFER_SYNTAXES: readonly string[] = [
  TransferSyntax.ExplicitVRLittleEndian,
  TransferSyntax.ImplicitVRLittleEndian,
];

/** Our implementation class UID (a 2.25 UUID-derived UID) and version name (≤ 16 chars). */
export const IMPLEMENTATION_CLASS_UID = '2.25.14727405641991321109304071672327384173';
export const IMPLEMENTATION_VERSION_NAME = 'MLSAM_0_1_0';

const UID_RE = /^[0-9]+(\.[0-9]+)*$/;

/** A UID safe to use as a path component: digits and dots, ≤ 64 characters. */
export function isValidUid(uid: string | undefined | null): uid is string {
  return typeof uid === 'string' && uid.length > 0 && uid.length <= 64 && UID_RE.test(uid);
}
