/**
 * `npm run bench`: one run, one report, bench/RESULTS.md (the README's performance numbers come
 * from it):
 *
 *   1. Receive throughput against DCMTK storescp, same series, same run (src/bench/receive.ts).
 *   2. Worker slices/s against bare ONNX Runtime on the same model, batch and threads
 *      (src/bench/infer.ts, from the inference worker's stage).
 *   3. End-to-end latency through real processes: `mlsam listen` and `mlsam work` (separate
 *      processes, one Redis), Orthanc as the destination PACS. A synthetic series (150 and 600
 *      slices, 512×512) is C-STOREd to the listener with storescu; the clock runs from storescu's
 *      exit (the last instance acknowledged) to the moment the SR is found in Orthanc (REST polled
 *      every 100 ms), minus the quiet period.
 *   2b. CPU stages only (src/bench/stages.ts): per-stage CPU ms/slice (decode, lungs, opacity, preprocess, infer)
 *      and the worker's engine with the network replaced by a no-op of the same batch shape, by prepare
 *      threads: the throughput ceiling of a GPU host.
 *   4. Peak RSS (VmHWM from /proc/<pid>/status) of the listener and of the worker process.
 *   5. The machine and the date.
 *
 *   6. The distribution features' cost per slice on the shared series (src/bench/pattern.ts).
 *
 *   npm run bench [-- --quick] [--out bench/RESULTS.md] [--skip receive,infer,stages,e2e,pattern]
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, hostname, release, tmpdir, totalmem, type as osType } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { PROJECT_ROOT } from '../config/load.js';
import { writeSyntheticSeries } from '../dicom/testing/synthetic-series.js';
import { freePort } from '../demo/child-process.js';
import { startOrthanc, type Orthanc } from '../demo/orthanc.js';
import { dropRedisPrefix, MlsamProcess } from '../demo/processes.js';
import { Keys } from '../stores/keys.js';
import { parseStored, resultRecordSchema, type ResultRecord } from '../contracts/result-record.js';
import { inferReportLines, runInferBench } from './infer.js';
import { patternReportLines, runPatternBench } from './pattern.js';
import { receiveBench } from './receive.js';
import { runStageBench, stageReportLines } from './stages.js';

const { values: opts } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    out: { type: 'string', default: join(PROJECT_ROOT, 'bench', 'RESULTS.md') },
    skip: { type: 'string', default: '' },
    redis: { type: 'string', default: process.env.MLSAM_REDIS__URL ?? 'redis://127.0.0.1:6379' },
  },
});
const skip = new Set(
  opts.skip
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean),
);
const log = (s: string): void => void process.stdout.write(`${s}\n`);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const mb = (b: number | undefined): string => (b === undefined ? 'n/a' : (b / 1048576).toFixed(0));

// Ctrl-C / SIGTERM: stop the processes this run started (by PID), then exit.
const running = new Set<{ stop(): Promise<unknown> }>();
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    log(`\n${sig}: stopping what the bench started ...`);
    void (async () => {
      // Newest first: the processes, then the temp files and Redis keys registered before them.
      for (const p of [...running].reverse()) await p.stop().catch(() => undefined);
      process.exit(130);
    })();
  });
}

/** stdout and stderr of a command; '' when it fails to run or exits non-zero. */
function capture(cmd: string, args: string[]): Promise<string> {
  return new Promise((res) => {
    const c = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    c.stdout.on('data', (d: Buffer) => (out += d.toString()));
    c.stderr.on('data', (d: Buffer) => (out += d.toString()));
    c.on('error', () => res(''));
    c.on('close', (code) => res(code === 0 ? out : ''));
  });
}

