/**
 * C-STORE SCU that sends each file's dataset bytes exactly as stored, in the file's own transfer
 * syntax, streamed from disk.
 *
 * Association negotiation, release and abort stay in dcmjs-dimse's Network class (the base class of
 * its Scp, the same machinery the listener uses); the DIMSE traffic bypasses the library in both
 * directions, as on the SCP side (scp/pdu-stream.ts):
 *  - out: the C-STORE-RQ command set (pdu/command-set.ts) and the dataset read from the file in
 *    chunks, framed as P-DATA-TF PDUs (pdu/pdata.ts) no larger than the peer's max PDU;
 *  - in: P-DATA-TF PDUs (the C-STORE-RSPs) are taken out of the socket stream and parsed here;
 *    every other PDU (A-ASSOCIATE-AC/RJ, A-RELEASE-RP, A-ABORT) goes to the library unchanged.
 *
 * One presentation context is proposed per distinct (SOP class, transfer syntax) of the files, with
 * that single syntax, plus Implicit VR Little Endian (the default syntax every SCP must accept) for
 * SOP classes with Explicit VR Little Endian files. A file is sent unchanged when its own syntax was
 * accepted; an Explicit VR Little Endian file whose syntax was refused is re-encoded on the fly to
 * Implicit VR Little Endian (explicit-to-implicit.ts: element headers only, every value byte kept);
 * compressed data is never transcoded: without an accepted context the file fails with the reason.
 *
 * The same association class runs the C-ECHO SCU (a Verification context is proposed on request),
 * and both go over DICOM TLS when the peer has `tls` settings (../tls.ts).
 */
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { open } from 'node:fs/promises';
import dimse from 'dcmjs-dimse';
import { configureDimse } from '../dimse-library.js';
import { cEchoRequest, cStoreRequest, parseCommand, type ParsedCommand } from '../pdu/command-set.js';
import { PDU_TYPE_PDATA, PDV_COMMAND, PDV_ITEM_OVERHEAD, PDV_LAST, pdataHeader, pdataPdu } from '../pdu/pdata.js';
import { scuConnectOptions, type ScuTls } from '../tls.js';
import { SopClass, TransferSyntax, VERIFICATION_TRANSFER_SYNTAXES } from '../uids.js';
import { abortText, associateRejectText, dimseStatusMeaning } from '../words.js';
import { ExplicitToImplicit } from './explicit-to-implicit.js';
import type { Part10Info } from './part10-info.js';

/** What the SCU needs to reach a peer. */
export interface StorePeer {
  host: string;
  port: number;
  calledAeTitle: string;
  callingAeTitle: string;
  /** Connect / association / response (idle) timeout in milliseconds. */
  timeoutMs: number;
  /** DICOM TLS instead of plain TCP. */
  tls?: ScuTls;
}

export type StoreOutcome = 'sent' | 'warning' | 'failed';

export interface StoreFileResult {
  file: string;
  outcome: StoreOutcome;
  status?: number;
  /** Failure reason, or the warning status text. */
  reason?: string;
  /** Set when the dataset had to be re-encoded into another uncompressed transfer syntax. */
  convertedTo?: string;
}

/** Syntaxes a file may be re-encoded into when its own is refused (values unchanged), by source syntax. */
const FALLBACKS: ReadonlyMap<string, string> = new Map([[TransferSyntax.ExplicitVRLittleEndian, TransferSyntax.ImplicitVRLittleEndian]]);
/** Presentation context IDs are odd numbers 1..255. */
export const MAX_PRESENTATION_CONTEXTS = 128;
/** Largest PDV value we send when the peer sets no limit (max PDU 0) or a very large one. */
const MAX_PDV_VALUE = 4 * 1024 * 1024;
/** Bytes read from a file at once (rounded to whole PDVs). */
const READ_SIZE = 1024 * 1024;
/** Largest PDU we accept from the peer (answers and association PDUs are small). */
const MAX_INCOMING_PDU = 1024 * 1024;

