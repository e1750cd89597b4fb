import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Config, Destination } from '../../src/config/schema.js';
import { instancesHash, type DispatchJobData } from '../../src/queue/jobs.js';
import { closeRedis, createRedis } from '../../src/queue/redis.js';
import type { ResultRecord } from '../../src/queue/result-record.js';
import { Dispatcher } from '../../src/worker/dispatch/dispatcher.js';
import { DispatchWorker } from '../../src/worker/dispatch/worker.js';
import { newUid, writeSyntheticSeries } from '../helpers/synthetic-series.js';
import { logger, waitFor } from '../queue/helpers.js';

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
      return [...out.matchAll(/storing DICOM file: \S*\/[A-Z]+\.([0-9.]+)\s/g)].map((m) => m[1]!);
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

export function destination(name: string, port: number, aeTitle = 'STORESCP'): Destination {
  return { name, aeTitle, host: '127.0.0.1', port };
}

/** A Dispatcher and a DispatchWorker on their own Redis connections. */
export class Harness {
  readonly redis: Redis;
  readonly workerRedis: Redis;
  readonly dispatcher: Dispatcher;
  readonly worker: DispatchWorker;

  constructor(readonly config: Config, startWorker = true) {
    this.redis = createRedis(config.redis.url, 'command', logger);
    this.workerRedis = createRedis(config.redis.url, 'worker', logger);
    this.dispatcher = new Dispatcher({ config, logger, redis: this.redis });
    this.worker = new DispatchWorker({ config, logger, redis: this.redis, workerRedis: this.workerRedis });
    if (startWorker) this.worker.start();
  }

  job(id: string): Promise<Job<DispatchJobData> | undefined> {
    return this.dispatcher.queue.getJob(id) as Promise<Job<DispatchJobData> | undefined>;
  }

  /** Waits until the job is in one of `states`; returns it. */
  async waitState(id: string, states: string[], timeoutMs = 30_000): Promise<Job<DispatchJobData>> {
    return waitFor(async () => {
      const j = await this.job(id);
      return j && states.includes(await j.getState()) ? j : undefined;
    }, timeoutMs, `job ${id} in ${states.join('/')}`, 50);
  }

  async close(): Promise<void> {
    await this.worker.close(true);
    await this.dispatcher.close();
    await closeRedis(this.redis);
    await closeRedis(this.workerRedis);
  }
}
