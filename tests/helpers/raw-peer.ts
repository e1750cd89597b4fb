/**
 * Our own DICOM UL peer for tests: PDUs built byte by byte (so a test can send exactly what a
 * broken or hostile SCU would), and a small client that reads the listener's answers PDU by PDU.
 * Encoders for P-DATA-TF and command sets come from src/dicom/pdu (the ones the node itself uses).
 */
import { readFile } from 'node:fs/promises';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { cEchoRequest, cStoreRequest, parseCommand, type ParsedCommand } from '../../src/dicom/pdu/command-set.js';
import { PDV_COMMAND, PDV_LAST, pdataPdu } from '../../src/dicom/pdu/pdata.js';
import { readPart10Info } from '../../src/dicom/scu/part10-info.js';

export const CT_IMAGE_STORAGE = '1.2.840.10008.5.1.4.1.1.2';
export const VERIFICATION = '1.2.840.10008.1.1';
export const IMPLICIT_LE = '1.2.840.10008.1.2';
export const EXPLICIT_LE = '1.2.840.10008.1.2.1';
export const JPEG_LOSSLESS_SV1 = '1.2.840.10008.1.2.4.70';

export const PduType = { AssociateRq: 1, AssociateAc: 2, AssociateRj: 3, PData: 4, ReleaseRq: 5, ReleaseRp: 6, Abort: 7 } as const;

/** A PDU: type, reserved byte, 32-bit length, body. */
export function pdu(type: number, body: Buffer): Buffer {
  const h = Buffer.alloc(6);
  h[0] = type;
  h.writeUInt32BE(body.length, 2);
  return Buffer.concat([h, body]);
}

/** One PDV item: length, presentation context ID, control header, value. */
export function pdv(pc: number, ctrl: number, value: Buffer): Buffer {
  const h = Buffer.alloc(6);
  h.writeUInt32BE(value.length + 2, 0);
  h[4] = pc;
  h[5] = ctrl;
  return Buffer.concat([h, value]);
}

export interface ProposedContext {
  id: number;
  abstractSyntax: string;
  transferSyntaxes: string[];
}

/** A-ASSOCIATE-RQ (PS3.8 9.3.2). Default: Verification and CT Image Storage in explicit and implicit VR LE. */
export function associateRq(opts: { called?: string; calling?: string; contexts?: ProposedContext[]; maxPdu?: number } = {}): Buffer {
  const ae = (s: string): Buffer => Buffer.from(s.padEnd(16, ' ').slice(0, 16), 'ascii');
  const item = (type: number, body: Buffer): Buffer => {
    const h = Buffer.alloc(4);
    h[0] = type;
    h.writeUInt16BE(body.length, 2);
    return Buffer.concat([h, body]);
  };
  const uid = (type: number, s: string): Buffer => item(type, Buffer.from(s, 'ascii'));
  const contexts = opts.contexts ?? [
    { id: 1, abstractSyntax: VERIFICATION, transferSyntaxes: [IMPLICIT_LE] },
    { id: 3, abstractSyntax: CT_IMAGE_STORAGE, transferSyntaxes: [EXPLICIT_LE] },
    { id: 5, abstractSyntax: CT_IMAGE_STORAGE, transferSyntaxes: [IMPLICIT_LE] },
    { id: 7, abstractSyntax: CT_IMAGE_STORAGE, transferSyntaxes: [JPEG_LOSSLESS_SV1] },
  ];
  const pcs = contexts.map((c) =>
    item(0x20, Buffer.concat([Buffer.from([c.id, 0, 0, 0]), uid(0x30, c.abstractSyntax), ...c.transferSyntaxes.map((t) => uid(0x40, t))])),
  );
  const maxPdu = Buffer.alloc(4);
  maxPdu.writeUInt32BE(opts.maxPdu ?? 16384, 0);
  const user = item(0x50, Buffer.concat([item(0x51, maxPdu), uid(0x52, '1.2.3.4')]));
  return pdu(
    PduType.AssociateRq,
    Buffer.concat([
      Buffer.from([0, 1, 0, 0]),
      ae(opts.called ?? 'MLSAM'),
      ae(opts.calling ?? 'RAWSCU'),
      Buffer.alloc(32),
      uid(0x10, '1.2.840.10008.3.1.1.1'),
      ...pcs,
      user,
    ]),
  );
}