const pairKey = (sopClassUid: string, ts: string): string => `${sopClassUid}|${ts}`;

/** The (SOP class, transfer syntax) pairs to propose for these files, in first-seen order. */
export function proposedPairs(files: readonly Pick<Part10Info, 'sopClassUid' | 'transferSyntaxUid'>[]): Array<[string, string]> {
  const out = new Map<string, [string, string]>();
  for (const f of files) out.set(pairKey(f.sopClassUid, f.transferSyntaxUid), [f.sopClassUid, f.transferSyntaxUid]);
  for (const f of files) {
    const ts = FALLBACKS.get(f.transferSyntaxUid);
    if (ts === undefined) continue;
    const k = pairKey(f.sopClassUid, ts);
    if (!out.has(k)) out.set(k, [f.sopClassUid, ts]);
  }
  return [...out.values()];
}

/** Splits files into runs (in order) whose proposed contexts fit in one association. */
export function planAssociations(files: readonly Part10Info[], maxContexts = MAX_PRESENTATION_CONTEXTS): Part10Info[][] {
  const batches: Part10Info[][] = [];
  let current: Part10Info[] = [];
  let keys = new Set<string>();
  for (const f of files) {
    const fallback = FALLBACKS.get(f.transferSyntaxUid);
    const needed = [pairKey(f.sopClassUid, f.transferSyntaxUid), ...(fallback ? [pairKey(f.sopClassUid, fallback)] : [])];
    const added = needed.filter((k) => !keys.has(k)).length;
    if (current.length > 0 && keys.size + added > maxContexts) {
      batches.push(current);
      current = [];
      keys = new Set();
    }
    current.push(f);
    for (const k of needed) keys.add(k);
  }
  if (current.length > 0) batches.push(current);
  return batches;
}

export function classifyStatus(status: number): StoreOutcome {
  if (status === 0x0000) return 'sent';
  if (status === 0x0001 || (status & 0xf000) === 0xb000) return 'warning';
  return 'failed';
}

const hex4 = (n: number): string => `0x${n.toString(16).padStart(4, '0')}`;

type DimseAssociation = InstanceType<typeof dimse.association.Association>;
type DimseNetwork = InstanceType<typeof dimse.Scp>;
type NetworkOptions = ConstructorParameters<typeof dimse.Scp>[1];
/** Fields of dcmjs-dimse's Network that its typings do not declare. */
interface NetworkInternals {
  lastPduTime: number | undefined;
}

/** dcmjs-dimse's Network class (exported only as the base class of Scp). */
function networkClass(): new (socket: Socket, opts?: NetworkOptions) => DimseNetwork {
  return Object.getPrototypeOf(dimse.Scp) as new (
    socket: Socket,
    opts?: NetworkOptions,
  ) => DimseNetwork;
}

interface Pending {
  messageId: number;
  resolve(cmd: ParsedCommand): void;
}

/**
 * Splits the peer's byte stream into PDUs: P-DATA-TF bodies are read here (command PDVs only),
 * everything else is handed to the library's own socket handler.
 */
class IncomingPdus {
  private buf: Buffer = Buffer.alloc(0);
  private command: Buffer[] = [];
  private failed = false;

  constructor(
    private readonly forward: (pdu: Buffer) => void,
    private readonly onCommand: (pc: number, cmd: Buffer) => void,
    private readonly violation: (reason: string) => void,
  ) {}

  feed(chunk: Buffer): void {
    if (this.failed) return;
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    while (this.buf.length >= 6 && !this.failed) {
      const type = this.buf[0]!;
      const length = this.buf.readUInt32BE(2);
      if (type < 1 || type > 7) {
        this.fail(`unknown PDU type 0x${type.toString(16)} from the peer`);
        return;
      }
      if (length > MAX_INCOMING_PDU) {
        this.fail(`PDU of ${length} bytes from the peer is too long`);
        return;
      }
      if (this.buf.length < 6 + length) return;
      const pdu = this.buf.subarray(0, 6 + length);
      this.buf = this.buf.subarray(6 + length);
      if (type === PDU_TYPE_PDATA) this.pdata(pdu);
      else this.forward(Buffer.from(pdu));
    }
  }

