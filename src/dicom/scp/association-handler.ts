import type { Socket } from 'node:net';
import { randomUUID } from 'node:crypto';
import dimse from 'dcmjs-dimse';
import { Writable } from 'node:stream';
import type { Config } from '../../config/schema.js';
import type { Logger } from '../../log.js';
import type { AssociationRecord, ReceivedInstance, RefusedContextRecord, StoreFailureRecord } from '../received-instance.js';
import { discardTempFile, InstanceWriter, openTempFile, StoreStatus, type StoreOutcome, type TempFile } from '../spool/instance-writer.js';
import type { DiskWatermark } from '../spool/spool-layout.js';
import { isUnscoredStorageSopClass, isValidUid, sopClassName, STORAGE_SOP_CLASSES, transferSyntaxName } from '../uids.js';
import { decideAssociation, normalizeHost } from './association-policy.js';
import { negotiatePresentationContext, PcResult } from './presentation-contexts.js';
import { PduStream, type CStoreCommand, type DatasetSink } from './pdu-stream.js';
import { encodeCStoreResponse } from './store-response.js';
import { presentationContextResultText } from '../words.js';

const { Scp, Dataset } = dimse;
const { CEchoResponse, CStoreResponse } = dimse.responses;

type DimseAssociation = InstanceType<typeof dimse.association.Association>;
type DimsePresentationContext = InstanceType<typeof dimse.association.PresentationContext>;
type DimseCEchoRequest = InstanceType<typeof dimse.requests.CEchoRequest>;
type DimseCStoreRequest = InstanceType<typeof dimse.requests.CStoreRequest>;
type DimseCEchoResponse = InstanceType<typeof CEchoResponse>;
type DimseCStoreResponse = InstanceType<typeof CStoreResponse>;
type DimseDataset = InstanceType<typeof Dataset>;

/** Fields of dcmjs-dimse's Network that its typings do not declare. */
interface NetworkInternals {
  connected: boolean;
  connectedTime: number | undefined;
  lastPduTime: number | undefined;
  association: DimseAssociation | undefined;
  /** Stops the library's own association / PDU timers. */
  _reset(): void;
}

/** Refused C-STOREs listed in one association's audit record (the count covers all). */
const MAX_AUDITED_FAILURES = 20;
/** Refused presentation contexts kept for the audit (a peer may propose 128). */
const MAX_REFUSED_RECORDED = 32;
/** Refused SOP classes named in the log message (all recorded ones are in its `refused` field). */
const LOGGED_REFUSED = 5;

/** What an association needs from the listener that owns it. */
export interface ListenerContext {
  config: Config;
  logger: Logger;
  spoolDir: string;
  tmpDir: string;
  fsync: boolean;
  watermark: DiskWatermark;
  /** Associations accepted and still open (this one excluded until accepted). */
  acceptedAssociations(): number;
  /** Hands a durable instance to the sink (not awaited by the C-STORE response). */
  instanceStored(instance: ReceivedInstance): void;
}

/** A-ABORT PDU: source 2 (service provider), reason as given. */
function abortPdu(reason: number): Buffer {
  return Buffer.from([0x07, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x02, reason]);
}

/**
 * One DICOM association on one TCP connection: policy, presentation context negotiation,
 * C-ECHO, and C-STORE streamed into the spool through {@link InstanceWriter}.
 */
