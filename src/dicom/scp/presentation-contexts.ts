import {
  isUnscoredStorageSopClass,
  SopClass,
  STORAGE_SOP_CLASSES,
  STORAGE_TRANSFER_SYNTAXES,
  UNSCORED_TRANSFER_SYNTAXES,
  VERIFICATION_TRANSFER_SYNTAXES,
} from '../uids.js';

/** PS3.8 presentation context results. */
export const PcResult = {
  Accept: 0,
  AbstractSyntaxNotSupported: 3,
  TransferSyntaxesNotSupported: 4,
} as const;

export interface PcDecision {
  result: number;
  transferSyntaxUid?: string;
}

/**
 * Decides one proposed presentation context: Verification, CT Image Storage and Enhanced CT Image
 * Storage are accepted; with `acceptUnscored` (dicom.acceptUnscoredSopClasses) every other standard
 * storage SOP class too (stored, never scored). Of the proposed transfer syntaxes the first in our
 * preference order wins (lossless compressed as sent, then explicit, then implicit VR little endian).
 */
export function negotiatePresentationContext(abstractSyntaxUid: string, proposed: readonly string[], acceptUnscored = false): PcDecision {
  let preference: readonly string[];
  if (abstractSyntaxUid === SopClass.Verification) preference = VERIFICATION_TRANSFER_SYNTAXES;
  else if (STORAGE_SOP_CLASSES.includes(abstractSyntaxUid)) preference = STORAGE_TRANSFER_SYNTAXES;
  else if (acceptUnscored && isUnscoredStorageSopClass(abstractSyntaxUid)) preference = UNSCORED_TRANSFER_SYNTAXES;
  else return { result: PcResult.AbstractSyntaxNotSupported };
  const ts = preference.find((t) => proposed.includes(t));
  return ts ? { result: PcResult.Accept, transferSyntaxUid: ts } : { result: PcResult.TransferSyntaxesNotSupported };
}
