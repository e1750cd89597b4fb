/**
 * Sits between the TCP socket and dcmjs-dimse. It follows the DICOM UL framing of everything the
 * peer sends (PDU type + 32-bit length, and inside P-DATA-TF the PDV items), and:
 *
 *  - aborts at once on garbage, a PDU type that does not exist, or a PDU larger than our max PDU
 *    (instead of letting the library wait for gigabytes that never come), and on PDUs an SCP
 *    must not receive where they come (PS3.8 9.2 state machine): a second A-ASSOCIATE-RQ,
 *    A-ASSOCIATE-AC/RJ or A-RELEASE-RP from the requestor, P-DATA-TF before the association is
 *    accepted or after the peer's A-RELEASE-RQ, a dataset no C-STORE announced, a command set
 *    longer than {@link MAX_COMMAND_SET};
 *  - routes the dataset fragments of a C-STORE straight to a sink (the spool writer) as zero-copy
 *    slices of the socket chunks — the library never buffers or re-parses instance data;
 *  - takes C-STORE-RQ command sets out of the stream (the owner answers them itself), so the
 *    library never runs its per-instance dcmjs command parsing;
 *  - passes everything else (association PDUs, C-ECHO and other command sets, release, abort) to
 *    the library unchanged.
 */
import { NO_DATASET, parseCommand } from '../pdu/command-set.js';
import { PDU_TYPE_PDATA, pdataHeader } from '../pdu/pdata.js';

/** Moved to ../pdu/command-set.ts (shared with the SCU); re-exported for existing importers. */
export { parseCommand };

export interface CStoreCommand {
  presentationContextId: number;
  messageId: number;
  sopClassUid: string;
  sopInstanceUid: string;
}

export interface DatasetSink {
  write(chunk: Buffer): void;
  end(): void;
}

export interface PduStreamHooks {
  /** Bytes for dcmjs-dimse's own connection handler. */
  forward(bytes: Buffer): void;
  /**
   * A C-STORE-RQ command with a dataset has arrived (it is not passed to the library); returns
   * where its dataset goes. `sink.end()` is called when the last fragment has been written; the
   * owner then answers the C-STORE itself.
   */
  openStore(cmd: CStoreCommand): DatasetSink;
  /** The stream is not DICOM UL (or breaks a limit); called once, nothing is processed after. */
  violation(reason: string): void;
  /** Whether the association is accepted (P-DATA-TF before that is a violation); default true. */
  associated?(): boolean;
}

const PDATA = PDU_TYPE_PDATA;
const ASSOCIATE_RQ = 0x01;
const RELEASE_RQ = 0x05;
/** PDU types only an acceptor sends or that answer our own request (we never request a release). */
const NOT_FOR_AN_ACCEPTOR: ReadonlyMap<number, string> = new Map([
  [0x02, 'A-ASSOCIATE-AC'],
  [0x03, 'A-ASSOCIATE-RJ'],
  [0x06, 'A-RELEASE-RP'],
]);
/** Longest command set we collect (real ones are a few hundred bytes). */
export const MAX_COMMAND_SET = 64 * 1024;

export class PduStream {
  private readonly hdr = Buffer.alloc(6);
  private hdrHave = 0;
  /** Bytes left in the current PDU body. */
  private pduLeft = 0;
  private pduType = 0;
  private inPdu = false;
  private pdus = 0;
  /** Current PDV inside a P-DATA-TF. */
  private readonly pdvHdr = Buffer.alloc(6);
  private pdvHdrHave = 0;
  private pdvLeft = 0;
  private pdvPc = 0;
  private pdvCtrl = 0;
  private inPdv = false;
  /** Command-set bytes collected across fragments. */
  private commandParts: Buffer[] = [];
  private commandBytes = 0;
  private releaseRequested = false;
  private pendingStore: CStoreCommand | undefined;
  private activeStore: { sink: DatasetSink; pc: number } | undefined;
  private failed = false;