export class AssociationHandler extends Scp {
  readonly id = randomUUID();
  readonly socket: Socket;
  readonly startedAt = Date.now();
  readonly peerHost: string;
  accepted = false;
  callingAeTitle = '';
  calledAeTitle = '';
  instances = 0;
  /** Of those, instances of storage SOP classes stored but not scored (dicom.acceptUnscoredSopClasses). */
  unscored = 0;
  bytes = 0;
  /** C-ECHO requests answered (the audit tells an echo from a store). */
  echoes = 0;
  /** Set once the end of the association is known (released, rejected, aborted). */
  outcome: string | undefined;
  /** Why we aborted the association (for the audit). */
  abortReason: string | undefined;
  /** Presentation contexts refused at negotiation, one per SOP class (the first MAX_REFUSED_RECORDED). */
  readonly refused: RefusedContextRecord[] = [];
  /** Further refused SOP classes beyond those. */
  private readonly refusedOverflow = new Set<string>();
  /** C-STOREs answered with a failure status, and the first few of them with their reasons. */
  failedStores = 0;
  readonly failures: StoreFailureRecord[] = [];
  private readonly ctx: ListenerContext;
  private readonly writers = new WeakMap<object, InstanceWriter>();
  private current: InstanceWriter | undefined;
  /** A temp file opened ahead for the next instance (keeps open() off the critical path). */
  private spare: TempFile | undefined;
  private spareOpening = false;
  private readonly inFlight = new Set<Promise<unknown>>();
  private readonly log: Logger;
  private closing = false;
  private readonly pdus: PduStream;
  /** Progress deadline: bytes received since the current window started. */
  private windowBytes = 0;
  private progressTimer: NodeJS.Timeout | undefined;

  constructor(socket: Socket, ctx: ListenerContext) {
    const d = ctx.config.dicom;
    super(socket, {
      connectTimeout: d.idleTimeoutSeconds * 1000,
      associationTimeout: d.associationTimeoutSeconds * 1000,
      pduTimeout: d.idleTimeoutSeconds * 1000,
    });
    this.socket = socket;
    this.ctx = ctx;
    this.peerHost = normalizeHost(socket.remoteAddress);
    this.log = ctx.logger.child({ assoc: this.id.slice(0, 8), peer: this.peerHost });
    // Server.listen would set these; we hand over an already connected socket ourselves.
    const internals = this as unknown as NetworkInternals;
    internals.connected = true;
    internals.connectedTime = Date.now();
    // Put our PDU stream between the socket and the library: it validates framing and routes
    // C-STORE dataset fragments straight into the spool writer (see pdu-stream.ts).
    const libraryHandlers = socket.listeners('data') as Array<(chunk: Buffer) => void>;
    socket.removeAllListeners('data');
    const pdus = new PduStream(d.maxPduLength, {
      forward: (bytes) => {
        for (const h of libraryHandlers) h(bytes);
      },
      openStore: (cmd) => this.openStore(cmd),
      violation: (reason) => this.abortAssociation(`malformed PDU: ${reason}`, 1),
      associated: () => this.accepted,
    });
    this.pdus = pdus;
    socket.on('data', (chunk: Buffer) => {
      // After A-ASSOCIATE-RJ / A-ABORT nothing more is processed (the bytes are read and dropped
      // while we wait for the peer to close).
      if (this.closing) return;
      this.windowBytes += chunk.length;
      // Data bypassing the library still counts as activity for its idle (PDU) timeout; before
      // the association is up, only a complete A-ASSOCIATE-RQ stops the association timer.
      if (this.accepted) internals.lastPduTime = Date.now();
      pdus.feed(chunk);
    });
    this.startProgressDeadline();
    // A connection that drops mid-transfer leaves no temp file and no pending writer behind.
    socket.once('close', () => {
      this.closing = true;
      if (this.progressTimer) clearInterval(this.progressTimer);
      this.current?.abort('connection closed during transfer');
      if (this.spare) discardTempFile(this.spare);
      this.spare = undefined;
    });
    this.on('networkError', (err: Error) => {
      if (this.closing) return;
      // Timeouts, unreadable PDUs, socket errors: A-ABORT (when still writable) and close.
      this.abortAssociation(`network: ${err.message}`);
    });
  }

