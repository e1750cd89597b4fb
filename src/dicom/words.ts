/**
 * DICOM network codes in the words a PACS engineer expects: A-ASSOCIATE-RJ result / source /
 * reason (PS3.8 9.3.4, table 9-21), A-ABORT source / reason (PS3.8 9.3.8, table 9-26), presentation
 * context results (PS3.8 9.3.3.2) and DIMSE status codes (PS3.7 annex C, with the C-STORE / C-FIND /
 * C-MOVE / C-GET service statuses of PS3.4). Unknown and reserved values keep their number.
 * SOP class and transfer syntax names live with their UIDs (src/dicom/uids.ts: sopClassName,
 * transferSyntaxName).
 */

const RJ_RESULT: Record<number, string> = {
  1: 'rejected permanently',
  2: 'rejected for now (transient)',
};

const RJ_SOURCE: Record<number, string> = {
  1: 'the peer',
  2: "the peer's DICOM network layer (ACSE service-provider)",
  3: "the peer's DICOM network layer (presentation service-provider)",
};

/** Reason/diag. by source (table 9-21). */
const RJ_REASON: Record<number, Record<number, string>> = {
  1: {
    1: 'no reason given',
    2: 'application context name not supported',
    3: 'calling AE title not recognised',
    7: 'called AE title not recognised',
  },
  2: {
    1: 'no reason given',
    2: 'protocol version not supported',
  },
  3: {
    1: 'temporary congestion',
    2: 'local limit exceeded (too many associations)',
  },
};

/** What to check, for the reasons a person can act on. */
const RJ_HINT: Record<string, string> = {
  '1:3': 'our calling AE title is not among the callers the peer allows',
  '1:7': 'check the called AE title the peer is configured with',
  '3:1': 'try again later',
  '3:2': 'try again when fewer associations are open',
};

const reserved = (n: number | undefined): string => `reserved reason ${n ?? '?'}`;

/**
 * "association rejected permanently by the peer: called AE title not recognised; check the called
 * AE title the peer is configured with". `hints` false leaves out the advice.
 */
export function associateRejectText(r: { result?: number; source?: number; reason?: number }, hints = true): string {
  const result = RJ_RESULT[r.result ?? -1] ?? `rejected (result ${r.result ?? '?'})`;
  const source = RJ_SOURCE[r.source ?? -1] ?? `an unknown source (${r.source ?? '?'})`;
  const reason = RJ_REASON[r.source ?? -1]?.[r.reason ?? -1] ?? reserved(r.reason);
  const hint = hints ? RJ_HINT[`${r.source}:${r.reason}`] : undefined;
  return `association ${result} by ${source}: ${reason}${hint ? `; ${hint}` : ''}`;
}

const ABORT_SOURCE: Record<number, string> = {
  0: 'the peer',
  1: 'an unknown source (reserved 1)',
  2: "the peer's DICOM network layer (service-provider)",
};

const ABORT_REASON: Record<number, string> = {
  0: 'reason not specified',
  1: 'unrecognised PDU',
  2: 'unexpected PDU',
  4: 'unrecognised PDU parameter',
  5: 'unexpected PDU parameter',
  6: 'invalid PDU parameter value',
};

/** "association aborted by the peer's DICOM network layer (service-provider): unexpected PDU". */
export function abortText(a: { source?: number; reason?: number }): string {
  const source = ABORT_SOURCE[a.source ?? -1] ?? `an unknown source (${a.source ?? '?'})`;
  // The reason is only meaningful when the service-provider aborted (PS3.8 9.3.8: 0 otherwise).
  const reason = a.source === 2 ? (ABORT_REASON[a.reason ?? -1] ?? reserved(a.reason)) : undefined;
  return `association aborted by ${source}${reason ? `: ${reason}` : ''}`;
}

const PC_RESULT: Record<number, string> = {
  0: 'accepted',
  1: 'refused by the peer (user rejection)',
  2: 'refused by the peer (no reason given)',
  3: 'SOP class not supported',
  4: 'none of the transfer syntaxes supported',
};

/** Presentation context result (PS3.8 table 9-18). */
export function presentationContextResultText(result: number): string {
  return PC_RESULT[result] ?? `refused (result ${result})`;
}

/** Single DIMSE status codes (PS3.7 C.1–C.5 and the service statuses of PS3.4 used by storage and Q/R). */
const STATUS: Record<number, string> = {
  0x0000: 'success',
  // Warning
  0x0001: 'warning: requested optional attributes are not supported',
  0x0107: 'warning: attribute list error',
  0x0116: 'warning: attribute value out of range',
  0xb000: 'warning: coercion of data elements',
  0xb006: 'warning: elements discarded',
  0xb007: 'warning: data set does not match SOP class',
  // Failure (PS3.7 C.4)
  0x0105: 'no such attribute',
  0x0106: 'invalid attribute value',
  0x0110: 'processing failure',
  0x0111: 'duplicate SOP instance',
  0x0112: 'no such SOP instance',
  0x0113: 'no such event type',
  0x0114: 'no such argument',
  0x0115: 'invalid argument value',
  0x0117: 'invalid object instance',
  0x0118: 'no such SOP class',
  0x0119: 'class-instance conflict',
  0x0120: 'missing attribute',
  0x0121: 'missing attribute value',
  0x0122: 'refused: SOP class not supported',
  0x0123: 'no such action',
  0x0124: 'refused: not authorised',
  0x0210: 'duplicate invocation',
  0x0211: 'unrecognised operation',
  0x0212: 'mistyped argument',
  0x0213: 'resource limitation',
  // Query/Retrieve (PS3.4 C.4)
  0xa701: 'refused: out of resources, unable to calculate number of matches',
  0xa702: 'refused: out of resources, unable to perform sub-operations',
  0xa801: 'refused: move destination unknown',
  0xfe00: 'cancelled',
  0xff00: 'pending',
  0xff01: 'pending: one or more optional keys not supported',
};

/** "0xA700 (refused: out of resources)": the code and its meaning (PS3.7 annex C). */
export function dimseStatusText(status: number): string {
  const hex = `0x${status.toString(16).toUpperCase().padStart(4, '0')}`;
  return `${hex} (${dimseStatusMeaning(status)})`;
}

export function dimseStatusMeaning(status: number): string {
  const exact = STATUS[status];
  if (exact) return exact;
  const hi = status & 0xff00;
  if (hi === 0xa700) return 'refused: out of resources';
  if (hi === 0xa900) return 'error: data set does not match SOP class';
  if ((status & 0xf000) === 0xc000) return 'error: cannot understand';
  if ((status & 0xf000) === 0xb000) return 'warning';
  if ((status & 0xf000) === 0xa000) return 'failure';
  return 'unknown status';
}