async function machine(): Promise<string[]> {
  const cpu = cpus();
  const version = (p: string): string => {
    try {
      return (JSON.parse(readFileSync(join(PROJECT_ROOT, 'node_modules', p, 'package.json'), 'utf8')) as { version: string }).version;
    } catch {
      return '?';
    }
  };
  const orthanc = (await capture('/usr/sbin/Orthanc', ['--version'])).split('\n')[0]?.trim() ?? '?';
  const dcmtk = /\$dcmtk: \S+ (v[\d.]+)/.exec(await capture('storescu', ['--version']))?.[1] ?? '?';
  const redis = /v=([\d.]+)/.exec(await capture('redis-server', ['--version']))?.[1] ?? '?';
  const gpu = (await capture('nvidia-smi', ['--query-gpu=name', '--format=csv,noheader'])).trim();
  const head = (await capture('git', ['-C', PROJECT_ROOT, 'rev-parse', '--short', 'HEAD'])).trim();
  const dirty = head !== '' && (await capture('git', ['-C', PROJECT_ROOT, 'status', '--porcelain', '--untracked-files=no'])).trim() !== '';
  const commit = `${head}${dirty ? ' (with uncommitted changes)' : ''}`;
  return [
    `- Date: ${new Date().toISOString()}`,
    `- Machine: ${hostname()}, ${cpu.length} × ${cpu[0]?.model.trim() ?? '?'}, ${(totalmem() / 1073741824).toFixed(1)} GiB RAM, ${osType()} ${release()}` +
      `${gpu && !/not found|failed/i.test(gpu) ? `, GPU ${gpu}` : ', no GPU'}`,
    `- Software: node ${process.version}, onnxruntime-node ${version('onnxruntime-node')}, BullMQ ${version('bullmq')}, ` +
      `Redis ${redis}, ${orthanc}, DCMTK ${dcmtk}; commit ${commit || '?'}`,
  ];
}

/** Section 2: the inference worker's own bench (src/bench/infer.ts runInferBench). */
async function inferSection(quick: boolean): Promise<{ lines: string[]; bare: number }> {
  const r = await runInferBench({ ...(quick ? { memorySlices: 0, rounds: 1 } : {}), log: (l) => log(`  ${l}`) });
  return { lines: inferReportLines(r, 'Memory run skipped (--quick).'), bare: r.bareSlicesPerSec };
}

interface E2eRow {
  slices: number;
  sendS: number;
  /** Last instance acknowledged → SR found in Orthanc, minus the quiet period. */
  srS: number;
  /** … → every result object found in Orthanc, minus the quiet period. */
  allS: number;
  objects: number;
  rec: ResultRecord | undefined;
}