  /**
   * The progress deadline (dicom.progressTimeoutSeconds, dicom.minTransferBytesPerSecond): while
   * the peer owes us bytes (inside a PDU or a dataset), every window of progressTimeoutSeconds
   * must bring at least minTransferBytesPerSecond × progressTimeoutSeconds bytes, else the
   * association is aborted (a peer trickling a byte a second would otherwise hold an
   * association and a growing temp file forever: the idle timeout only sees silence). A window
   * in which this process itself was not running (event loop blocked) judges nobody.
   */
  private startProgressDeadline(): void {
    const d = this.ctx.config.dicom;
    if (d.minTransferBytesPerSecond <= 0) return;
    const windowMs = d.progressTimeoutSeconds * 1000;
    const minBytes = d.minTransferBytesPerSecond * d.progressTimeoutSeconds;
    const tickMs = Math.max(50, Math.min(1000, windowMs / 4));
    let windowStart = Date.now();
    let lastTick = windowStart;
    this.progressTimer = setInterval(() => {
      const now = Date.now();
      const late = now - lastTick > 2 * tickMs + 250;
      lastTick = now;
      if (late || !this.pdus.inTransit || this.closing) {
        windowStart = now;
        this.windowBytes = 0;
        return;
      }
      if (now - windowStart < windowMs) return;
      const got = this.windowBytes;
      windowStart = now;
      this.windowBytes = 0;
      if (got < minBytes) {
        const secs = d.progressTimeoutSeconds;
        this.abortAssociation(
          `too slow: ${got} bytes in ${secs} s mid-transfer (at least ${d.minTransferBytesPerSecond} bytes/s required)`,
        );
      }
    }, tickMs);
    this.progressTimer.unref();
  }

  /** Opens the next instance's temp file once the answer is out, while the peer prepares it. */
  private prepareSpare(): void {
    if (this.spare || this.spareOpening || this.closing) return;
    this.spareOpening = true;
    setImmediate(() => {
      this.spareOpening = false;
      if (this.spare || this.closing) return;
      try {
        this.spare = openTempFile(this.ctx.tmpDir);
      } catch {
        // The writer opens its own file then (and reports the error if that fails too).
      }
    });
  }

  /** Number of C-STOREs still being written. */
  get pendingStores(): number {
    return this.inFlight.size;
  }

