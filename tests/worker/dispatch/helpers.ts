import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Config, Destination } from '../../../src/config/schema.js';
import { resolvePath } from '../../../src/config/load.js';
import { instancesHash, type DispatchJobData } from '../../../src/queue/jobs.js';
import { closeRedis, createRedis, whenReady } from '../../../src/stores/redis.js';
import type { ResultRecord } from '../../../src/contracts/result-record.js';
import { writeResultObjects } from '../../../src/results/index.js';
import { Dispatcher, type SilentTargets } from '../../../src/worker/dispatch/dispatcher.js';
import { DispatchWorker } from '../../../src/worker/dispatch/worker.js';
import { newUid, writeSyntheticSeries } from '../../helpers/synthetic-series.js';
import { logger, waitFor } from '../../queue/helpers.js';

export async function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
  await waitFor(
    () =>
      new Promise<boolean>((resolve) => {
        const s = connect({ host: '127.0.0.1', port }, () => {
          s.destroy();
          resolve(true);
        });
        s.once('error', () => resolve(false));
      }),
    timeoutMs,
    `a listener on ${port}`,
    50,
  );
}

/** DCMTK storescp on 127.0.0.1:<port> (TCP_NODELAY=1) that logs every reception (-v). */
export interface Storescp {
  port: number;
  dir: string;
  /** SOP Instance UIDs received, one entry per C-STORE stored (repeats included), in order. */
  receptions(): string[];
  stop(): Promise<void>;
}