  private pdata(pdu: Buffer): void {
    let pos = 6;
    while (pos < pdu.length) {
      if (pos + 6 > pdu.length) {
        this.fail('P-DATA-TF ends inside a PDV header');
        return;
      }
      const itemLength = pdu.readUInt32BE(pos);
      if (itemLength < 2 || pos + 4 + itemLength > pdu.length) {
        this.fail(`PDV item length ${itemLength} does not fit its PDU`);
        return;
      }
      const pc = pdu[pos + 4]!;
      const ctrl = pdu[pos + 5]!;
      const value = pdu.subarray(pos + 6, pos + 4 + itemLength);
      pos += 4 + itemLength;
      if ((ctrl & PDV_COMMAND) === 0) {
        this.fail('the peer sent a dataset where only C-STORE responses are expected');
        return;
      }
      this.command.push(Buffer.from(value));
      if (ctrl & PDV_LAST) {
        const cmd = Buffer.concat(this.command);
        this.command = [];
        this.onCommand(pc, cmd);
      }
    }
  }

  private fail(reason: string): void {
    if (this.failed) return;
    this.failed = true;
    this.violation(reason);
  }
}

/** One association: negotiate, C-STORE each file in turn, release. */
export class StoreAssociation {
  private readonly socket: Socket;
  private readonly network: DimseNetwork;
  private readonly association: DimseAssociation;
  /** Proposed context ID → [SOP class, transfer syntax]. */
  private readonly proposed = new Map<number, [string, string]>();
  /** Accepted (SOP class|transfer syntax) → context ID. */
  private readonly accepted = new Map<string, number>();
  private maxPdvValue = 0;
  private messageId = 0;
  private pending: Pending | undefined;
  /** Set once the association cannot carry more (rejected, aborted, closed, protocol error). */
  private failure: string | undefined;
  private readonly failureWaiters = new Set<(reason: string) => void>();
  private released = false;
  private readonly closed: Promise<void>;

  /** Presentation context ID proposed for Verification (C-ECHO), when asked for. */
  private readonly verificationPc: number | undefined;

  constructor(
    private readonly peer: StorePeer,
    files: readonly Part10Info[],
    opts: { verification?: boolean } = {},
  ) {
    configureDimse();
    this.association = new dimse.association.Association(peer.callingAeTitle, peer.calledAeTitle);
    for (const [sopClass, ts] of proposedPairs(files)) {
      const id = this.association.addPresentationContext(sopClass);
      this.association.addTransferSyntaxToPresentationContext(id, ts);
      this.proposed.set(id, [sopClass, ts]);
    }
    if (opts.verification) {
      const id = this.association.addPresentationContext(SopClass.Verification);
      for (const ts of VERIFICATION_TRANSFER_SYNTAXES) this.association.addTransferSyntaxToPresentationContext(id, ts);
      this.verificationPc = id;
    }
    this.socket = peer.tls
      ? tlsConnect(scuConnectOptions(peer.host, peer.port, peer.tls))
      : connect({ host: peer.host, port: peer.port, noDelay: true });
    this.socket.setNoDelay(true);
    const Network = networkClass();
    this.network = new Network(this.socket, {
      connectTimeout: peer.timeoutMs,
      associationTimeout: peer.timeoutMs,
      pduTimeout: peer.timeoutMs,
    });
    // Take the socket's data away from the library: we read P-DATA ourselves, it gets the rest.
    const libraryHandlers = this.socket.listeners('data') as Array<(chunk: Buffer) => void>;
    this.socket.removeAllListeners('data');
    const incoming = new IncomingPdus(
      (pdu) => {
        for (const h of libraryHandlers) h(pdu);
      },
      (pc, cmd) => this.onCommand(pc, cmd),
      (reason) => this.abort(`protocol error: ${reason}`),
    );
    this.socket.on('data', (chunk: Buffer) => {
      this.touch();
      incoming.feed(chunk);
    });
    this.closed = new Promise((resolve) => this.socket.once('close', () => resolve()));
    this.socket.once('close', () => this.fail('connection closed by the peer'));
    this.network.on('networkError', (e: Error) => {
      this.fail(`network: ${e.message}`);
      this.socket.destroy();
    });
    this.network.on('abort', (a: { source?: number; reason?: number }) => {
      this.fail(abortText(a ?? {}));
      this.socket.destroy();
    });
  }