  /** Waits for in-flight C-STORE writes to settle. */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.inFlight]);
  }

  /** Aborts the association from our side (A-ABORT, then the peer is given ARTIM to close). */
  abortAssociation(why: string, reason = 0): void {
    if (this.closing) return;
    this.log.warn({ why }, 'aborting association');
    this.outcome = 'aborted';
    this.abortReason = why;
    if (!this.socket.destroyed && this.socket.writable) this.socket.write(abortPdu(reason));
    this.current?.abort(`association aborted: ${why}`);
    this.awaitPeerClose();
  }

  /**
   * After an A-ASSOCIATE-RJ or A-ABORT (PS3.8 Sta13): nothing more is processed, but the socket
   * is still read (and the bytes dropped) so that the peer's close is seen and no RST can make
   * it lose our last PDU; the peer closes the connection, or we do when ARTIM expires.
   */
  private awaitPeerClose(): void {
    if (this.closing) return;
    this.closing = true;
    (this as unknown as NetworkInternals)._reset();
    if (this.progressTimer) clearInterval(this.progressTimer);
    this.socket.resume();
    setTimeout(() => this.socket.destroy(), this.ctx.config.dicom.artimTimeoutSeconds * 1000).unref();
  }

  override associationRequested(association: DimseAssociation): void {
    (this as unknown as NetworkInternals).association = association;
    this.callingAeTitle = association.getCallingAeTitle().trim();
    this.calledAeTitle = association.getCalledAeTitle().trim();
    const decision = decideAssociation(this.ctx.config.dicom, {
      calledAeTitle: this.calledAeTitle,
      callingAeTitle: this.callingAeTitle,
      peerHost: this.peerHost,
      activeAssociations: this.ctx.acceptedAssociations(),
    });
    if (!decision.accept) {
      this.log.warn({ callingAe: this.callingAeTitle, calledAe: this.calledAeTitle, reason: decision.reason }, 'association rejected');
      this.outcome = `rejected:${decision.reason}`;
      this.sendAssociationReject(decision.result, decision.source, decision.diagnostic);
      this.awaitPeerClose();
      return;
    }
    // One operation at a time (no asynchronous operations window): answer each C-STORE in turn.
    association.setNegotiateAsyncOps(false);
    association.setMaxAsyncOpsInvoked(1);
    association.setMaxAsyncOpsPerformed(1);
    // dcmjs-dimse announces this value as our receive limit and also caps what it sends with it.
    // We only ever send small command PDUs (responses), far below any peer's limit, so announce ours.
    association.setMaxPduLength(this.ctx.config.dicom.maxPduLength);
    const accepted: string[] = [];
    for (const { id } of association.getPresentationContexts()) {
      const pc = association.getPresentationContext(id);
      const d = negotiatePresentationContext(
        pc.getAbstractSyntaxUid(),
        pc.getTransferSyntaxUids(),
        this.ctx.config.dicom.acceptUnscoredSopClasses,
      );
      if (d.result === PcResult.Accept) {
        pc.setResult(d.result, d.transferSyntaxUid);
        accepted.push(`${id}:${pc.getAbstractSyntaxUid()}@${d.transferSyntaxUid}`);
      } else {
        pc.setResult(d.result);
        // What the peer proposed and why we said no (an MR, a PDF): for the audit, the page and the log.
        // One entry per SOP class (an SCU proposes a class once per transfer syntax, or a long list of classes).
        const sopClassUid = pc.getAbstractSyntaxUid();
        const seen = this.refused.find((r) => r.sopClassUid === sopClassUid);
        if (seen) {
          for (const ts of pc.getTransferSyntaxUids()) if (!seen.transferSyntaxUids.includes(ts)) seen.transferSyntaxUids.push(ts);
        } else if (this.refused.length < MAX_REFUSED_RECORDED) {
          this.refused.push({
            sopClassUid,
            transferSyntaxUids: [...pc.getTransferSyntaxUids()],
            reason: presentationContextResultText(d.result),
          });
        } else if (!this.refusedOverflow.has(sopClassUid)) {
          this.refusedOverflow.add(sopClassUid);
        }
      }
    }
    this.accepted = true;
    const refused = this.refused.map(
      (r) =>
        `${sopClassName(r.sopClassUid)}: ${r.reason}${r.reason.startsWith('none of the transfer') ? ` (${r.transferSyntaxUids.map(transferSyntaxName).join(', ')})` : ''}`,
    );
    const more = refused.length + this.refusedOverflow.size - LOGGED_REFUSED;
    const refusedMsg = refused.slice(0, LOGGED_REFUSED).join('; ') + (more > 0 ? `; and ${more} more SOP classes` : '');
    this.log[refused.length && !accepted.length ? 'warn' : 'info'](
      {
        callingAe: this.callingAeTitle,
        calledAe: this.calledAeTitle,
        maxPdu: association.getMaxPduLength(),
        accepted,
        ...(refused.length ? { refused } : {}),
      },
      refused.length ? `association accepted; refused ${refusedMsg}` : 'association accepted',
    );
    this.sendAssociationAccept();
  }

  override associationReleaseRequested(): void {
    this.outcome = 'accepted-released';
    // Answer once every instance of this association is durable and answered.
    void this.settled().then(() => {
      if (!this.socket.destroyed) this.sendAssociationReleaseResponse();
    });
  }

  override cEchoRequest(request: DimseCEchoRequest, callback: (response: DimseCEchoResponse) => void): void {
    this.echoes++;
    const response = CEchoResponse.fromRequest(request);
    response.setStatus(StoreStatus.Success);
    callback(response);
  }

  override abort(source: number, reason: number): void {
    this.log.info({ source, reason }, 'association aborted by peer');
    this.outcome = 'aborted';
    this.current?.abort('association aborted by peer');
    this.closing = true;
    this.socket.destroy();
  }

  /** Why an instance cannot be stored, decided before its first byte arrives. */
  private refusal(
    sopClassUid: string,
    sopInstanceUid: string,
    pc: DimsePresentationContext | undefined,
  ): { status: number; reason: string } | undefined {
    if (!isValidUid(sopInstanceUid)) return { status: StoreStatus.CannotUnderstand, reason: 'invalid AffectedSOPInstanceUID' };
    if (!pc || pc.getResult() !== PcResult.Accept) {
      return { status: StoreStatus.CannotUnderstand, reason: 'dataset on a presentation context that was not accepted' };
    }
    const storable =
      STORAGE_SOP_CLASSES.includes(sopClassUid) ||
      (this.ctx.config.dicom.acceptUnscoredSopClasses && isUnscoredStorageSopClass(sopClassUid));
    if (!storable || sopClassUid !== pc.getAbstractSyntaxUid()) {
      return { status: 0x0122, reason: `SOP class ${sopClassUid} not supported on this presentation context` };
    }
    try {
      const usage = this.ctx.watermark.exceeded();
      if (usage !== undefined) {
        return {
          status: StoreStatus.OutOfResources,
          reason: `spool disk ${usage.toFixed(1)}% used, above ${this.ctx.config.spool.maxDiskUsagePercent}%`,
        };
      }
    } catch (err) {
      return { status: StoreStatus.OutOfResources, reason: `spool disk not usable: ${(err as Error).message}` };
    }
    return undefined;
  }

  private newWriter(sopClassUid: string, sopInstanceUid: string, pc: DimsePresentationContext | undefined): InstanceWriter {
    const refuse = this.refusal(sopClassUid, sopInstanceUid, pc);
    const tempFile = refuse ? undefined : this.spare;
    if (tempFile) this.spare = undefined;
    const writer = new InstanceWriter({
      ...(tempFile ? { tempFile } : {}),
      spoolDir: this.ctx.spoolDir,
      tmpDir: this.ctx.tmpDir,
      fsync: this.ctx.fsync,
      limits: { maxSequenceDepth: this.ctx.config.dicom.maxSequenceDepth, maxItems: this.ctx.config.dicom.maxItemsPerInstance },
      watermark: this.ctx.watermark,
      meta: {
        sopClassUid,
        sopInstanceUid,
        transferSyntaxUid: pc?.getAcceptedTransferSyntaxUid() ?? '',
        sourceAeTitle: this.callingAeTitle,
      },
      ...(refuse ? { refuse } : {}),
    });
    this.current = writer;
    void writer.outcome.then(() => this.prepareSpare());
    const track = writer.outcome.then(() => writer.released).finally(() => this.inFlight.delete(track));
    this.inFlight.add(track);
    return writer;
  }

  /**
   * A C-STORE arrived through the PDU stream: its dataset streams into a writer, and once that is
   * durable we answer it here (the library never sees this C-STORE).
   */
  private openStore(cmd: CStoreCommand): DatasetSink {
    let pc: DimsePresentationContext | undefined;
    try {
      pc = (this as unknown as NetworkInternals).association?.getPresentationContext(cmd.presentationContextId);
    } catch {
      pc = undefined;
    }
    const writer = this.newWriter(cmd.sopClassUid, cmd.sopInstanceUid, pc);
    return {
      write: (chunk) => writer.write(chunk),
      end: () => {
        if (this.current === writer) this.current = undefined;
        writer.end();
        void writer.outcome.then((o) => {
          const respond = (status: number, errorComment?: string): void => {
            if (this.socket.destroyed || !this.socket.writable) return;
            this.socket.write(
              encodeCStoreResponse({
                presentationContextId: cmd.presentationContextId,
                messageIdBeingRespondedTo: cmd.messageId,
                sopClassUid: cmd.sopClassUid,
                sopInstanceUid: cmd.sopInstanceUid,
                status,
                ...(errorComment ? { errorComment } : {}),
              }),
            );
          };
          this.finishStore(writer, o, respond, cmd.sopInstanceUid);
        });
      },
    };
  }

  /** Answers one C-STORE from its outcome and hands a stored instance to the sink. */
  private finishStore(
    writer: InstanceWriter,
    o: StoreOutcome,
    respond: (status: number, comment?: string) => void,
    sopInstanceUid: string,
  ): void {
    if (!o.ok) {
      this.log.warn({ sopInstanceUid, status: o.status, reason: o.reason }, 'C-STORE failed');
      this.failedStores++;
      if (this.failures.length < MAX_AUDITED_FAILURES) this.failures.push({ sopInstanceUid, status: o.status, reason: o.reason });
      respond(o.status, o.reason);
      return;
    }
    this.instances++;
    if (!STORAGE_SOP_CLASSES.includes(o.header.sopClassUid)) this.unscored++;
    this.bytes += o.bytes;
    respond(StoreStatus.Success);
    const h = o.header;
    this.ctx.instanceStored({
      sopClassUid: h.sopClassUid,
      sopInstanceUid: h.sopInstanceUid,
      studyInstanceUid: h.studyInstanceUid,
      seriesInstanceUid: h.seriesInstanceUid,
      transferSyntaxUid: writer.transferSyntaxUid,
      modality: h.modality,
      bodyPartExamined: h.bodyPartExamined,
      imageType: h.imageType,
      attributes: {
        studyDate: h.studyDate,
        studyDescription: h.studyDescription,
        seriesDescription: h.seriesDescription,
        seriesNumber: h.seriesNumber,
        sliceThickness: h.sliceThickness,
        convolutionKernel: h.convolutionKernel,
        imageOrientation: h.imageOrientation,
        imagePosition: h.imagePosition,
        pixelSpacing: h.pixelSpacing,
      },
      path: o.path,
      bytes: o.bytes,
      callingAeTitle: this.callingAeTitle,
      callingHost: this.peerHost,
      receivedAt: Date.now(),
      isNew: o.isNew,
    });
  }

  override createStoreWritableStream(pc: DimsePresentationContext, request: DimseCStoreRequest): Writable {
    // Fallback only (C-STOREs normally bypass the library through the PDU stream).
    const writer = this.newWriter(request.getAffectedSopClassUid() ?? '', request.getAffectedSopInstanceUid() ?? '', pc);
    this.writers.set(request, writer);
    return new Writable({
      write: (chunk: Buffer, _e, cb) => {
        writer.write(chunk);
        cb();
      },
      final: (cb) => {
        writer.end();
        cb();
      },
    });
  }

  override createDatasetFromStoreWritableStream(
    _writable: Writable,
    pc: DimsePresentationContext,
    callback: (dataset: DimseDataset) => void,
  ): void {
    // The dataset stays on disk; the C-STORE handler waits for the writer's outcome instead.
    callback(new Dataset({}, pc.getAcceptedTransferSyntaxUid()));
  }

  override cStoreRequest(request: DimseCStoreRequest, callback: (response: DimseCStoreResponse) => void): void {
    const writer = this.writers.get(request);
    const respond = (status: number, comment?: string): void => {
      const response = CStoreResponse.fromRequest(request);
      response.setStatus(status);
      if (comment) response.setErrorComment(comment.slice(0, 64));
      if (!this.socket.destroyed) callback(response);
    };
    if (!writer) {
      respond(StoreStatus.ProcessingFailure, 'no dataset');
      return;
    }
    if (this.current === writer) this.current = undefined;
    void writer.outcome.then((o) => this.finishStore(writer, o, respond, request.getAffectedSopInstanceUid()));
  }

  /** The audit record, once the connection is closed. */
  record(endedAt: number): AssociationRecord {
    return {
      id: this.id,
      callingAeTitle: this.callingAeTitle,
      calledAeTitle: this.calledAeTitle,
      callingHost: this.peerHost,
      startedAt: this.startedAt,
      endedAt,
      instances: this.instances,
      bytes: this.bytes,
      echoes: this.echoes,
      ...(this.unscored > 0 ? { unscored: this.unscored } : {}),
      outcome: this.outcome ?? (this.accepted ? 'aborted' : 'error'),
      ...(this.failedStores > 0 ? { failed: this.failedStores, failures: this.failures } : {}),
      ...(this.abortReason ? { reason: this.abortReason } : {}),
      ...(this.refused.length ? { refused: this.refused } : {}),
      ...(this.refusedOverflow.size ? { refusedMore: this.refusedOverflow.size } : {}),
    };
  }
}