  constructor(
    private readonly maxPdataLength: number,
    private readonly hooks: PduStreamHooks,
    private readonly maxOtherLength = 1 << 20,
  ) {}

  get broken(): boolean {
    return this.failed;
  }

  /**
   * True while the peer owes us bytes: inside a PDU, between the fragments of a command set,
   * or between a C-STORE-RQ and the last fragment of its dataset (what the progress deadline
   * watches; between messages the idle timeout applies instead).
   */
  get inTransit(): boolean {
    return (
      !this.failed &&
      (this.hdrHave > 0 || this.inPdu || this.commandParts.length > 0 || this.pendingStore !== undefined || this.activeStore !== undefined)
    );
  }

  feed(chunk: Buffer): void {
    let pos = 0;
    const len = chunk.length;
    while (pos < len && !this.failed) {
      if (!this.inPdu) {
        const n = Math.min(6 - this.hdrHave, len - pos);
        chunk.copy(this.hdr, this.hdrHave, pos, pos + n);
        this.hdrHave += n;
        pos += n;
        if (this.hdrHave < 6) return;
        this.hdrHave = 0;
        const type = this.hdr[0]!;
        const length = this.hdr.readUInt32BE(2);
        const bad = this.check(type, length);
        if (bad) {
          this.fail(bad);
          return;
        }
        this.pdus++;
        this.pduType = type;
        this.pduLeft = length;
        this.inPdu = true;
        if (type !== PDATA) this.hooks.forward(Buffer.from(this.hdr));
        if (length === 0) this.endPdu();
        continue;
      }
      if (this.pduType !== PDATA) {
        const n = Math.min(this.pduLeft, len - pos);
        this.hooks.forward(chunk.subarray(pos, pos + n));
        pos += n;
        this.pduLeft -= n;
        if (this.pduLeft === 0) this.endPdu();
        continue;
      }
      // Inside a P-DATA-TF body: PDV items.
      if (!this.inPdv) {
        const n = Math.min(6 - this.pdvHdrHave, len - pos, this.pduLeft);
        chunk.copy(this.pdvHdr, this.pdvHdrHave, pos, pos + n);
        this.pdvHdrHave += n;
        this.pduLeft -= n;
        pos += n;
        if (this.pdvHdrHave < 6) {
          if (this.pduLeft === 0) {
            this.fail('P-DATA-TF ends inside a PDV header');
            return;
          }
          continue;
        }
        this.pdvHdrHave = 0;
        const itemLength = this.pdvHdr.readUInt32BE(0);
        if (itemLength < 2 || itemLength - 2 > this.pduLeft) {
          this.fail(`PDV item length ${itemLength} does not fit its PDU`);
          return;
        }
        this.pdvPc = this.pdvHdr[4]!;
        this.pdvCtrl = this.pdvHdr[5]!;
        this.pdvLeft = itemLength - 2;
        this.inPdv = true;
        const isCommand = (this.pdvCtrl & 1) === 1;
        if (!isCommand && !this.activeStore) {
          const cmd = this.pendingStore;
          if (!cmd) {
            this.fail('dataset fragment without a C-STORE request announcing it');
            return;
          }
          this.pendingStore = undefined;
          if (cmd.presentationContextId !== this.pdvPc) {
            this.fail(`dataset on presentation context ${this.pdvPc}, command on ${cmd.presentationContextId}`);
            return;
          }
          this.activeStore = { sink: this.hooks.openStore(cmd), pc: this.pdvPc };
        } else if (!isCommand && this.activeStore && this.activeStore.pc !== this.pdvPc) {
          this.fail(`dataset fragment on presentation context ${this.pdvPc} inside a dataset on ${this.activeStore.pc}`);
          return;
        } else if (isCommand && (this.activeStore || this.pendingStore)) {
          this.fail('command fragment while a C-STORE dataset is expected');
          return;
        }
        if (this.pdvLeft === 0) this.endPdv();
        continue;
      }
      const n = Math.min(this.pdvLeft, len - pos);
      const slice = chunk.subarray(pos, pos + n);
      pos += n;
      this.pdvLeft -= n;
      this.pduLeft -= n;
      if ((this.pdvCtrl & 1) === 0) {
        this.activeStore!.sink.write(slice);
      } else {
        this.commandBytes += slice.length;
        if (this.commandBytes > MAX_COMMAND_SET) {
          this.fail(`command set longer than ${MAX_COMMAND_SET} bytes`);
          return;
        }
        // Copied: the socket chunk it came from must not stay alive until the last fragment.
        this.commandParts.push(Buffer.from(slice));
      }
      if (this.pdvLeft === 0) this.endPdv();
    }
  }

