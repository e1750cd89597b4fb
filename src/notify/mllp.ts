/**
 * One HL7 message over MLLP (optionally MLLP over TLS), and its ACK read back: connect, send
 * (framing by node-hl7-client's MLLPCodec: <VT> message <FS><CR>), wait for one framed answer,
 * close. Original-mode acknowledgment (MSA-1): AA/CA → accepted; AE/AR/CE/CR → rejected with the
 * receiver's text (MSA-3 / ERR); no answer within the timeout → an error (the caller retries).
 */
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { readFileSync } from 'node:fs';
import { MLLPCodec, Message } from 'node-hl7-client';
import type { TargetTls } from '../config/targets.js';

export interface MllpPeer {
  host: string;
  port: number;
  tls?: TargetTls;
  timeoutMs: number;
}

export type AckOutcome =
  | { accepted: true; code: string; controlId: string }
  | { accepted: false; code: string; controlId: string; reason: string };

export class MllpError extends Error {
  override name = 'MllpError';
}

/** Reads an ACK: MSA-1 code, MSA-2 control ID it acknowledges, and the receiver's text. */
export function readAck(text: string): AckOutcome {
  let msg: Message;
  try {
    msg = new Message({ text: text.replace(/\r?\n/g, '\r').replace(/\r+$/, '') });
  } catch (err) {
    throw new MllpError(`answer is not an HL7 message: ${(err as Error).message}`);
  }
  const code = msg.get('MSA.1').toString().trim().toUpperCase();
  const controlId = msg.get('MSA.2').toString().trim();
  if (!code) throw new MllpError('answer has no MSA segment');
  if (code === 'AA' || code === 'CA') return { accepted: true, code, controlId };
  const words = [msg.get('MSA.3').toString(), msg.get('ERR.8').toString(), msg.get('ERR.3.2').toString()]
    .map((s) => s.trim())
    .filter(Boolean);
  return { accepted: false, code, controlId, reason: words.length ? words.join('; ') : 'no reason given' };
}

/** Sends `message` and resolves with the parsed ACK; rejects on connection problems or timeout. */
export function sendMllp(peer: MllpPeer, message: string): Promise<AckOutcome> {
  return new Promise<AckOutcome>((resolve, reject) => {
    const codec = new MLLPCodec('utf-8');
    let done = false;
    let socket: Socket;
    const finish = (err: Error | null, ack?: AckOutcome): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(ack!);
    };
    const timer = setTimeout(
      () => finish(new MllpError(`no ACK from ${peer.host}:${peer.port} within ${peer.timeoutMs} ms`)),
      peer.timeoutMs,
    );
    const onConnect = (): void => codec.sendMessage(socket, message, 'utf-8');
    if (peer.tls) {
      const t = peer.tls;
      socket = tlsConnect(
        {
          host: peer.host,
          port: peer.port,
          minVersion: 'TLSv1.2',
          ...(t.caFile ? { ca: readFileSync(t.caFile) } : {}),
          ...(t.certFile ? { cert: readFileSync(t.certFile) } : {}),
          ...(t.keyFile ? { key: readFileSync(t.keyFile) } : {}),
          ...(t.verifyHostname === false ? { checkServerIdentity: () => undefined } : {}),
        },
        onConnect,
      );
    } else {
      socket = netConnect({ host: peer.host, port: peer.port }, onConnect);
    }
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      let complete: boolean;
      try {
        complete = codec.receiveData(chunk);
      } catch (err) {
        finish(new MllpError(`bad MLLP frame: ${(err as Error).message}`));
        return;
      }
      if (!complete) return;
      const text = codec.getLastMessage() ?? '';
      try {
        finish(null, readAck(text));
      } catch (err) {
        finish(err as Error);
      }
    });
    socket.on('error', (err: NodeJS.ErrnoException) => finish(new MllpError(`${peer.host}:${peer.port}: ${err.code ?? err.message}`)));
    socket.on('close', () => finish(new MllpError(`${peer.host}:${peer.port} closed the connection without an ACK`)));
  });
}
