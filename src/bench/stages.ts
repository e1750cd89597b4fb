/**
 * The CPU stages of the worker path, measured on their own (`npm run bench`, section "CPU stages only"):
 *
 *   1. Per-stage CPU cost, one slice at a time on this thread, on a real series: decode (read the file, parse,
 *      decompress, to HU), lungs (working grid + segmentation), opacity (opacity masks + areas), preprocess (crop,
 *      resize, normalise), and the model itself (bare onnxruntime-node on ready tensors, batch of the config).
 *      CPU time (process.cpuUsage: user + system of every thread) per slice, which a busy shared machine disturbs
 *      far less than wall time; the wall time is given beside it.
 *   2. The ceiling: the worker's engine (scoreFiles, as the inference worker calls it: key slices and all) with the
 *      network replaced by a no-op of the same batch and output shapes, with 1, 2, … prepare threads. Slices/s there
 *      is what the node can feed a model that costs nothing: the throughput a GPU host tends to.
 *
 *   npm run build && node dist/bench/stages.js [--series <folder>] [--threads 1,2] [--rounds 2]
 */
import { readdir } from 'node:fs/promises';
import { availableParallelism, cpus } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as ort from 'onnxruntime-node';
import { loadConfig, PROJECT_ROOT } from '../config/load.js';
import { resolveModelPath } from '../model/model-path.js';
import { segmentLungs, toWorkGrid } from '../model/lung.js';
import { quantify } from '../model/opacity.js';
import { preprocessInto, sliceSize } from '../model/preprocess.js';
import { ModelSession, type SessionRunner } from '../model/session.js';
import { createPreparer, decodeSlice } from '../scoring/slice-preparer.js';
import { scoreFiles } from '../scoring/score.js';

export interface StageBenchOptions {
  /** Folder of one real series (default ../shared/data/covid-ct-md/P001). */
  series?: string;
  batchSize?: number;
  /** Prepare-thread counts for the ceiling (default 1 … min(cores, 4)). */
  threadCounts?: number[];
  /** Timed rounds (after one warm-up); the best is reported. Default 2. */
  rounds?: number;
  log?: (line: string) => void;
}

export interface StageCost {
  /** CPU ms per slice (all threads of the process). */
  cpuMs: number;
  /** Wall ms per slice. */
  wallMs: number;
}

export interface CeilingRow {
  /** Prepare threads (0: on the JS thread). */
  threads: number;
  slicesPerSec: number;
  /** Process CPU ms per slice during the run (every thread). */
  cpuMsPerSlice: number;
}

export interface StageBenchResult {
  series: string;
  slices: number;
  batchSize: number;
  cores: number;
  stages: { decode: StageCost; lungs: StageCost; opacity: StageCost; preprocess: StageCost; infer: StageCost };
  /** decode + lungs + opacity + preprocess, CPU ms per slice. */
  cpuStagesMs: number;
  ceiling: CeilingRow[];
}

const cpuNow = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

/** A no-op network: prob 0 and a zero attention map of the real model's shapes, for any batch. */
function noopRunner(attH: number, attW: number): SessionRunner {
  return {
    outputNames: ['prob', 'attention'],
    run: (async (feeds: Record<string, ort.Tensor>) => {
      const input = Object.values(feeds)[0] as ort.Tensor;
      const n = input.dims[0] as number;
      return {
        prob: new ort.Tensor('float32', new Float32Array(n), [n]),
        attention: new ort.Tensor('float32', new Float32Array(n * attH * attW), [n, 1, attH, attW]),
      };
    }) as SessionRunner['run'],
    release: async () => undefined,
  };
}