function storescu(port: number, dir: string): Promise<{ code: number | null; stderr: string }> {
  return new Promise((res, rej) => {
    const c = spawn('storescu', ['+sd', '-aet', 'PACS', '-aec', 'MLSAM', '127.0.0.1', String(port), dir], {
      env: { ...process.env, TCP_NODELAY: '1' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    c.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    c.on('error', rej);
    c.on('close', (code) => res({ code, stderr }));
  });
}

async function srIn(orthanc: Orthanc, studyUid: string): Promise<string[]> {
  const r = await orthanc.post<string[]>('/tools/find', { Level: 'Instance', Query: { StudyInstanceUID: studyUid, Modality: 'SR' } });
  return r;
}

/** Sections 3 and 4. */
async function e2eSection(
  sizes: number[],
  quiet: number,
): Promise<{ rows: E2eRow[]; listenerRss?: number; workerRss?: number; notes: string[] }> {
  const work = await mkdtemp(join(tmpdir(), 'mlsam-bench-e2e-'));
  const prefix = `bench-e2e-${randomBytes(4).toString('hex')}`;
  const redis = new Redis(opts.redis, { maxRetriesPerRequest: 2 });
  redis.on('error', () => undefined);
  const keys = new Keys(prefix);
  let orthanc: Orthanc | undefined;
  let listener: MlsamProcess | undefined;
  let worker: MlsamProcess | undefined;
  const notes: string[] = [];
  const leftovers = {
    stop: async (): Promise<void> => {
      redis.disconnect();
      await dropRedisPrefix(opts.redis, prefix);
      await rm(work, { recursive: true, force: true });
    },
  };
  running.add(leftovers);
  try {
    orthanc = await startOrthanc({ modalities: { mlsam: { aeTitle: 'MLSAM', port: 104 } }, workDir: join(work, 'orthanc') });
    running.add(orthanc);
    const port = await freePort();
    const config = {
      dicom: { aeTitle: 'MLSAM', host: '127.0.0.1', port },
      redis: { url: opts.redis, keyPrefix: prefix },
      spool: { dir: join(work, 'spool') },
      series: { quietPeriodSeconds: quiet },
      destinations: [{ name: 'pacs', aeTitle: 'ORTHANC', host: '127.0.0.1', port: orthanc.dicomPort }],
      http: { host: '127.0.0.1', port: 0 },
      log: { level: 'info' },
    };
    listener = await MlsamProcess.start({ command: 'listen', config, workDir: work });
    running.add(listener);
    await listener.waitListening(60_000);
    worker = await MlsamProcess.start({ command: 'work', config, workDir: work });
    running.add(worker);
    await worker.waitForLog((r) => (/worker started|model loaded/.test(String(r.msg)) ? true : undefined), 120_000, 'the worker to start');

    const rows: E2eRow[] = [];
    // A short warm-up series (not reported): first-job costs (JIT, thread pools, the model's first runs) out of the
    // numbers. Its 30 slices are 5 mm apart (145 mm) so that it is scored: a series under the 100 mm of a chest
    // (series.selection.minCoverageMm) is refused before any slice is prepared, and warms nothing.
    for (const [i, count] of [30, ...sizes].entries()) {
      const series = await writeSyntheticSeries({ dir: join(work, `series-${count}`), count, ...(i === 0 ? { sliceSpacing: 5 } : {}) });
      log(`e2e: ${count} slices → listener (quiet period ${quiet} s) → worker → Orthanc ...`);
      const t0 = Date.now();
      const sent = await storescu(port, series.dir);
      const tLast = Date.now();
      if (sent.code !== 0) throw new Error(`storescu to the listener failed: ${sent.stderr.slice(0, 500)}`);
      let tSr = 0;
      let tAll = 0;
      let rec: ResultRecord | undefined;
      let objects = 0;
      const end = tLast + 600_000;
      while (!tAll) {
        if (Date.now() > end) throw new Error(`no result in Orthanc for the ${count}-slice series after 10 min`);
        if (!worker.running) throw new Error(`mlsam work exited:\n${worker.log().slice(-2000)}`);
        if (!tSr && (await srIn(orthanc, series.studyInstanceUid)).length) tSr = Date.now();
        if (tSr) {
          const j = await redis.get(keys.result(series.seriesInstanceUid));
          rec = parseStored(resultRecordSchema, j);
          const inStudy = await orthanc.post<string[]>('/tools/find', {
            Level: 'Instance',
            Query: { StudyInstanceUID: series.studyInstanceUid },
          });
          // The CT went straight to the listener: every instance of the study in Orthanc is a result object.
          objects = inStudy.length;
          if (rec?.outputs && objects >= rec.outputs.length) tAll = Date.now();
        }
        await sleep(100);
      }
      if (i > 0) {
        rows.push({
          slices: count,
          sendS: (tLast - t0) / 1000,
          srS: (tSr - tLast) / 1000 - quiet,
          allS: (tAll - tLast) / 1000 - quiet,
          objects,
          rec,
        });
      }
      await rm(series.dir, { recursive: true, force: true });
    }
    const listenerRss = listener.peakRss();
    const workerRss = worker.peakRss();
    const prov = rows.find((r) => r.rec)?.rec?.provider;
    if (prov) notes.push(`Execution provider the worker ran on: ${prov}.`);
    return { rows, ...(listenerRss ? { listenerRss } : {}), ...(workerRss ? { workerRss } : {}), notes };
  } finally {
    await worker?.stop();
    await listener?.stop();
    await orthanc?.stop();
    await leftovers.stop();
    for (const p of [worker, listener, orthanc, leftovers]) if (p) running.delete(p);
  }
}

const fmtS = (s: number | undefined): string => (s === undefined ? '' : s.toFixed(2));

async function main(): Promise<void> {
  const quick = opts.quick;
  const sections: string[] = [];
  const t0 = Date.now();
  const head = [
    '# Benchmark results',
    '',
    `Generated by \`npm run bench\` (src/bench/run-all.ts)${quick ? ' with --quick (smaller inputs: a smoke run, not the reference numbers)' : ''}. ` +
      'Every number below comes from one run on this machine; rerun to refresh.',
    '',
    ...(await machine()),
    '',
  ];

  if (!skip.has('receive')) {
    log('receive: storescu → storescp vs our listener ...');
    const r = await receiveBench(quick ? 60 : 300, quick ? 1 : 3);
    sections.push('## 1. Receive throughput against DCMTK storescp', '', r.text.replace(/^# .*\n+/, ''), '');
  }
  let bare: number | undefined;
  if (!skip.has('infer')) {
    log('infer: worker path vs bare ONNX Runtime ...');
    const r = await inferSection(quick);
    bare = r.bare;
    sections.push('## 2. Worker throughput against bare ONNX Runtime', '', ...r.lines, '');
  }
  if (!skip.has('stages')) {
    log('stages: CPU stages only (no-op model) ...');
    const r = await runStageBench({ rounds: quick ? 1 : 2, log: (l) => log(`  ${l}`) });
    sections.push('## 2b. CPU stages only: the ceiling of a GPU host', '', ...stageReportLines(r, bare), '');
  }
  if (!skip.has('e2e')) {
    const quiet = 2;
    const sizes = quick ? [60] : [150, 600];
    const e = await e2eSection(sizes, quiet);
    sections.push(
      '## 3. End-to-end latency',
      '',
      `\`mlsam listen\` and \`mlsam work\` as separate processes on one Redis; Orthanc (loopback) as the destination PACS. ` +
        `A synthetic 512×512 CT series is sent with \`TCP_NODELAY=1 storescu\` to the listener; latency runs from storescu's exit ` +
        `(last instance acknowledged) until the SR is found in Orthanc (REST polled every 100 ms), minus the quiet period ` +
        `(${quiet} s here; 30 s by default). One warm-up series of 30 slices (5 mm apart, so that it is scored) ran first and is not reported. ` +
        `The worker columns come from the series' result record: stage busy times, where decoding and preprocessing ` +
        `run in threads beside inference (so they overlap), and slices per second of the whole job.`,
      '',
      '| slices | send (s) | last instance → SR in Orthanc, minus quiet (s) | → all result objects in Orthanc (s) | result objects | worker: wait (incl. quiet) / read+decode+lungs+preprocess / infer / results (s) | slices/s in the worker |',
      '|---:|---:|---:|---:|---:|---|---:|',
      ...e.rows.map((r) => {
        const t = r.rec?.timings ?? {};
        const s = (ms: number | undefined): string => (ms === undefined ? '–' : (ms / 1000).toFixed(2));
        const work = (t.readMs ?? 0) + (t.decodeMs ?? 0) + (t.lungMs ?? 0) + (t.preprocessMs ?? 0) + (t.inferMs ?? 0);
        const sps = r.rec?.slices.length && t.totalMs ? (r.rec.slices.length / (t.totalMs / 1000)).toFixed(1) : '–';
        return (
          `| ${r.slices} | ${fmtS(r.sendS)} | ${fmtS(r.srS)} | ${fmtS(r.allS)} | ${r.objects} | ` +
          `${s(t.waitMs)} / ${s((t.readMs ?? 0) + (t.decodeMs ?? 0) + (t.lungMs ?? 0) + (t.preprocessMs ?? 0))} / ${s(t.inferMs)} / ${s(t.resultsMs)} | ${work ? sps : '–'} |`
        );
      }),
      '',
      ...e.notes,
      '',
      '## 4. Peak memory',
      '',
      'VmHWM (peak resident set) from /proc/<pid>/status after the runs above (the largest series included).',
      '',
      '| process | peak RSS (MB) |',
      '|---|---:|',
      `| \`mlsam listen\` | ${mb(e.listenerRss)} |`,
      `| \`mlsam work\` (inference + results + dispatch) | ${mb(e.workerRss)} |`,
      '',
    );
  }
  if (!skip.has('pattern')) {
    log('pattern: distribution features per slice on the shared series ...');
    sections.push('## 5. Distribution features (pattern) per slice', '', ...patternReportLines(await runPatternBench(3), 3), '');
  }
  const text = [...head, ...sections, `Total bench time: ${((Date.now() - t0) / 60000).toFixed(1)} min.`, ''].join('\n');
  const out = resolve(opts.out);
  await mkdir(dirname(out), { recursive: true });
  await writeFile(out, text);
  log(`\n${text}\nwritten to ${out}`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
