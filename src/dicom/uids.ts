/** DICOM UIDs the listener speaks, and UID validation for anything that becomes a path. */

export const SopClass = {
  Verification: '1.2.840.10008.1.1',
  CtImageStorage: '1.2.840.10008.5.1.4.1.1.2',
  EnhancedCtImageStorage: '1.2.840.10008.5.1.4.1.1.2.1',
} as const;

/** Every transfer syntax UID the code names (PS3.6 Annex A); nowhere else are they typed out. */
export const TransferSyntax = {
  ImplicitVRLittleEndian: '1.2.840.10008.1.2',
  ExplicitVRLittleEndian: '1.2.840.10008.1.2.1',
  DeflatedExplicitVRLittleEndian: '1.2.840.10008.1.2.1.99',
  ExplicitVRBigEndian: '1.2.840.10008.1.2.2',
  JpegBaseline: '1.2.840.10008.1.2.4.50',
  JpegExtended: '1.2.840.10008.1.2.4.51',
  JpegLossless: '1.2.840.10008.1.2.4.57',
  JpegLosslessSV1: '1.2.840.10008.1.2.4.70',
  JpegLsLossless: '1.2.840.10008.1.2.4.80',
  JpegLsNearLossless: '1.2.840.10008.1.2.4.81',
  Jpeg2000Lossless: '1.2.840.10008.1.2.4.90',
  Jpeg2000: '1.2.840.10008.1.2.4.91',
  HtJpeg2000Lossless: '1.2.840.10008.1.2.4.201',
  HtJpeg2000LosslessRpcl: '1.2.840.10008.1.2.4.202',
  HtJpeg2000: '1.2.840.10008.1.2.4.203',
  RleLossless: '1.2.840.10008.1.2.5',
} as const;

/**
 * Whether the byte-level walkers here (header scanner, file readers of the spool and of result
 * sources) can read a dataset in this transfer syntax: little endian and not deflated (the
 * encapsulated syntaxes' datasets are explicit VR little endian).
 */
export function isWalkableSyntax(ts: string): boolean {
  return ts !== TransferSyntax.DeflatedExplicitVRLittleEndian && ts !== TransferSyntax.ExplicitVRBigEndian;
}

/** SOP classes accepted for C-STORE and scored. */
export const STORAGE_SOP_CLASSES: readonly string[] = [SopClass.CtImageStorage, SopClass.EnhancedCtImageStorage];

/**
 * Root of the standard storage SOP classes (PS3.4 annex B: images, SR, presentation states, key
 * object selections, encapsulated documents, RT objects). With dicom.acceptUnscoredSopClasses the
 * listener accepts every one of them under this root — a forwarded study holds dose screens
 * (Secondary Capture), dose SRs and presentation states — stores them and leaves them unscored.
 */
export const STANDARD_STORAGE_ROOT = '1.2.840.10008.5.1.4.1.1.';

/** A storage SOP class that is stored but not scored (with dicom.acceptUnscoredSopClasses). */
export function isUnscoredStorageSopClass(sopClassUid: string): boolean {
  return sopClassUid.startsWith(STANDARD_STORAGE_ROOT) && !STORAGE_SOP_CLASSES.includes(sopClassUid) && isValidUid(sopClassUid);
}

/** Short names of the unscored storage SOP classes a CT study usually carries (for reasons and logs). */
export const SOP_CLASS_NAMES: Readonly<Record<string, string>> = {
  '1.2.840.10008.5.1.4.1.1.7': 'Secondary Capture Image Storage',
  '1.2.840.10008.5.1.4.1.1.88.67': 'X-Ray Radiation Dose SR Storage',
  '1.2.840.10008.5.1.4.1.1.88.22': 'Enhanced SR Storage',
  '1.2.840.10008.5.1.4.1.1.88.11': 'Basic Text SR Storage',
  '1.2.840.10008.5.1.4.1.1.88.33': 'Comprehensive SR Storage',
  '1.2.840.10008.5.1.4.1.1.88.34': 'Comprehensive 3D SR Storage',
  '1.2.840.10008.5.1.4.1.1.88.59': 'Key Object Selection Document Storage',
  '1.2.840.10008.5.1.4.1.1.11.1': 'Grayscale Softcopy Presentation State Storage',
  '1.2.840.10008.5.1.4.1.1.104.1': 'Encapsulated PDF Storage',
  '1.2.840.10008.5.1.4.1.1.66.4': 'Segmentation Storage',
  '1.2.840.10008.5.1.4.1.1.128': 'PET Image Storage',
  '1.2.840.10008.5.1.4.1.1.4': 'MR Image Storage',
};

export function sopClassName(sopClassUid: string): string {
  return (
    SOP_CLASS_NAMES[sopClassUid] ??
    (sopClassUid === SopClass.CtImageStorage
      ? 'CT Image Storage'
      : sopClassUid === SopClass.EnhancedCtImageStorage
        ? 'Enhanced CT Image Storage'
        : sopClassUid)
  );
}

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

/**
 * Transfer syntaxes accepted for SOP classes stored unscored: the storage ones plus the common
 * lossy encapsulated ones (a dose screen may come as JPEG baseline). Never decoded; the listener's
 * header walk reads any explicit VR little endian encoding.
 */
export const UNSCORED_TRANSFER_SYNTAXES: readonly string[] = [
  ...STORAGE_TRANSFER_SYNTAXES,
  '1.2.840.10008.1.2.4.50',
  '1.2.840.10008.1.2.4.51',
  '1.2.840.10008.1.2.4.81',
  '1.2.840.10008.1.2.4.91',
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