export const releaseRq = (): Buffer => pdu(PduType.ReleaseRq, Buffer.alloc(4));
export const abortPdu = (): Buffer => pdu(PduType.Abort, Buffer.alloc(4));

/** C-STORE-RQ command set in one P-DATA-TF PDU. */
export function cStoreRq(pc: number, messageId: number, sopClassUid: string, sopInstanceUid: string): Buffer {
  return pdataPdu(pc, PDV_COMMAND | PDV_LAST, cStoreRequest(messageId, sopClassUid, sopInstanceUid));
}

/** C-ECHO-RQ command set in one P-DATA-TF PDU. */
export function cEchoRq(pc: number, messageId: number): Buffer {
  return pdataPdu(pc, PDV_COMMAND | PDV_LAST, cEchoRequest(messageId));
}

/** A dataset as P-DATA-TF PDUs of at most `maxValue` bytes each, the last one flagged last (unless `last` is false). */
export function datasetPdus(pc: number, data: Buffer, maxValue = 16000, last = true): Buffer[] {
  const out: Buffer[] = [];
  if (data.length === 0) return [pdataPdu(pc, last ? PDV_LAST : 0, Buffer.alloc(0))];
  for (let off = 0; off < data.length; off += maxValue) {
    const end = Math.min(off + maxValue, data.length);
    out.push(pdataPdu(pc, last && end === data.length ? PDV_LAST : 0, data.subarray(off, end)));
  }
  return out;
}

/** The dataset bytes of a Part-10 file (after its meta group) and its transfer syntax. */
export async function datasetOfFile(
  path: string,
): Promise<{ data: Buffer; transferSyntaxUid: string; sopInstanceUid: string; sopClassUid: string }> {
  const info = await readPart10Info(path);
  const bytes = await readFile(path);
  return {
    data: bytes.subarray(info.datasetOffset),
    transferSyntaxUid: info.transferSyntaxUid,
    sopInstanceUid: info.sopInstanceUid,
    sopClassUid: info.sopClassUid,
  };
}

export interface ReceivedPdu {
  type: number;
  body: Buffer;
}

export interface AssociateResult {
  type: number;
  /** Accepted presentation context IDs → transfer syntax. */
  accepted: Map<number, string>;
  /** A-ASSOCIATE-RJ result, source, reason. */
  reject?: { result: number; source: number; reason: number };
}

/** Reads the (result, transfer syntax) of each presentation context item of an A-ASSOCIATE-AC body. */
function parseAccept(body: Buffer): Map<number, string> {
  const out = new Map<number, string>();
  let pos = 68;
  while (pos + 4 <= body.length) {
    const type = body[pos]!;
    const len = body.readUInt16BE(pos + 2);
    if (type === 0x21) {
      const id = body[pos + 4]!;
      const result = body[pos + 6]!;
      let p = pos + 8;
      while (p + 4 <= pos + 4 + len) {
        const sl = body.readUInt16BE(p + 2);
        if (body[p] === 0x40 && result === 0) out.set(id, body.toString('ascii', p + 4, p + 4 + sl).replace(/\0+$/, ''));
        p += 4 + sl;
      }
    }
    pos += 4 + len;
  }
  return out;
}

/**
 * A raw SCU connection. Incoming bytes are split into PDUs; an A-ABORT or A-ASSOCIATE-RJ from
 * the listener makes it close its side, as a conforming peer does (unless `closeOnAbort: false`).
 */
export class RawPeer {
  readonly pdus: ReceivedPdu[] = [];
  private buf = Buffer.alloc(0);
  private waiters: Array<() => void> = [];
  closed = false;
  readonly closedPromise: Promise<void>;
  private messageId = 0;

  private constructor(
    readonly socket: Socket,
    private readonly opts: { closeOnAbort: boolean },
  ) {
    socket.setNoDelay(true);
    socket.on('data', (d: Buffer) => this.onData(d));
    socket.on('error', () => undefined);
    this.closedPromise = new Promise((resolve) =>
      socket.once('close', () => {
        this.closed = true;
        this.wake();
        resolve();
      }),
    );
  }