  /** Keeps the library's idle (PDU) timer in step with traffic it does not see. */
  private touch(): void {
    (this.network as unknown as NetworkInternals).lastPduTime = Date.now();
  }

  private fail(reason: string): void {
    if (this.failure) return;
    this.failure = reason;
    for (const w of this.failureWaiters) w(reason);
    this.failureWaiters.clear();
  }

  /** A promise that rejects when the association fails (for racing waits against it). */
  private failed(): { promise: Promise<never>; cancel(): void } {
    let waiter: ((reason: string) => void) | undefined;
    const promise = new Promise<never>((_, reject) => {
      if (this.failure) return reject(new Error(this.failure));
      waiter = (reason) => reject(new Error(reason));
      this.failureWaiters.add(waiter);
    });
    promise.catch(() => undefined);
    return { promise, cancel: () => waiter && this.failureWaiters.delete(waiter) };
  }

  private async race<T>(p: Promise<T>): Promise<T> {
    const f = this.failed();
    try {
      return await Promise.race([p, f.promise]);
    } finally {
      f.cancel();
    }
  }

  /** Connects and negotiates; resolves with the outcome, never rejects. */
  async open(): Promise<{ ok: true } | { ok: false; reason: string }> {
    const accepted = new Promise<void>((resolve, reject) => {
      this.network.on('connect', () => this.network.sendAssociationRequest(this.association));
      this.network.on('associationAccepted', () => resolve());
      this.network.on('associationRejected', (r: { result?: number; source?: number; reason?: number }) => {
        reject(new Error(associateRejectText(r ?? {})));
        this.socket.end();
      });
    });
    try {
      await this.race(accepted);
    } catch (err) {
      this.fail((err as Error).message);
      this.socket.destroy();
      return { ok: false, reason: (err as Error).message };
    }
    this.touch();
    const peerMax = this.association.getMaxPduLength();
    this.maxPdvValue = peerMax > PDV_ITEM_OVERHEAD ? Math.min(peerMax - PDV_ITEM_OVERHEAD, MAX_PDV_VALUE) : MAX_PDV_VALUE;
    for (const [id, [sopClass, ts]] of this.proposed) {
      const ctx = this.association.getPresentationContext(id);
      if (ctx.getResult() === dimse.constants.PresentationContextResult.Accept && ctx.getAcceptedTransferSyntaxUid() === ts) {
        this.accepted.set(pairKey(sopClass, ts), id);
      }
    }
    return { ok: true };
  }

  /** The peer's max PDU as negotiated (0: no limit). */
  get peerMaxPdu(): number {
    return this.association.getMaxPduLength();
  }

  private rejectionText(sopClass: string, ts: string): string {
    for (const [id, [c, t]] of this.proposed) {
      if (c === sopClass && t === ts) return this.association.getPresentationContext(id).getResultDescription();
    }
    return 'not proposed';
  }

