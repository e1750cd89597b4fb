/**
 * What the listener knows about one instance once it is durably in the spool.
 * Identifiers only: no PHI travels past the listener (invariant 5, docs/architecture.md).
 */
export interface ReceivedInstance {
  sopClassUid: string;
  sopInstanceUid: string;
  studyInstanceUid: string;
  seriesInstanceUid: string;
  transferSyntaxUid: string;
  /** Modality (0008,0060), "" when absent. */
  modality: string;
  /** BodyPartExamined (0018,0015), upper-cased, "" when absent. */
  bodyPartExamined: string;
  /** ImageType (0008,0008) values, upper-cased. */
  imageType: string[];
  /** Series-level attributes for study completion and series selection (absent from older producers). */
  attributes?: InstanceAttributes;
  /** Absolute path of the Part-10 file in the spool. */
  path: string;
  /** Bytes of the dataset as received (without preamble and file meta). */
  bytes: number;
  callingAeTitle: string;
  /** Peer IP address. */
  callingHost: string;
  /** Epoch milliseconds when the instance became durable. */
  receivedAt: number;
  /** False when the same SOP Instance UID was already in the spool (stored once). */
  isNew: boolean;
}

/** Header attributes as stored (trimmed text, "" when absent): none of them is PHI. */
export interface InstanceAttributes {
  studyDate: string;
  studyDescription: string;
  seriesDescription: string;
  seriesNumber: string;
  sliceThickness: string;
  convolutionKernel: string;
  imageOrientation: string;
  imagePosition: string;
  pixelSpacing: string;
}

/**
 * Receives every durably stored instance. Called after the file is fsynced and renamed; the
 * C-STORE response does not wait on it, so a failing sink (Redis down) never loses an instance:
 * the spool reconciler covers what the sink missed.
 */
export interface InstanceSink {
  instanceStored(instance: ReceivedInstance): Promise<void>;
}

/** One association, for the audit trail. */
export interface AssociationRecord {
  id: string;
  callingAeTitle: string;
  calledAeTitle: string;
  callingHost: string;
  startedAt: number;
  endedAt: number;
  instances: number;
  bytes: number;
  /** Of `instances`, those of storage SOP classes stored but not scored (absent when none). */
  unscored?: number;
  /** C-ECHO requests answered (absent in records written before it was counted). */
  echoes?: number;
  /** accepted-released | aborted | rejected:<reason> | error */
  outcome: string;
  /** C-STOREs answered with a failure status (absent when none). */
  failed?: number;
  /** The first of those, with status and reason (e.g. "dataset cannot be read: …"). */
  failures?: StoreFailureRecord[];
  /** Why we aborted the association (malformed PDU, too slow, …). */
  reason?: string;
  /** Presentation contexts we refused (absent when none): what the peer wanted to send and why not. */
  refused?: RefusedContextRecord[];
  /** Refused SOP classes beyond those listed (an SCU that proposes every storage class). */
  refusedMore?: number;
}

/** One refused presentation context: its SOP class, the transfer syntaxes proposed, and the reason in words. */
export interface RefusedContextRecord {
  sopClassUid: string;
  transferSyntaxUids: string[];
  reason: string;
}

/** One refused C-STORE in the audit trail (identifiers only). */
export interface StoreFailureRecord {
  sopInstanceUid: string;
  status: number;
  reason: string;
}

export interface AssociationObserver {
  associationEnded(record: AssociationRecord): Promise<void>;
}