  static async connect(port: number, opts: { closeOnAbort?: boolean; tls?: ConnectionOptions } = {}): Promise<RawPeer> {
    const socket = opts.tls ? tlsConnect({ host: '127.0.0.1', port, ...opts.tls }) : netConnect({ host: '127.0.0.1', port });
    await new Promise<void>((resolve, reject) => {
      socket.once(opts.tls ? 'secureConnect' : 'connect', () => resolve());
      socket.once('error', reject);
    });
    return new RawPeer(socket, { closeOnAbort: opts.closeOnAbort ?? true });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  private onData(d: Buffer): void {
    this.buf = Buffer.concat([this.buf, d]);
    while (this.buf.length >= 6) {
      const len = this.buf.readUInt32BE(2);
      if (this.buf.length < 6 + len) break;
      const p = { type: this.buf[0]!, body: Buffer.from(this.buf.subarray(6, 6 + len)) };
      this.buf = this.buf.subarray(6 + len);
      this.pdus.push(p);
      if (this.opts.closeOnAbort && (p.type === PduType.Abort || p.type === PduType.AssociateRj)) this.socket.end();
    }
    this.wake();
  }

  /** Writes bytes; resolves once they are handed to the kernel (false when the socket is gone). */
  write(bytes: Buffer): Promise<boolean> {
    if (this.socket.destroyed || !this.socket.writable) return Promise.resolve(false);
    return new Promise((resolve) => {
      this.socket.write(bytes, (err) => resolve(!err));
    });
  }

  /** The next PDU not yet taken, or undefined when the connection closed or `timeoutMs` passed. */
  async next(timeoutMs = 10_000): Promise<ReceivedPdu | undefined> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const p = this.pdus.shift();
      if (p) return p;
      if (this.closed || Date.now() >= until) return undefined;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.max(1, until - Date.now()));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Resolves true once the connection is closed, false when `timeoutMs` passed first. */
  async waitClosed(timeoutMs = 10_000): Promise<boolean> {
    if (this.closed) return true;
    let t: NodeJS.Timeout | undefined;
    const r = await Promise.race([
      this.closedPromise.then(() => true),
      new Promise<boolean>((resolve) => (t = setTimeout(() => resolve(false), timeoutMs))),
    ]);
    clearTimeout(t);
    return r;
  }

  async associate(opts: Parameters<typeof associateRq>[0] = {}): Promise<AssociateResult> {
    await this.write(associateRq(opts));
    const p = await this.next();
    if (!p) throw new Error('no answer to A-ASSOCIATE-RQ');
    if (p.type === PduType.AssociateAc) return { type: p.type, accepted: parseAccept(p.body) };
    if (p.type === PduType.AssociateRj)
      return { type: p.type, accepted: new Map(), reject: { result: p.body[1]!, source: p.body[2]!, reason: p.body[3]! } };
    return { type: p.type, accepted: new Map() };
  }

  /** The next command set the listener sends (C-STORE-RSP, C-ECHO-RSP), or the PDU type that came instead. */
  async response(timeoutMs = 10_000): Promise<ParsedCommand | { pduType: number } | undefined> {
    const p = await this.next(timeoutMs);
    if (!p) return undefined;
    if (p.type !== PduType.PData) return { pduType: p.type };
    // One PDV, command + last (how the listener answers).
    return parseCommand(p.body.subarray(6)) ?? { pduType: p.type };
  }

  /** C-STORE of a dataset on `pc`; resolves with the response status, or undefined when none came. */
  async store(
    pc: number,
    sopClassUid: string,
    sopInstanceUid: string,
    data: Buffer,
    opts: { maxValue?: number; timeoutMs?: number } = {},
  ): Promise<number | undefined> {
    this.messageId = (this.messageId % 0xffff) + 1;
    await this.write(Buffer.concat([cStoreRq(pc, this.messageId, sopClassUid, sopInstanceUid), ...datasetPdus(pc, data, opts.maxValue)]));
    const r = await this.response(opts.timeoutMs);
    return r && 'status' in r ? r.status : undefined;
  }

  /** A-RELEASE-RQ; resolves true when A-RELEASE-RP came back. */
  async release(timeoutMs = 10_000): Promise<boolean> {
    await this.write(releaseRq());
    const p = await this.next(timeoutMs);
    this.socket.end();
    return p?.type === PduType.ReleaseRp;
  }

  destroy(): void {
    this.socket.destroy();
  }
}
