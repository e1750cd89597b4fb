/**
 * Runs fuzz cases (fuzz-cases.ts) against a listener in its own process and judges it:
 *  - crash: the listener process exits;
 *  - hang: a connection the listener neither answers to the end nor closes within the deadline,
 *    or a C-ECHO liveness probe (every 200 cases) that gets no answer;
 *  - Success ⇒ stored and valid: every SOP instance answered 0x0000 is in the spool, the
 *    spooled dataset is the one sent (where the framing left it intact), and every spooled file
 *    is read to its end by our walker and by DCMTK's dcmdump;
 *  - resources: RSS, open descriptors and temp files sampled throughout; after the run the
 *    descriptors return to their baseline and no temp file is left.
 * Failing cases are saved as JSON (fuzz-cases.ts serializeCase) for FUZZ_REPLAY.
 */
import { readdirSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseCommand } from '../../src/dicom/pdu/command-set.js';
import { startListenerChild, type ListenerChild } from '../helpers/listener-child.js';
import { cEchoRq, PduType, RawPeer, type ReceivedPdu } from '../helpers/raw-peer.js';
import { createHash } from 'node:crypto';
import { caseOfUid, serializeCase, type FuzzCase } from './fuzz-cases.js';
import { checkSpool, spooledDataset } from './spool-check.js';

/** The listener's settings under fuzzing: short timeouts so that every broken session ends fast. */
export const FUZZ_LISTENER_ENV: Record<string, string> = {
  MLSAM_DICOM__IDLE_TIMEOUT_SECONDS: '1',
  MLSAM_DICOM__ASSOCIATION_TIMEOUT_SECONDS: '1',
  MLSAM_DICOM__ARTIM_TIMEOUT_SECONDS: '1',
  MLSAM_DICOM__PROGRESS_TIMEOUT_SECONDS: '1',
  MLSAM_DICOM__MIN_TRANSFER_BYTES_PER_SECOND: '1000',
  MLSAM_DICOM__MAX_ASSOCIATIONS: '64',
  MLSAM_DICOM__MAX_PDU_LENGTH: '16384',
};

/** A connection must be closed (by the listener's answer or its timeouts) this long after our last byte. */
const HANG_MS = 15_000;

export interface CaseOutcome {
  index: number;
  /** C-STORE-RSP statuses by SOP Instance UID. */
  stores: Array<{ sopInstanceUid: string; status: number }>;
  pduTypes: number[];
  hang: boolean;
  ms: number;
}

export interface FuzzFailure {
  index: number;
  kind: 'crash' | 'hang' | 'success-not-stored' | 'stored-differs' | 'invalid-in-spool' | 'unresponsive';
  detail: string;
  saved?: string;
}

export interface FuzzReport {
  seed: number;
  cases: number;
  concurrency: number;
  ms: number;
  crashes: number;
  hangs: number;
  failures: FuzzFailure[];
  statuses: Record<string, number>;
  acknowledged: number;
  spooled: number;
  rssMb: { baseline: number; peak: number; end: number };
  fds: { baseline: number; peak: number; end: number };
  tempFiles: { peak: number; end: number };
  mutations: Record<string, number>;
}

/** Sends one case on a fresh connection; collects what comes back until the listener is done with it. */
export async function runCase(port: number, c: FuzzCase): Promise<CaseOutcome> {
  const t0 = Date.now();
  const peer = await RawPeer.connect(port);
  const handled: number[] = [];
  const stores: CaseOutcome['stores'] = [];
  const handle = (p: ReceivedPdu): void => {
    handled.push(p.type);
    if (p.type === PduType.ReleaseRp) peer.socket.end();
    if (p.type !== PduType.PData || p.body.length < 6) return;
    const cmd = parseCommand(p.body.subarray(6));
    if (cmd?.commandField === 0x8001) stores.push({ sopInstanceUid: cmd.affectedSopInstanceUid, status: cmd.status });
  };
  const drain = (): void => {
    for (let p = peer.pdus.shift(); p; p = peer.pdus.shift()) handle(p);
  };
  for (const s of c.segments) {
    if (peer.closed) break;
    if (s.reset) {
      peer.socket.resetAndDestroy();
      break;
    }
    if (s.bytes.length) await peer.write(s.bytes);
    if (s.delayMs) await new Promise((r) => setTimeout(r, s.delayMs));
    drain();
  }
  const until = Date.now() + HANG_MS;
  while (!peer.closed && Date.now() < until) {
    const p = await peer.next(until - Date.now());
    if (p) handle(p);
    drain();
  }
  drain();
  const hang = !peer.closed;
  if (hang) peer.destroy();
  return { index: c.index, stores, pduTypes: handled, hang, ms: Date.now() - t0 };
}