  /** C-STORE of one file; resolves with its result (failures included). */
  async store(file: Part10Info): Promise<StoreFileResult> {
    if (this.failure) return { file: file.path, outcome: 'failed', reason: this.failure };
    let pc = this.accepted.get(pairKey(file.sopClassUid, file.transferSyntaxUid));
    let convertTo: string | undefined;
    const fallback = FALLBACKS.get(file.transferSyntaxUid);
    if (pc === undefined && fallback !== undefined) {
      pc = this.accepted.get(pairKey(file.sopClassUid, fallback));
      if (pc !== undefined) convertTo = fallback;
    }
    if (pc === undefined) {
      return {
        file: file.path,
        outcome: 'failed',
        reason: `peer accepted no presentation context for SOP class ${file.sopClassUid} in transfer syntax ${file.transferSyntaxUid} (${this.rejectionText(file.sopClassUid, file.transferSyntaxUid)})`,
      };
    }
    if (convertTo) {
      // Check the whole dataset converts before anything is sent (a failure half-way through
      // would cost the association).
      const problem = await convertible(file);
      if (problem) return { file: file.path, outcome: 'failed', reason: `cannot re-encode to ${convertTo}: ${problem}` };
    }
    const { messageId, response } = this.nextRequest();
    try {
      await this.write(pdataPdu(pc, PDV_COMMAND | PDV_LAST, cStoreRequest(messageId, file.sopClassUid, file.sopInstanceUid)));
      await this.sendFileDataset(pc, file, convertTo ? new ExplicitToImplicit() : undefined);
      const rsp = await this.race(response);
      const outcome = classifyStatus(rsp.status);
      const detail = `status ${hex4(rsp.status)}, ${dimseStatusMeaning(rsp.status)}${rsp.errorComment ? ` (${rsp.errorComment})` : ''}`;
      return {
        file: file.path,
        outcome,
        status: rsp.status,
        ...(outcome === 'sent' ? {} : { reason: detail }),
        ...(convertTo ? { convertedTo: convertTo } : {}),
      };
    } catch (err) {
      const reason = (err as Error).message;
      // The dataset may be half sent: the association cannot carry on.
      this.abort(reason);
      return { file: file.path, outcome: 'failed', reason };
    } finally {
      this.pending = undefined;
    }
  }

  /** The next message ID, and the response to it (resolved by onCommand). */
  private nextRequest(): { messageId: number; response: Promise<ParsedCommand> } {
    this.messageId = (this.messageId % 0xffff) + 1;
    const messageId = this.messageId;
    const response = new Promise<ParsedCommand>((resolve) => {
      this.pending = { messageId, resolve };
    });
    return { messageId, response };
  }

  /**
   * C-ECHO on the Verification context (the association must have been made with
   * `verification: true`); resolves with the response status, rejects when none comes.
   */
  async echo(): Promise<number> {
    if (this.failure) throw new Error(this.failure);
    const pc = this.verificationPc;
    if (pc === undefined || this.association.getPresentationContext(pc).getResult() !== dimse.constants.PresentationContextResult.Accept) {
      throw new Error('peer did not accept the Verification SOP class');
    }
    const { messageId, response } = this.nextRequest();
    const timer = setTimeout(() => this.abort('no C-ECHO response'), this.peer.timeoutMs);
    try {
      await this.write(pdataPdu(pc, PDV_COMMAND | PDV_LAST, cEchoRequest(messageId)));
      return (await this.race(response)).status;
    } finally {
      clearTimeout(timer);
      this.pending = undefined;
    }
  }

  private onCommand(_pc: number, bytes: Buffer): void {
    const cmd = parseCommand(bytes);
    if (!cmd) {
      this.abort('protocol error: unreadable command set from the peer');
      return;
    }
    if (cmd.commandField !== 0x8001 && cmd.commandField !== 0x8030) return; // Not a C-STORE-RSP / C-ECHO-RSP: nothing we asked for.
    const p = this.pending;
    if (p && cmd.messageIdBeingRespondedTo === p.messageId) {
      this.pending = undefined;
      p.resolve(cmd);
    }
  }

  private async write(buf: Buffer): Promise<void> {
    if (this.failure) throw new Error(this.failure);
    this.touch();
    if (!this.socket.write(buf)) await this.race(new Promise<void>((resolve) => this.socket.once('drain', resolve)));
  }