  private endPdv(): void {
    this.inPdv = false;
    const isCommand = (this.pdvCtrl & 1) === 1;
    const last = (this.pdvCtrl & 2) === 2;
    if (!isCommand) {
      if (last) {
        const { sink } = this.activeStore!;
        this.activeStore = undefined;
        sink.end();
      }
    } else if (last) {
      // Command sets are small: collect all fragments, then either take a C-STORE out of the
      // stream or hand the whole command to the library as one last-fragment PDV.
      const command = Buffer.concat(this.commandParts);
      this.commandParts = [];
      this.commandBytes = 0;
      if (!this.takeStore(this.pdvPc, command)) this.forwardPdv(this.pdvPc, this.pdvCtrl, [command]);
    }
    if (this.pduLeft === 0) this.endPdu();
  }

  private endPdu(): void {
    this.inPdu = false;
    if (this.pduType === PDATA && this.inPdv) this.fail('P-DATA-TF ends inside a PDV');
  }

  private forwardPdv(pc: number, ctrl: number, parts: Buffer[]): void {
    const valueLength = parts.reduce((n, p) => n + p.length, 0);
    const head = pdataHeader(pc, ctrl, valueLength);
    this.hooks.forward(parts.length ? Buffer.concat([head, ...parts]) : head);
  }

  /** A C-STORE-RQ with a dataset becomes the pending store; anything else goes to the library. */
  private takeStore(pc: number, command: Buffer): boolean {
    const c = parseCommand(command);
    if (c?.commandField !== 0x0001 || c.dataSetType === NO_DATASET || c.messageId < 0) return false;
    this.pendingStore = {
      presentationContextId: pc,
      messageId: c.messageId,
      sopClassUid: c.affectedSopClassUid,
      sopInstanceUid: c.affectedSopInstanceUid,
    };
    return true;
  }

  private check(type: number, length: number): string | undefined {
    if (type < 1 || type > 7) return `unknown PDU type 0x${type.toString(16)}`;
    if (this.pdus === 0 && type !== ASSOCIATE_RQ) return `first PDU is type ${type}, not A-ASSOCIATE-RQ`;
    if (this.pdus > 0 && type === ASSOCIATE_RQ) return 'a second A-ASSOCIATE-RQ';
    const forAcceptor = NOT_FOR_AN_ACCEPTOR.get(type);
    if (forAcceptor) return `${forAcceptor} from the requestor`;
    if (type === PDATA) {
      if (this.releaseRequested) return 'P-DATA-TF after A-RELEASE-RQ';
      if (this.hooks.associated && !this.hooks.associated()) return 'P-DATA-TF before the association was accepted';
      if (length > this.maxPdataLength) return `P-DATA-TF PDU of ${length} bytes exceeds max PDU ${this.maxPdataLength}`;
    } else if (length > this.maxOtherLength) {
      return `PDU type ${type} of ${length} bytes is too long`;
    }
    if (type === RELEASE_RQ) {
      if (this.releaseRequested) return 'a second A-RELEASE-RQ';
      if (this.pendingStore || this.activeStore || this.commandParts.length > 0) return 'A-RELEASE-RQ in the middle of a message';
      this.releaseRequested = true;
    }
    return undefined;
  }

  private fail(reason: string): void {
    if (this.failed) return;
    this.failed = true;
    this.hooks.violation(reason);
  }
}