/** A C-ECHO on a fresh association; true when it is answered Success. */
export async function liveness(port: number): Promise<boolean> {
  try {
    const peer = await RawPeer.connect(port);
    const a = await peer.associate();
    if (a.type !== PduType.AssociateAc) return false;
    await peer.write(cEchoRq(1, 1));
    const r = await peer.response(10_000);
    await peer.release();
    return r !== undefined && 'status' in r && r.status === 0;
  } catch {
    return false;
  }
}

export interface CampaignOptions {
  spoolDir: string;
  artifactsDir: string;
  cases: (i: number) => FuzzCase;
  count: number;
  seed: number;
  concurrency: number;
  onProgress?(done: number, total: number, report: FuzzReport): void;
}

const mb = (n: number): number => Math.round((n / 1048576) * 10) / 10;

export async function runCampaign(opts: CampaignOptions): Promise<FuzzReport> {
  const t0 = Date.now();
  const failuresDir = join(opts.artifactsDir, 'fuzz-failures');
  let listener: ListenerChild = await startListenerChild({ spoolDir: opts.spoolDir, env: FUZZ_LISTENER_ENV, sampleMs: 500 });
  await new Promise((r) => setTimeout(r, 300));
  const report: FuzzReport = {
    seed: opts.seed,
    cases: opts.count,
    concurrency: opts.concurrency,
    ms: 0,
    crashes: 0,
    hangs: 0,
    failures: [],
    statuses: {},
    acknowledged: 0,
    spooled: 0,
    rssMb: { baseline: mb(listener.rss()), peak: 0, end: 0 },
    fds: { baseline: listener.fds(), peak: 0, end: 0 },
    tempFiles: { peak: 0, end: 0 },
    mutations: {},
  };
  const tmpCount = (): number => {
    try {
      return readdirSync(join(opts.spoolDir, '.tmp')).length;
    } catch {
      return 0;
    }
  };
  const sample = (): void => {
    if (listener.exited()) return;
    try {
      report.rssMb.peak = Math.max(report.rssMb.peak, mb(listener.rss()));
      report.fds.peak = Math.max(report.fds.peak, listener.fds());
    } catch {
      // the process is just going away
    }
    report.tempFiles.peak = Math.max(report.tempFiles.peak, tmpCount());
  };
  const sampler = setInterval(sample, 200);
  const save = async (c: FuzzCase, problem: string): Promise<string> => {
    await mkdir(failuresDir, { recursive: true });
    const path = join(failuresDir, `case-${c.seed}-${c.index}.json`);
    await writeFile(path, serializeCase(c, problem));
    return path;
  };
  const fail = async (c: FuzzCase | undefined, kind: FuzzFailure['kind'], detail: string): Promise<void> => {
    const f: FuzzFailure = { index: c?.index ?? -1, kind, detail };
    if (c) f.saved = await save(c, `${kind}: ${detail}`);
    report.failures.push(f);
  };
  /** Acknowledged instances: their case and the hash of the dataset sent for them (when known). */
  const acked = new Map<string, { pos: number; sha?: string }>();
  /** Case (seed.index) → its position in this run (differs from the index when replaying). */
  const positionOf = new Map<string, number>();
  const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
  /** The case a spooled file's SOP Instance UID comes from (cases are regenerated from their index). */
  const caseOf = (uid: string): FuzzCase | undefined => {
    const k = caseOfUid(uid);
    const pos = k ? positionOf.get(`${k.seed}.${k.index}`) : undefined;
    return pos === undefined ? undefined : opts.cases(pos);
  };
  const inFlight = new Set<FuzzCase>();
  let restarting: Promise<void> | undefined;
  const restartIfDead = async (): Promise<void> => {
    if (!listener.exited()) return;
    restarting ??= (async () => {
      report.crashes++;
      const exit = listener.exited();
      for (const c of inFlight)
        await fail(c, 'crash', `listener exited (${JSON.stringify(exit)}) while this case ran: ${listener.stderr().slice(-1500)}`);
      listener = await startListenerChild({ spoolDir: opts.spoolDir, env: FUZZ_LISTENER_ENV, sampleMs: 500 });
    })().finally(() => {
      restarting = undefined;
    });
    await restarting;
  };
  let next = 0;
  let done = 0;
  const worker = async (): Promise<void> => {
    for (;;) {
      const i = next++;
      if (i >= opts.count) return;
      const c = opts.cases(i);
      positionOf.set(`${c.seed}.${c.index}`, i);
      for (const m of c.mutations) report.mutations[m] = (report.mutations[m] ?? 0) + 1;
      if (c.mutations.length === 0) report.mutations.none = (report.mutations.none ?? 0) + 1;
      await restarting;
      inFlight.add(c);
      let out: CaseOutcome | undefined;
      try {
        out = await runCase(listener.port, c);
      } catch (err) {
        // Connection refused: the listener is gone.
        await restartIfDead();
        if (!listener.exited()) await fail(c, 'unresponsive', `cannot connect: ${(err as Error).message}`);
      }
      inFlight.delete(c);
      await restartIfDead();
      if (out) {
        if (out.hang) {
          report.hangs++;
          await fail(c, 'hang', `connection still open ${HANG_MS} ms after the last byte (PDUs back: ${out.pduTypes.join(',')})`);
        }
        for (const s of out.stores) {
          const key = `0x${s.status.toString(16).padStart(4, '0')}`;
          report.statuses[key] = (report.statuses[key] ?? 0) + 1;
          if (s.status !== 0) continue;
          const sent = c.stores.find((x) => x.sopInstanceUid === s.sopInstanceUid);
          acked.set(s.sopInstanceUid, { pos: i, ...(sent?.dataset ? { sha: sha(sent.dataset) } : {}) });
        }
      }
      done++;
      if (done % 200 === 0) {
        if (!(await liveness(listener.port))) await fail(undefined, 'unresponsive', `no C-ECHO answer after ${done} cases`);
        opts.onProgress?.(done, opts.count, report);
      }
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, worker));
  // Everything the listener holds must go once the connections are gone.
  const until = Date.now() + 20_000;
  while ((listener.fds() > report.fds.baseline + 1 || tmpCount() > 0) && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
  clearInterval(sampler);
  sample();
  report.fds.end = listener.fds();
  report.tempFiles.end = tmpCount();
  report.rssMb.end = mb(listener.rss());
  if (!(await liveness(listener.port))) await fail(undefined, 'unresponsive', 'no C-ECHO answer at the end');
  await listener.stop();
  const spool = await checkSpool(opts.spoolDir);
  report.spooled = spool.files.size;
  report.acknowledged = acked.size;
  for (const bad of spool.invalid) {
    const uid = bad.path.slice(bad.path.lastIndexOf('/') + 1, -4);
    await fail(caseOf(uid), 'invalid-in-spool', `${bad.path}: ${bad.problem}`);
  }
  for (const [uid, a] of acked) {
    const path = spool.files.get(uid);
    if (!path) {
      await fail(opts.cases(a.pos), 'success-not-stored', `${uid} answered Success, not in the spool`);
      continue;
    }
    if (a.sha && sha(await spooledDataset(path)) !== a.sha)
      await fail(opts.cases(a.pos), 'stored-differs', `${uid}: spooled dataset differs from the one sent`);
  }
  report.ms = Date.now() - t0;
  return report;
}
