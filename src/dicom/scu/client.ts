import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import dimse from 'dcmjs-dimse';
import { configureDimse } from '../dimse-library.js';

const { Client } = dimse;
const { CEchoRequest, CStoreRequest } = dimse.requests;

export interface PeerOptions {
  host: string;
  port: number;
  /** Called AE title (the peer's). */
  calledAeTitle: string;
  callingAeTitle: string;
  /** Connect / association / PDU timeout in milliseconds (default 30 s). */
  timeoutMs?: number;
}

export interface EchoResult {
  ok: boolean;
  status?: number;
  error?: string;
  ms: number;
}

function clientOptions(peer: PeerOptions): {
  connectTimeout: number; associationTimeout: number; pduTimeout: number; datasetWriteOptions: Record<string, unknown>;
} {
  const t = peer.timeoutMs ?? 30_000;
  // The library re-encodes each dataset with dcmjs: send values as they are in the file, even
  // where they break a VR's length rule (real archives hold such files).
  return { connectTimeout: t, associationTimeout: t, pduTimeout: t, datasetWriteOptions: { allowInvalidVRLength: true } };
}

function rejectText(r: { result?: number; source?: number; reason?: number } | undefined): string {
  return `association rejected (result ${r?.result}, source ${r?.source}, reason ${r?.reason})`;
}

/** C-ECHO SCU: one association, one C-ECHO. */
export function echo(peer: PeerOptions): Promise<EchoResult> {
  configureDimse();
  const t0 = Date.now();
  return new Promise((resolve) => {
    const client = new Client();
    const request = new CEchoRequest();
    let status: number | undefined;
    let error: string | undefined;
    request.on('response', (response: InstanceType<typeof dimse.responses.CEchoResponse>) => {
      status = response.getStatus();
    });
    client.on('associationRejected', (r: { result?: number; source?: number; reason?: number }) => {
      error = rejectText(r);
    });
    client.on('networkError', (e: Error) => {
      error ??= e.message;
    });
    client.on('closed', () => {
      resolve({ ok: status === 0 && !error, ...(status === undefined ? {} : { status }), ...(error ? { error } : {}), ms: Date.now() - t0 });
    });
    client.addRequest(request);
    client.send(peer.host, peer.port, peer.callingAeTitle, peer.calledAeTitle, clientOptions(peer));
  });
}

/** Files under the given files and folders (folders recursively), sorted per folder. */
export async function collectFiles(inputs: string[]): Promise<string[]> {
  const out: string[] = [];
  const visit = async (p: string): Promise<void> => {
    const st = await stat(p);
    if (st.isDirectory()) {
      const entries = (await readdir(p)).sort();
      for (const e of entries) await visit(join(p, e));
    } else if (st.isFile()) {
      out.push(p);
    }
  };
  for (const i of inputs) await visit(i);
  return out;
}

export interface SendFailure {
  file: string;
  reason: string;
}

export interface SendResult {
  sent: number;
  failed: SendFailure[];
  ms: number;
  error?: string;
}

/**
 * C-STORE SCU over one association: each file is proposed in its own transfer syntax (plus
 * explicit and implicit VR little endian), datasets are read one at a time while sending.
 */
export function sendFiles(peer: PeerOptions, files: string[]): Promise<SendResult> {
  configureDimse();
  const t0 = Date.now();
  const failed: SendFailure[] = [];
  const requests: Array<{ file: string; request: InstanceType<typeof CStoreRequest>; status?: number; comment?: string }> = [];
  for (const file of files) {
    try {
      const request = new CStoreRequest(file);
      const entry: (typeof requests)[number] = { file, request };
      request.on('response', (response: InstanceType<typeof dimse.responses.CStoreResponse>) => {
        entry.status = response.getStatus();
        const comment = response.getErrorComment?.();
        if (comment) entry.comment = comment;
      });
      requests.push(entry);
    } catch (err) {
      failed.push({ file, reason: `not a readable DICOM file: ${(err as Error).message}` });
    }
  }
  if (requests.length === 0) return Promise.resolve({ sent: 0, failed, ms: Date.now() - t0 });
  return new Promise((resolve) => {
    const client = new Client();
    let error: string | undefined;
    client.on('associationRejected', (r: { result?: number; source?: number; reason?: number }) => {
      error = rejectText(r);
    });
    client.on('networkError', (e: Error) => {
      error ??= e.message;
    });
    client.on('closed', () => {
      let sent = 0;
      for (const r of requests) {
        // Success, or a warning (0001, Bxxx): stored.
        if (r.status !== undefined && (r.status === 0 || r.status === 1 || (r.status & 0xf000) === 0xb000)) sent++;
        else {
          failed.push({
            file: r.file,
            reason: r.status === undefined
              ? (error ?? 'no response (no accepted presentation context?)')
              : `status 0x${r.status.toString(16).padStart(4, '0')}${r.comment ? ` (${r.comment})` : ''}`,
          });
        }
      }
      resolve({ sent, failed, ms: Date.now() - t0, ...(error ? { error } : {}) });
    });
    for (const r of requests) client.addRequest(r.request);
    client.send(peer.host, peer.port, peer.callingAeTitle, peer.calledAeTitle, clientOptions(peer));
  });
}
