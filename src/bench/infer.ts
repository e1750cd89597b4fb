/**
 * Inference benchmark: slices/s of the whole worker path (a BullMQ job on the `inference` queue:
 * read headers, select, decode, preprocess, infer, aggregate, write the result record) against
 * bare onnxruntime-node (session.run on ready tensors) with the same model, batch size and
 * intra-op threads, in one run; and the peak RSS while the worker scores a 1000-slice synthetic
 * 512×512 series (bounded memory: target < 1 GB).
 *
 *   npm run bench:infer [-- --series <folder> --slices 1000 --batch-size 16 --threads 0 --decode-threads N]
 *
 * Default real series: ../shared/data/covid-ct-md/P001 (148 slices, JPEG Lossless). Needs Redis
 * (config redis.url); everything is written under a private key prefix and removed afterwards.
 * Prints a table and writes bench-results/infer.md. runInferBench() is what `npm run bench` calls.
 */
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Queue } from 'bullmq';
import { loadConfig, PROJECT_ROOT } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { readDicomHeaderFile } from '../dicom/decode/index.js';
import { writeSyntheticSeries } from '../dicom/testing/synthetic-series.js';
import { createLogger } from '../log.js';
import { resolveModelPath } from '../model/model-path.js';
import { decodeSlice } from '../scoring/slice-preparer.js';
import { preprocessSlice } from '../model/preprocess.js';
import { ModelSession } from '../model/session.js';
import { dropRedisPrefix } from '../demo/processes.js';
import { INFERENCE_JOB_OPTIONS, INFERENCE_QUEUE, inferenceJobId, instancesHash, type InferenceJobData } from '../queue/jobs.js';
import { Keys } from '../stores/keys.js';
import { closeRedis, createRedis } from '../stores/redis.js';
import { resultRecordSchema, type ResultRecord } from '../contracts/result-record.js';
import { InferenceWorker } from '../worker/inference/inference-worker.js';

export interface InferBenchOptions {
  /** Folder of one real series (default ../shared/data/covid-ct-md/P001). */
  series?: string;
  /** Slices of the synthetic series for the memory measurement (default 1000; 0 skips it). */
  memorySlices?: number;
  batchSize?: number;
  /** onnxruntime intra-op threads; 0 = onnxruntime's default (config model.intraOpThreads). */
  threads?: number;
  /** Decode threads of the worker (default: the worker's default). */
  decodeThreads?: number;
  /** Timed repetitions of each path (the best is reported); default 2. */
  rounds?: number;
  log?: (line: string) => void;
}

export interface InferBenchResult {
  workerSlicesPerSec: number;
  bareSlicesPerSec: number;
  ratio: number;
  peakRssMb: number;
  slices: number;
  batchSize: number;
  threads: number;
  decodeThreads: number;
  cores: number;
  /** Stage busy times of the best worker round (ms). */
  stages: ResultRecord['timings'];
  /** The synthetic (uncompressed) memory run, when done. */
  memory?: { slices: number; workerSlicesPerSec: number; peakRssMb: number; baselineRssMb: number; ratio?: number };
}

const round1 = (x: number) => Math.round(x * 10) / 10;

async function jobFor(dir: string, sops: string[], study: string, series: string): Promise<InferenceJobData> {
  const now = new Date().toISOString();
  return {
    studyInstanceUid: study,
    seriesInstanceUid: series,
    seriesDir: dir,
    instanceCount: sops.length,
    instancesHash: instancesHash(sops),
    callingAeTitle: 'BENCH',
    firstReceivedAt: now,
    lastReceivedAt: now,
    enqueuedBy: 'admin',
  };
}

/** RSS sampler (every 20 ms) for the duration of `fn`. */
async function withPeakRss<T>(fn: () => Promise<T>): Promise<{ value: T; peakMb: number }> {
  let peak = process.memoryUsage.rss();
  const t = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 20);
  try {
    const value = await fn();
    peak = Math.max(peak, process.memoryUsage.rss());
    return { value, peakMb: peak / 2 ** 20 };
  } finally {
    clearInterval(t);
  }
}

