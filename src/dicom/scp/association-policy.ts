import type { Config } from '../../config/schema.js';

export type AssociationDecision =
  | { accept: true }
  | {
      accept: false;
      /** For the audit trail: outcome `rejected:<reason>`. */
      reason: 'called-ae-title-not-recognized' | 'calling-ae-title-not-recognized' | 'local-limit-exceeded';
      /** A-ASSOCIATE-RJ result / source / reason (PS3.8 9.3.4). */
      result: number;
      source: number;
      diagnostic: number;
    };

const RESULT_PERMANENT = 1;
const RESULT_TRANSIENT = 2;
const SOURCE_SERVICE_USER = 1;
const SOURCE_SERVICE_PROVIDER_PRESENTATION = 3;
const USER_CALLING_AE_NOT_RECOGNIZED = 3;
const USER_CALLED_AE_NOT_RECOGNIZED = 7;
const PRESENTATION_LOCAL_LIMIT_EXCEEDED = 2;

/** "::ffff:127.0.0.1" → "127.0.0.1". */
export function normalizeHost(address: string | undefined): string {
  if (!address) return '';
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

/** Association policy from config.dicom: called AE title, calling AE allow-list, concurrency cap. */
export function decideAssociation(
  dicom: Config['dicom'],
  req: { calledAeTitle: string; callingAeTitle: string; peerHost: string; activeAssociations: number },
): AssociationDecision {
  if (req.calledAeTitle.trim() !== dicom.aeTitle.trim()) {
    return {
      accept: false,
      reason: 'called-ae-title-not-recognized',
      result: RESULT_PERMANENT,
      source: SOURCE_SERVICE_USER,
      diagnostic: USER_CALLED_AE_NOT_RECOGNIZED,
    };
  }
  const calling = req.callingAeTitle.trim();
  const host = normalizeHost(req.peerHost);
  const allowed = dicom.allowedCallers.some(
    (c) => (c.aeTitle === '*' || c.aeTitle.trim() === calling) && (c.host === '*' || normalizeHost(c.host) === host),
  );
  if (!allowed) {
    return {
      accept: false,
      reason: 'calling-ae-title-not-recognized',
      result: RESULT_PERMANENT,
      source: SOURCE_SERVICE_USER,
      diagnostic: USER_CALLING_AE_NOT_RECOGNIZED,
    };
  }
  if (req.activeAssociations >= dicom.maxAssociations) {
    return {
      accept: false,
      reason: 'local-limit-exceeded',
      result: RESULT_TRANSIENT,
      source: SOURCE_SERVICE_PROVIDER_PRESENTATION,
      diagnostic: PRESENTATION_LOCAL_LIMIT_EXCEEDED,
    };
  }
  return { accept: true };
}