export async function startStorescp(port: number, extra: string[] = []): Promise<Storescp> {
  const dir = await mkdtemp(join(tmpdir(), 'mlsam-dispatch-scp-'));
  const proc: ChildProcess = spawn('storescp', ['+xa', '-v', '-od', dir, ...extra, String(port)], {
    env: { ...process.env, TCP_NODELAY: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  await waitForPort(port);
  return {
    port,
    dir,
    receptions() {
      // "I: storing DICOM file: <dir>/<MODALITY>.<SOPInstanceUID>"
      return [...out.matchAll(/storing DICOM file: \S*\/[A-Za-z0-9]+\.([0-9.]+)\s/g)].map((m) => m[1]!);
    },
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null && proc.pid) {
        const exited = new Promise((r) => proc.once('exit', r));
        process.kill(proc.pid, 'SIGTERM');
        await exited;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface ResultSet {
  record: ResultRecord;
  files: string[];
  sopInstanceUids: string[];
  /** SeriesInstanceUID of the result files. */
  resultSeriesUid: string;
}

/**
 * Result files for a fake scored series: small synthetic Part-10 images (the results stage's
 * SR/SC writer was not in the tree when these tests were written) and a ResultRecord whose
 * `outputs` list them.
 */
export async function makeResultSet(dir: string, count = 4): Promise<ResultSet> {
  const studyInstanceUid = newUid();
  const seriesInstanceUid = newUid();
  // The result objects are a new series of the source study.
  const series = await writeSyntheticSeries({ dir, count, rows: 32, columns: 32, studyInstanceUid, seriesInstanceUid: newUid() });
  const sourceHash = instancesHash([newUid(), newUid()]);
  const files = series.instances.map((i) => i.path);
  const record: ResultRecord = {
    studyInstanceUid,
    seriesInstanceUid,
    instancesHash: sourceHash,
    jobId: `series-${seriesInstanceUid}-${sourceHash}`,
    seriesDir: dir,
    callingAeTitle: 'PACS',
    status: 'scored',
    model: { name: 'mlsam-test', version: '1.0.0', sha256: '0'.repeat(64) },
    provider: 'cpu',
    instanceCount: 2,
    score: 0.5,
    slices: [],
    keySlices: [],
    dropped: [],
    timings: {},
    startedAt: new Date().toISOString(),
    finishedAt: new Date().toISOString(),
    attemptsMade: 1,
    outputs: series.instances.map((i) => ({
      kind: 'heatmap' as const,
      path: i.path,
      sopClassUid: series.sopClassUid,
      sopInstanceUid: i.sopInstanceUid,
      seriesInstanceUid: series.seriesInstanceUid,
    })),
  };
  return { record, files, sopInstanceUids: series.instances.map((i) => i.sopInstanceUid), resultSeriesUid: series.seriesInstanceUid };
}

/**
 * Real result objects: a synthetic CT series (128×128, 6 slices) spooled under config.spool.dir,
 * a hand-made 'scored' ResultRecord for it (two key slices with attention maps), and the SR,
 * Key Object Selection, heatmap SCs, presentation states and summary SC that src/results writeResultObjects makes of it
 * (7 files; no Segmentation: the synthetic record carries no lung labels).
 */
export async function makeScoredResultSet(config: Config, patient: { patientName?: string; patientId?: string } = {}): Promise<ResultSet> {
  const studyInstanceUid = newUid();
  const seriesInstanceUid = newUid();
  const spool = resolvePath(config.spool.dir);
  const series = await writeSyntheticSeries({
    dir: join(spool, studyInstanceUid, seriesInstanceUid),
    count: 6,
    rows: 128,
    columns: 128,
    studyInstanceUid,
    seriesInstanceUid,
    fileName: (i) => `slice-${i + 1}.dcm`,
    ...patient,
  });
  const probabilities = [0.1, 0.35, 0.8, 0.9, 0.4, 0.2];
  const slices = series.instances.map((inst, index) => ({
    index,
    sopInstanceUid: inst.sopInstanceUid,
    sopClassUid: series.sopClassUid,
    file: inst.path,
    probability: probabilities[index]!,
    position: inst.z,
    instanceNumber: inst.instanceNumber,
  }));
  const attention = {
    width: 8,
    height: 8,
    imageWidth: 128,
    imageHeight: 128,
    cropBox: { x0: 0, y0: 0, x1: 127, y1: 127 },
    data: Array.from({ length: 64 }, (_, i) => ((i % 8) + Math.floor(i / 8)) / 14),
  };
  const keySlices = [3, 2].map((i) => ({ index: i, sopInstanceUid: slices[i]!.sopInstanceUid, probability: probabilities[i]!, attention }));
  const hash = instancesHash(slices.map((x) => x.sopInstanceUid));
  const record: ResultRecord = {
    studyInstanceUid,
    seriesInstanceUid,
    instancesHash: hash,
    jobId: `series-${seriesInstanceUid}-${hash}`,
    seriesDir: series.dir,
    callingAeTitle: 'PACS',
    status: 'scored',
    model: { name: 'mlsam-test', version: '1.0.0', sha256: '0'.repeat(64) },
    provider: 'cpu',
    instanceCount: slices.length,
    score: 0.85,
    category: 'likely',
    threshold: 0.5,
    indeterminateMargin: 0.1,
    k: 2,
    slices,
    keySlices,
    dropped: [],
    timings: {},
    startedAt: '2026-11-26T01:02:03.456Z',
    finishedAt: '2026-11-26T01:02:09.789Z',
    attemptsMade: 1,
  };
  const outputs = await writeResultObjects(record, { config, logger });
  return {
    record: { ...record, outputs },
    files: outputs.map((o) => o.path),
    sopInstanceUids: outputs.map((o) => o.sopInstanceUid),
    resultSeriesUid: outputs[0]!.seriesInstanceUid,
  };
}

export function destination(name: string, port: number, aeTitle = 'STORESCP'): Destination {
  return { name, aeTitle, host: '127.0.0.1', port };
}

/** A Dispatcher and a DispatchWorker on their own Redis connections. */
export class Harness {
  readonly redis: Redis;
  readonly workerRedis: Redis;
  readonly dispatcher: Dispatcher;
  readonly worker: DispatchWorker;

  constructor(
    readonly config: Config,
    startWorker = true,
    /** Silent mode (DispatchModes); absent: every target live. */
    modes?: SilentTargets,
  ) {
    this.redis = createRedis(config.redis.url, 'command', logger);
    this.workerRedis = createRedis(config.redis.url, 'worker', logger);
    this.dispatcher = new Dispatcher({ config, logger, redis: this.redis, ...(modes ? { modes } : {}) });
    this.worker = new DispatchWorker({ config, logger, redis: this.redis, workerRedis: this.workerRedis, ...(modes ? { modes } : {}) });
    if (startWorker) this.worker.start();
  }

  /** The command connection has no offline queue: wait for it before using it directly. */
  async ready(): Promise<Redis> {
    await whenReady(this.redis, 5_000);
    return this.redis;
  }

  job(id: string): Promise<Job<DispatchJobData> | undefined> {
    return this.dispatcher.queue.getJob(id) as Promise<Job<DispatchJobData> | undefined>;
  }

  /** Waits until the job is in one of `states`; returns it. */
  async waitState(id: string, states: string[], timeoutMs = 30_000): Promise<Job<DispatchJobData>> {
    // State first, then the job: a job read before its state changed would carry stale fields.
    return waitFor(
      async () => {
        if (!states.includes(await this.dispatcher.queue.getJobState(id))) return undefined;
        return this.job(id);
      },
      timeoutMs,
      `job ${id} in ${states.join('/')}`,
      50,
    );
  }

  async close(): Promise<void> {
    await this.worker.close(true);
    await this.dispatcher.close();
    await closeRedis(this.redis);
    await closeRedis(this.workerRedis);
  }
}