  /**
   * Writes `data` as PDVs of at most the peer's max, one PDV per P-DATA-TF PDU, in one corked
   * batch; waits for the socket to drain once after the batch (memory stays at one batch).
   */
  private async writePdvs(pc: number, data: Buffer, lastOfDataset: boolean): Promise<void> {
    if (this.failure) throw new Error(this.failure);
    this.touch();
    const max = this.maxPdvValue;
    let ok = true;
    this.socket.cork();
    if (data.length === 0) ok = this.socket.write(pdataHeader(pc, lastOfDataset ? PDV_LAST : 0, 0));
    for (let off = 0; off < data.length; off += max) {
      const end = Math.min(off + max, data.length);
      this.socket.write(pdataHeader(pc, lastOfDataset && end === data.length ? PDV_LAST : 0, end - off));
      ok = this.socket.write(data.subarray(off, end));
    }
    this.socket.uncork();
    if (!ok) await this.race(new Promise<void>((resolve) => this.socket.once('drain', resolve)));
  }

  /** Streams the dataset bytes from disk, READ_SIZE at a time, one PDV per PDU (re-encoded when asked). */
  private async sendFileDataset(pc: number, file: Part10Info, convert?: ExplicitToImplicit): Promise<void> {
    const pdv = this.maxPdvValue;
    const readSize = pdv >= READ_SIZE ? pdv : pdv * Math.floor(READ_SIZE / pdv);
    if (file.datasetLength === 0) return this.writePdvs(pc, Buffer.alloc(0), true);
    for await (const { chunk, last } of readDataset(file, readSize)) {
      if (!convert) {
        await this.writePdvs(pc, chunk, last);
        continue;
      }
      const out = [...convert.push(chunk), ...(last ? convert.end() : [])];
      if (convert.error) throw new Error(`re-encoding failed: ${convert.error}`);
      if (out.length > 0 || last) await this.writePdvs(pc, Buffer.concat(out), last);
    }
  }

  /** A-ABORT (source: service user) and close. */
  abort(reason: string): void {
    const first = !this.failure;
    this.fail(reason);
    if (first && !this.socket.destroyed && this.socket.writable) {
      this.socket.write(Buffer.from([0x07, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00]));
    }
    this.socket.end();
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }

  /** Releases the association (or just closes after a failure); resolves once the socket is closed. */
  async close(): Promise<void> {
    if (!this.failure && !this.released) {
      this.released = true;
      const rp = new Promise<void>((resolve) => this.network.once('associationReleaseResponse', () => resolve()));
      this.network.sendAssociationReleaseRequest();
      const timer = setTimeout(() => this.socket.destroy(), this.peer.timeoutMs);
      try {
        await this.race(rp);
      } catch {
        // Closed or failed instead of answering: nothing more to do.
      } finally {
        clearTimeout(timer);
      }
      this.fail('released');
      this.socket.end();
    } else {
      this.socket.end();
    }
    const t = setTimeout(() => this.socket.destroy(), 1000);
    await this.closed;
    clearTimeout(t);
  }
}

/** The dataset bytes of a file, `size` at a time. */
async function* readDataset(file: Part10Info, size: number): AsyncGenerator<{ chunk: Buffer; last: boolean }> {
  const fh = await open(file.path, 'r');
  try {
    let left = file.datasetLength;
    let pos = file.datasetOffset;
    while (left > 0) {
      const chunk = Buffer.allocUnsafe(Math.min(size, left));
      let have = 0;
      while (have < chunk.length) {
        const { bytesRead } = await fh.read(chunk, have, chunk.length - have, pos + have);
        if (bytesRead === 0) throw new Error(`${file.path} is shorter than when it was scanned`);
        have += bytesRead;
      }
      pos += have;
      left -= have;
      yield { chunk, last: left === 0 };
    }
  } finally {
    await fh.close();
  }
}

/** Runs the explicit-to-implicit re-encoder over a file without sending; the problem, if any. */
async function convertible(file: Part10Info): Promise<string | undefined> {
  const c = new ExplicitToImplicit();
  try {
    for await (const { chunk, last } of readDataset(file, READ_SIZE)) {
      c.push(chunk);
      if (last) c.end();
      if (c.error) return c.error;
    }
  } catch (err) {
    return (err as Error).message;
  }
  return c.error;
}