export async function runInferBench(opts: InferBenchOptions = {}): Promise<InferBenchResult> {
  const log = opts.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const base = loadConfig();
  const spool = await mkdtemp(join(tmpdir(), 'mlsam-bench-infer-'));
  const prefix = `bench-infer-${process.pid}-${Date.now()}`;
  const batchSize = opts.batchSize ?? base.model.batchSize;
  const threads = opts.threads ?? base.model.intraOpThreads;
  const rounds = opts.rounds ?? 2;
  const config: Config = loadConfig({
    overrides: {
      redis: { keyPrefix: prefix },
      spool: { dir: spool },
      model: { batchSize, intraOpThreads: threads },
      worker: { concurrency: 1 },
      series: { routing: { minSlices: 1 } },
      log: { level: 'warn' },
    },
  });
  const logger = createLogger('warn');
  const modelPath = resolveModelPath(config.model.path);
  const redis = createRedis(config.redis.url, 'command', logger);
  const workerRedis = createRedis(config.redis.url, 'worker', logger);
  const queue = new Queue<InferenceJobData>(INFERENCE_QUEUE, { connection: workerRedis, prefix });
  const keys = new Keys(prefix);
  const worker = new InferenceWorker({ config, logger, redis, workerRedis, modelPath, decodeThreads: opts.decodeThreads });
  let jobs = 0;
  /** Adds one job and waits for its record; returns the record. */
  const runJob = async (data: InferenceJobData): Promise<ResultRecord> => {
    const jobId = `${inferenceJobId(data.seriesInstanceUid, data.instancesHash)}-${jobs++}`;
    await queue.add('score', data, { ...INFERENCE_JOB_OPTIONS, attempts: 1, jobId });
    for (;;) {
      const raw = await redis.get(keys.result(data.seriesInstanceUid));
      if (raw) {
        const r = resultRecordSchema.parse(JSON.parse(raw));
        if (r.jobId === jobId && r.status !== 'scoring') {
          if (r.status !== 'scored') throw new Error(`bench series not scored: ${r.reason ?? r.status}`);
          return r;
        }
      }
      await new Promise((res) => setTimeout(res, 10));
    }
  };
  try {
    await worker.start();
    const decodeThreads = worker.decodeThreads;
    log(
      `model ${modelPath}, batch ${batchSize}, intra-op threads ${threads || 'default'}, decode threads ${decodeThreads}, ${cpus().length} cores`,
    );

    // 1. memory: a long synthetic 512x512 series (uncompressed) through the worker
    let memory: InferBenchResult['memory'];
    const memSlices = opts.memorySlices ?? 1000;
    if (memSlices > 0) {
      const dir = join(spool, 'synthetic');
      await mkdir(dir, { recursive: true });
      log(`writing a ${memSlices}-slice synthetic series…`);
      const syn = await writeSyntheticSeries({ dir, count: memSlices, rows: 512, columns: 512, sliceSpacing: 1 });
      const data = await jobFor(
        dir,
        syn.instances.map((i) => i.sopInstanceUid),
        syn.studyInstanceUid,
        syn.seriesInstanceUid,
      );
      const baselineRssMb = process.memoryUsage.rss() / 2 ** 20;
      const { value: rec, peakMb } = await withPeakRss(() => runJob(data));
      memory = {
        slices: rec.slices.length,
        workerSlicesPerSec: round1(rec.slices.length / ((rec.timings.totalMs ?? 1) / 1000)),
        peakRssMb: round1(peakMb),
        baselineRssMb: round1(baselineRssMb),
      };
      log(
        `memory: ${memory.slices} slices scored, peak RSS ${memory.peakRssMb} MB (before the job ${memory.baselineRssMb} MB), ${memory.workerSlicesPerSec} slices/s`,
      );
      await rm(dir, { recursive: true, force: true });
    }

    // 2. throughput, worker path, on a real series
    const seriesDir = opts.series ?? join(PROJECT_ROOT, '..', 'shared', 'data', 'covid-ct-md', 'P001');
    const files = (await readdir(seriesDir)).sort().map((f) => join(seriesDir, f));
    const headers = await Promise.all(files.map((f) => readDicomHeaderFile(f)));
    const h0 = headers[0];
    if (!h0?.studyInstanceUid || !h0.seriesInstanceUid) throw new Error(`${seriesDir}: no DICOM series`);
    const data = await jobFor(
      seriesDir,
      headers.map((h) => h.sopInstanceUid as string),
      h0.studyInstanceUid,
      h0.seriesInstanceUid,
    );
    let best: ResultRecord | undefined;
    let peakRssMb = memory?.peakRssMb ?? 0;
    for (let i = 0; i < rounds + 1; i++) {
      const { value: rec, peakMb } = await withPeakRss(() => runJob(data));
      peakRssMb = Math.max(peakRssMb, peakMb);
      if (i === 0) continue; // warm-up
      if (!best || (rec.timings.totalMs ?? Infinity) < (best.timings.totalMs ?? Infinity)) best = rec;
    }
    const slices = (best as ResultRecord).slices.length;
    const workerSlicesPerSec = slices / (((best as ResultRecord).timings.totalMs ?? 1) / 1000);
    await worker.stop();

    // 3. bare onnxruntime-node: same model, batch size, threads and slice count; tensors ready
    const session = await ModelSession.load(modelPath, { providers: config.model.providers, batchSize, threads: threads || undefined });
    const input = session.newInputBuffer();
    const img = await decodeSlice(files[0] as string, 'dicom');
    for (let i = 0; i < batchSize; i++) preprocessSlice(img, session.metadata.preprocessing, input, i * (input.length / batchSize));
    await session.scorePrepared(input, batchSize);
    let bareBest = Infinity;
    for (let r = 0; r < rounds; r++) {
      const t0 = performance.now();
      for (let done = 0; done < slices; done += batchSize) await session.scorePrepared(input, Math.min(batchSize, slices - done));
      bareBest = Math.min(bareBest, performance.now() - t0);
    }
    await session.release();
    const bareSlicesPerSec = slices / (bareBest / 1000);
    const result: InferBenchResult = {
      workerSlicesPerSec: round1(workerSlicesPerSec),
      bareSlicesPerSec: round1(bareSlicesPerSec),
      ratio: Math.round((workerSlicesPerSec / bareSlicesPerSec) * 1000) / 1000,
      peakRssMb: round1(peakRssMb),
      slices,
      batchSize,
      threads,
      decodeThreads,
      cores: cpus().length,
      stages: (best as ResultRecord).timings,
      ...(memory ? { memory: { ...memory, ratio: Math.round((memory.workerSlicesPerSec / bareSlicesPerSec) * 1000) / 1000 } } : {}),
    };
    return result;
  } finally {
    await worker.stop().catch(() => undefined);
    await queue.obliterate({ force: true }).catch(() => undefined);
    await queue.close().catch(() => undefined);
    await dropRedisPrefix(config.redis.url, prefix);
    await closeRedis(redis);
    await closeRedis(workerRedis);
    await rm(spool, { recursive: true, force: true });
  }
}

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