export async function runStageBench(opts: StageBenchOptions = {}): Promise<StageBenchResult> {
  const log = opts.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const config = loadConfig();
  const batchSize = opts.batchSize ?? config.model.batchSize;
  const rounds = opts.rounds ?? 2;
  const cores = availableParallelism();
  const threadCounts = opts.threadCounts ?? Array.from({ length: Math.min(cores, 4) }, (_, i) => i + 1);
  const seriesDir = opts.series ?? join(PROJECT_ROOT, '..', 'shared', 'data', 'covid-ct-md', 'P001');
  const files = (await readdir(seriesDir)).sort().map((f) => join(seriesDir, f));
  const modelPath = resolveModelPath(config.model.path);
  const session = await ModelSession.load(modelPath, { providers: ['cpu'], batchSize, threads: config.model.intraOpThreads || undefined });
  const meta = session.metadata;
  const pp = meta.preprocessing;
  const quant = meta.quantification;
  const lungs = pp.lungs;
  if (!lungs || !quant) throw new Error('the model has no lung / opacity block: nothing to measure');

  // 1. per-stage cost, one slice at a time on this thread (one warm-up pass, then the best of the rounds)
  log(`stages: ${files.length} slices of ${seriesDir}, one at a time on this thread ...`);
  const out = new Float32Array(sliceSize(pp));
  type Acc = Record<'decode' | 'lungs' | 'opacity' | 'preprocess', { cpu: number; wall: number }>;
  let best: Acc | undefined;
  const total = (a: Acc): number => a.decode.cpu + a.lungs.cpu + a.opacity.cpu + a.preprocess.cpu;
  for (let r = 0; r <= rounds; r++) {
    const acc: Acc = {
      decode: { cpu: 0, wall: 0 },
      lungs: { cpu: 0, wall: 0 },
      opacity: { cpu: 0, wall: 0 },
      preprocess: { cpu: 0, wall: 0 },
    };
    let c = cpuNow();
    let w = performance.now();
    const lap = (k: keyof Acc): void => {
      const c1 = cpuNow();
      const w1 = performance.now();
      acc[k].cpu += c1 - c;
      acc[k].wall += w1 - w;
      c = c1;
      w = w1;
    };
    for (const f of files) {
      c = cpuNow();
      w = performance.now();
      const img = await decodeSlice(f, 'dicom');
      lap('decode');
      if (img.kind !== 'hu' || !img.pixelSpacing) throw new Error(`${f}: not an HU slice with a pixel spacing`);
      const grid = toWorkGrid(img.data, img.width, img.height, img.pixelSpacing, lungs.workMm);
      const seg = segmentLungs(grid, lungs);
      lap('lungs');
      quantify(grid, seg.lung, quant, img.sliceThicknessMm);
      lap('opacity');
      preprocessInto(img, pp, out, 0, seg);
      lap('preprocess');
    }
    if (r > 0 && (!best || total(acc) < total(best))) best = acc;
  }
  const n = files.length;
  const per = (x: { cpu: number; wall: number }): StageCost => ({ cpuMs: x.cpu / n, wallMs: x.wall / n });
  const b = best as Acc;

  // bare model: batches of ready tensors
  const input = session.newInputBuffer();
  const img0 = await decodeSlice(files[0] as string, 'dicom');
  for (let i = 0; i < batchSize; i++) preprocessInto(img0, pp, input, i * sliceSize(pp));
  const probe = await session.scorePrepared(input, batchSize);
  const attH = probe[0]?.attentionHeight ?? 1;
  const attW = probe[0]?.attentionWidth ?? 1;
  let infer: StageCost | undefined;
  for (let r = 0; r < rounds; r++) {
    const c0 = cpuNow();
    const w0 = performance.now();
    for (let done = 0; done < n; done += batchSize) await session.scorePrepared(input, Math.min(batchSize, n - done));
    const s = { cpuMs: (cpuNow() - c0) / n, wallMs: (performance.now() - w0) / n };
    if (!infer || s.wallMs < infer.wallMs) infer = s;
  }
  await session.release();

  // 2. the ceiling: the worker's engine with a no-op network
  const noop = ModelSession.withRunner(noopRunner(attH, attW), meta, { batchSize });
  const ceiling: CeilingRow[] = [];
  for (const threads of threadCounts) {
    let row: CeilingRow | undefined;
    // one pool for all rounds, as the inference worker keeps one across jobs (the warm-up round starts its threads)
    const preparer = createPreparer(threads);
    for (let r = 0; r <= rounds; r++) {
      const c0 = cpuNow();
      const w0 = performance.now();
      // keepLabels: the inference worker keeps every slice's label runs (the Segmentation, the presentation states)
      const res = await scoreFiles([seriesDir], { session: noop, preparer, keyAttention: true, keepLabels: true, minSlices: 1 });
      const secs = (performance.now() - w0) / 1000;
      const scored = res.timing.slicesScored;
      if (scored !== n) throw new Error(`ceiling run scored ${scored} of ${n} slices`);
      const cand = { threads, slicesPerSec: scored / secs, cpuMsPerSlice: (cpuNow() - c0) / scored };
      if (r > 0 && (!row || cand.slicesPerSec > row.slicesPerSec)) row = cand;
    }
    await preparer.close();
    ceiling.push(row as CeilingRow);
    log(`stages: ceiling with ${threads} prepare thread(s): ${(row as CeilingRow).slicesPerSec.toFixed(1)} slices/s`);
  }
  const stages = {
    decode: per(b.decode),
    lungs: per(b.lungs),
    opacity: per(b.opacity),
    preprocess: per(b.preprocess),
    infer: infer as StageCost,
  };
  return {
    series: seriesDir,
    slices: n,
    batchSize,
    cores,
    stages,
    cpuStagesMs: stages.decode.cpuMs + stages.lungs.cpuMs + stages.opacity.cpuMs + stages.preprocess.cpuMs,
    ceiling,
  };
}

