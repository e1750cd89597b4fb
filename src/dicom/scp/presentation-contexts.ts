import {
  SopClass, STORAGE_SOP_CLASSES, STORAGE_TRANSFER_SYNTAXES, VERIFICATION_TRANSFER_SYNTAXES,
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
 * Storage are accepted; of the proposed transfer syntaxes the first in our preference order wins
 * (lossless compressed as sent, then explicit, then implicit VR little endian).
 */
export function negotiatePresentationContext(abstractSyntaxUid: string, proposed: readonly string[]): PcDecision {
  let preference: readonly string[];
  if (abstractSyntaxUid === SopClass.Verification) preference = VERIFICATION_TRANSFER_SYNTAXES;
  else if (STORAGE_SOP_CLASSES.includes(abstractSyntaxUid)) preference = STORAGE_TRANSFER_SYNTAXES;
  else return { result: PcResult.AbstractSyntaxNotSupported };
  const ts = preference.find((t) => proposed.includes(t));
  return ts ? { result: PcResult.Accept, transferSyntaxUid: ts } : { result: PcResult.TransferSyntaxesNotSupported };
}