function num(name: string): number | undefined {
  const v = arg(name);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name}: expected a non-negative integer, got ${v}`);
  return n;
}

/** The report of one run as Markdown lines (bench:infer and section 2 of `npm run bench`). */
export function inferReportLines(r: InferBenchResult, memorySkipped: string): string[] {
  const st = r.stages;
  return [
    `${r.cores} cores; batch ${r.batchSize}; onnxruntime intra-op threads ${r.threads || 'default'}; decode threads ${r.decodeThreads}; ` +
      `CPU provider; ${r.slices} slices of a real series (JPEG Lossless covid-ct-md P001 by default); best of the timed rounds.`,
    '',
    '| path | slices | slices/s |',
    '|---|---:|---:|',
    `| worker (BullMQ job: read, decode, lung segmentation + opacity, preprocess, infer, fuse, key slices, record) | ${r.slices} | ${r.workerSlicesPerSec} |`,
    `| bare onnxruntime-node (same model, batch, threads; tensors ready) | ${r.slices} | ${r.bareSlicesPerSec} |`,
    '',
    `**Ratio worker / bare: ${r.ratio}** (target ≥ 0.45, issue 27).`,
    '',
    `Worker stage busy times (ms; decode, lungs and preprocess run in threads beside inference): read ${st.readMs}, decode ${st.decodeMs}, ` +
      `lungs (segmentation + opacity) ${st.lungMs ?? '–'}, preprocess ${st.preprocessMs}, infer ${st.inferMs}, aggregate ${st.aggregateMs}, ` +
      `key slices ${st.keySlicesMs ?? '–'}, total ${st.totalMs}.`,
    '',
    r.memory
      ? `Memory: a ${r.memory.slices}-slice synthetic 512×512 series scored at ${r.memory.workerSlicesPerSec} slices/s with a peak RSS of ` +
        `${r.memory.peakRssMb} MB in the bench process (target < 1024 MB; ${r.memory.baselineRssMb} MB before the job)` +
        `${r.memory.ratio === undefined ? '' : `; ratio to bare onnxruntime on that uncompressed series: ${r.memory.ratio}`}.`
      : memorySkipped,
  ];
}

async function main(): Promise<void> {
  const r = await runInferBench({
    series: arg('series'),
    memorySlices: num('slices'),
    batchSize: num('batch-size'),
    threads: num('threads'),
    decodeThreads: num('decode-threads'),
    rounds: num('rounds'),
  });
  const lines = [`# Inference benchmark (${new Date().toISOString()})`, '', ...inferReportLines(r, 'Memory run skipped.'), ''];
  process.stdout.write(lines.join('\n'));
  await mkdir(join(PROJECT_ROOT, 'bench-results'), { recursive: true });
  await writeFile(join(PROJECT_ROOT, 'bench-results', 'infer.md'), lines.join('\n'));
  process.stdout.write(
    `${JSON.stringify({ workerSlicesPerSec: r.workerSlicesPerSec, bareSlicesPerSec: r.bareSlicesPerSec, ratio: r.ratio, peakRssMb: r.peakRssMb })}\n`,
  );
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`bench:infer failed: ${(err as Error).stack ?? String(err)}\n`);
      process.exit(1);
    },
  );
}