const f1 = (x: number): string => x.toFixed(1);
const f2 = (x: number): string => x.toFixed(2);

/** The report of one run as Markdown lines (section "CPU stages only" of `npm run bench`). */
export function stageReportLines(r: StageBenchResult, bareSlicesPerSec?: number): string[] {
  const s = r.stages;
  const row = (name: string, c: StageCost): string => `| ${name} | ${f2(c.cpuMs)} | ${f2(c.wallMs)} |`;
  const one = r.ceiling[0];
  const top = r.ceiling.reduce((a, c) => (c.slicesPerSec > a.slicesPerSec ? c : a), r.ceiling[0] as CeilingRow);
  return [
    `${r.slices} slices of a real 512×512 series (${r.series.split('/').slice(-2).join('/')}, JPEG Lossless), ${r.cores} cores. ` +
      'Per stage: one slice at a time on one thread, best of the timed rounds; CPU = user + system time of the process per slice ' +
      '(robust to other load on a shared machine), wall beside it. infer = bare onnxruntime-node on ready tensors, ' +
      `batch ${r.batchSize}, its own intra-op threads (CPU counts all of them).`,
    '',
    '| stage | CPU ms/slice | wall ms/slice |',
    '|---|---:|---:|',
    row('decode (read, parse, decompress, to HU)', s.decode),
    row('lungs (working grid + segmentation)', s.lungs),
    row('opacity (masks)', s.opacity),
    row('preprocess (crop, resize, normalise)', s.preprocess),
    `| **CPU stages (decode + lungs + opacity + preprocess)** | **${f2(r.cpuStagesMs)}** | ${f2(s.decode.wallMs + s.lungs.wallMs + s.opacity.wallMs + s.preprocess.wallMs)} |`,
    row('infer (the model, CPU provider)', s.infer),
    '',
    "Ceiling: the worker's engine (scoreFiles as the inference worker runs it, key slices and the Segmentation's label runs included) with the network replaced " +
      'by a no-op of the same batch and output shapes, by prepare threads. Best of the timed rounds.',
    '',
    '| prepare threads | slices/s | per thread | speed-up over 1 thread | process CPU ms/slice |',
    '|---:|---:|---:|---:|---:|',
    ...r.ceiling.map(
      (c) =>
        `| ${c.threads} | ${f1(c.slicesPerSec)} | ${f1(c.slicesPerSec / Math.max(1, c.threads))} | ` +
        `${one ? f2(c.slicesPerSec / one.slicesPerSec) : '–'} | ${f2(c.cpuMsPerSlice)} |`,
    ),
    '',
    `**CPU-stages-only ceiling: ${f1(top.slicesPerSec)} slices/s with ${top.threads} thread(s)** (target ≥ 150 on 2 cores); ` +
      `CPU stages ${f2(r.cpuStagesMs)} ms of CPU per slice (target ≤ 12)` +
      (bareSlicesPerSec ? `; bare onnxruntime on this CPU: ${f1(bareSlicesPerSec)} slices/s.` : '.'),
  ];
}

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

async function main(): Promise<void> {
  const threads = arg('threads')
    ?.split(',')
    .map(Number)
    .filter((x) => Number.isInteger(x) && x >= 0);
  const rounds = arg('rounds');
  const r = await runStageBench({
    ...(arg('series') ? { series: arg('series') } : {}),
    ...(threads?.length ? { threadCounts: threads } : {}),
    ...(rounds ? { rounds: Number(rounds) } : {}),
  });
  process.stdout.write(
    `${[`# CPU stages (${new Date().toISOString()}, ${cpus().length} × ${cpus()[0]?.model.trim() ?? '?'})`, '', ...stageReportLines(r), ''].join('\n')}\n`,
  );
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`bench stages failed: ${(err as Error).stack ?? String(err)}\n`);
      process.exit(1);
    },
  );
}
