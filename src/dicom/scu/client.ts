import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { ScuTls } from '../tls.js';
import { readPart10Info, type Part10Info } from './part10-info.js';
import { planAssociations, StoreAssociation, type StoreFileResult, type StorePeer } from './store-scu.js';

export interface PeerOptions {
  host: string;
  port: number;
  /** Called AE title (the peer's). */
  calledAeTitle: string;
  callingAeTitle: string;
  /** Connect / association / PDU timeout in milliseconds (default 30 s). */
  timeoutMs?: number;
  /** DICOM TLS instead of plain TCP. */
  tls?: ScuTls;
}

export interface EchoResult {
  ok: boolean;
  status?: number;
  error?: string;
  ms: number;
}

const DEFAULT_TIMEOUT_MS = 30_000;

/** C-ECHO SCU: one association (Verification only), one C-ECHO, release. */
export async function echo(peer: PeerOptions): Promise<EchoResult> {
  const t0 = Date.now();
  const assoc = new StoreAssociation({ ...peer, timeoutMs: peer.timeoutMs ?? DEFAULT_TIMEOUT_MS }, [], { verification: true });
  const opened = await assoc.open();
  if (!opened.ok) return { ok: false, error: opened.reason, ms: Date.now() - t0 };
  let status: number | undefined;
  let error: string | undefined;
  try {
    status = await assoc.echo();
  } catch (err) {
    error = (err as Error).message;
  }
  await assoc.close();
  return { ok: status === 0 && !error, ...(status === undefined ? {} : { status }), ...(error ? { error } : {}), ms: Date.now() - t0 };
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
  /** Stored with Success or a warning status. */
  sent: number;
  /** Of `sent`, stored with a warning status (0001, Bxxx). */
  warnings: number;
  /** Of `sent`, Explicit VR LE re-encoded to Implicit VR LE (values unchanged) because the peer refused the former. */
  converted: number;
  failed: SendFailure[];
  /** Associations opened. */
  associations: number;
  ms: number;
  error?: string;
}

const SCAN_CONCURRENCY = 8;

export interface SendOptions {
  /** Called after each file (sent or failed). */
  onProgress?(done: number, total: number): void;
  /** Called with each file's own outcome (sent / warning / failed, status, reason), in send order. */
  onResult?(result: StoreFileResult): void;
}

/**
 * C-STORE SCU (scu/store-scu.ts): each file's dataset is sent exactly as stored, in its own
 * transfer syntax, streamed from disk; as few associations as the presentation context limit
 * allows (one for ordinary runs).
 */
export async function sendFiles(peer: PeerOptions, files: string[], opts: SendOptions = {}): Promise<SendResult> {
  const t0 = Date.now();
  const failed: SendFailure[] = [];
  const infos: Part10Info[] = [];
  let done = 0;
  const progress = (): void => opts.onProgress?.(++done, files.length);
  const report = (r: StoreFileResult): void => opts.onResult?.(r);
  // Headers first (a few KiB of each file, SCAN_CONCURRENCY at a time, order kept): the
  // presentation contexts must be known before the association is requested.
  const scanned: Array<Part10Info | Error> = new Array<Part10Info | Error>(files.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < files.length) {
      const i = next++;
      scanned[i] = await readPart10Info(files[i]!).catch((err: unknown) => (err instanceof Error ? err : new Error(String(err))));
    }
  };
  await Promise.all(Array.from({ length: Math.min(SCAN_CONCURRENCY, files.length) }, worker));
  for (let i = 0; i < files.length; i++) {
    const s = scanned[i]!;
    if (s instanceof Error) {
      failed.push({ file: files[i]!, reason: `not a readable DICOM file: ${s.message}` });
      report({ file: files[i]!, outcome: 'failed', reason: `not a readable DICOM file: ${s.message}` });
      progress();
    } else {
      infos.push(s);
    }
  }
  const storePeer: StorePeer = { ...peer, timeoutMs: peer.timeoutMs ?? DEFAULT_TIMEOUT_MS };
  let sent = 0;
  let warnings = 0;
  let converted = 0;
  let associations = 0;
  let error: string | undefined;
  for (const batch of planAssociations(infos)) {
    const assoc = new StoreAssociation(storePeer, batch);
    associations++;
    const opened = await assoc.open();
    if (!opened.ok) {
      error ??= opened.reason;
      for (const f of batch) {
        failed.push({ file: f.path, reason: opened.reason });
        report({ file: f.path, outcome: 'failed', reason: opened.reason });
        progress();
      }
      continue;
    }
    for (const f of batch) {
      const r = await assoc.store(f);
      report(r);
      if (r.outcome === 'failed') failed.push({ file: r.file, reason: r.reason ?? 'failed' });
      else {
        sent++;
        if (r.outcome === 'warning') warnings++;
        if (r.convertedTo) converted++;
      }
      progress();
    }
    await assoc.close();
  }
  return { sent, warnings, converted, failed, associations, ms: Date.now() - t0, ...(error ? { error } : {}) };
}
