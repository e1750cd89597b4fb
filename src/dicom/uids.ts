/**
 * DICOM UIDs the listener speaks, their names (the one table of SOP class and transfer syntax
 * names: messages, refusal reasons and the dashboard say them with sopClassName and
 * transferSyntaxName), and UID validation for anything that becomes a path.
 */

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
  /** Video syntaxes: never accepted, named in refusal messages. */
  Mpeg2MainProfile: '1.2.840.10008.1.2.4.100',
  Mpeg4AvcH264: '1.2.840.10008.1.2.4.102',
} as const;

export type TransferSyntaxUid = (typeof TransferSyntax)[keyof typeof TransferSyntax];

/** The name of every transfer syntax above (PS3.6 Annex A; a syntax added there needs its name here). */
const TRANSFER_SYNTAX_NAMES: Readonly<Record<TransferSyntaxUid, string>> = {
  [TransferSyntax.ImplicitVRLittleEndian]: 'Implicit VR Little Endian',
  [TransferSyntax.ExplicitVRLittleEndian]: 'Explicit VR Little Endian',
  [TransferSyntax.DeflatedExplicitVRLittleEndian]: 'Deflated Explicit VR Little Endian',
  [TransferSyntax.ExplicitVRBigEndian]: 'Explicit VR Big Endian',
  [TransferSyntax.JpegBaseline]: 'JPEG Baseline',
  [TransferSyntax.JpegExtended]: 'JPEG Extended',
  [TransferSyntax.JpegLossless]: 'JPEG Lossless',
  [TransferSyntax.JpegLosslessSV1]: 'JPEG Lossless SV1',
  [TransferSyntax.JpegLsLossless]: 'JPEG-LS Lossless',
  [TransferSyntax.JpegLsNearLossless]: 'JPEG-LS Near-Lossless',
  [TransferSyntax.Jpeg2000Lossless]: 'JPEG 2000 Lossless',
  [TransferSyntax.Jpeg2000]: 'JPEG 2000',
  [TransferSyntax.HtJpeg2000Lossless]: 'HTJ2K Lossless',
  [TransferSyntax.HtJpeg2000LosslessRpcl]: 'HTJ2K Lossless RPCL',
  [TransferSyntax.HtJpeg2000]: 'HTJ2K',
  [TransferSyntax.RleLossless]: 'RLE Lossless',
  [TransferSyntax.Mpeg2MainProfile]: 'MPEG2 Main Profile',
  [TransferSyntax.Mpeg4AvcH264]: 'MPEG-4 AVC/H.264',
};

/** "JPEG 2000 Lossless", else the UID. */
export function transferSyntaxName(uid: string): string {
  return (TRANSFER_SYNTAX_NAMES as Readonly<Record<string, string>>)[uid] ?? uid;
}

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

/**
 * Names of the SOP classes a PACS commonly pushes (PS3.4 annex B), for reasons, logs and messages
 * about refused or unscored ones: the one SOP class name table.
 */
const SOP_CLASS_NAMES: Readonly<Record<string, string>> = {
  [SopClass.Verification]: 'Verification',
  '1.2.840.10008.5.1.4.1.1.1': 'CR Image Storage',
  '1.2.840.10008.5.1.4.1.1.1.1': 'Digital X-Ray Image Storage (presentation)',
  '1.2.840.10008.5.1.4.1.1.1.1.1': 'Digital X-Ray Image Storage (processing)',
  '1.2.840.10008.5.1.4.1.1.1.2': 'Digital Mammography Image Storage (presentation)',
  '1.2.840.10008.5.1.4.1.1.1.2.1': 'Digital Mammography Image Storage (processing)',
  [SopClass.CtImageStorage]: 'CT Image Storage',
  [SopClass.EnhancedCtImageStorage]: 'Enhanced CT Image Storage',
  '1.2.840.10008.5.1.4.1.1.3.1': 'Ultrasound Multi-frame Image Storage',
  '1.2.840.10008.5.1.4.1.1.4': 'MR Image Storage',
  '1.2.840.10008.5.1.4.1.1.4.1': 'Enhanced MR Image Storage',
  '1.2.840.10008.5.1.4.1.1.6.1': 'Ultrasound Image Storage',
  '1.2.840.10008.5.1.4.1.1.7': 'Secondary Capture Image Storage',
  '1.2.840.10008.5.1.4.1.1.7.1': 'Multi-frame Single Bit Secondary Capture Image Storage',
  '1.2.840.10008.5.1.4.1.1.7.2': 'Multi-frame Grayscale Byte Secondary Capture Image Storage',
  '1.2.840.10008.5.1.4.1.1.7.3': 'Multi-frame Grayscale Word Secondary Capture Image Storage',
  '1.2.840.10008.5.1.4.1.1.7.4': 'Multi-frame True Color Secondary Capture Image Storage',
  '1.2.840.10008.5.1.4.1.1.11.1': 'Grayscale Softcopy Presentation State Storage',
  '1.2.840.10008.5.1.4.1.1.12.1': 'X-Ray Angiographic Image Storage',
  '1.2.840.10008.5.1.4.1.1.12.2': 'X-Ray Radiofluoroscopic Image Storage',
  '1.2.840.10008.5.1.4.1.1.20': 'Nuclear Medicine Image Storage',
  '1.2.840.10008.5.1.4.1.1.66': 'Raw Data Storage',
  '1.2.840.10008.5.1.4.1.1.66.4': 'Segmentation Storage',
  '1.2.840.10008.5.1.4.1.1.77.1.4': 'VL Photographic Image Storage',
  '1.2.840.10008.5.1.4.1.1.88.11': 'Basic Text SR Storage',
  '1.2.840.10008.5.1.4.1.1.88.22': 'Enhanced SR Storage',
  '1.2.840.10008.5.1.4.1.1.88.33': 'Comprehensive SR Storage',
  '1.2.840.10008.5.1.4.1.1.88.34': 'Comprehensive 3D SR Storage',
  '1.2.840.10008.5.1.4.1.1.88.59': 'Key Object Selection Document Storage',
  '1.2.840.10008.5.1.4.1.1.88.67': 'X-Ray Radiation Dose SR Storage',
  '1.2.840.10008.5.1.4.1.1.104.1': 'Encapsulated PDF Storage',
  '1.2.840.10008.5.1.4.1.1.128': 'PET Image Storage',
  '1.2.840.10008.5.1.4.1.1.481.1': 'RT Image Storage',
  '1.2.840.10008.5.1.4.1.1.481.2': 'RT Dose Storage',
  '1.2.840.10008.5.1.4.1.1.481.3': 'RT Structure Set Storage',
  '1.2.840.10008.5.1.4.1.1.481.5': 'RT Plan Storage',
};

/** "MR Image Storage", else the UID. */
export function sopClassName(sopClassUid: string): string {
  return SOP_CLASS_NAMES[sopClassUid] ?? sopClassUid;
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
  TransferSyntax.JpegBaseline,
  TransferSyntax.JpegExtended,
  TransferSyntax.JpegLsNearLossless,
  TransferSyntax.Jpeg2000,
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
