/**
 * `npm run demo`: the whole hospital chain on one machine, loopback only.
 *
 *   1. Redis: the configured one (MLSAM_REDIS__URL or redis://127.0.0.1:6379) when it answers,
 *      otherwise a private redis-server on a free port (no persistence).
 *   2. Orthanc (Debian's /usr/sbin/Orthanc) as the PACS: temp storage, our node as a DICOM
 *      modality, the Lua forwarder that sends every stable CT series to it.
 *   3. `mlsam serve` (listener, workers, dispatcher, dashboard) with a temp config: its
 *      destination is that Orthanc, a short quiet period, a temp spool, its own Redis key prefix.
 *   4. A chest CT series: the synthetic phantom (src/demo/phantom.ts) or the folder named with
 *      --series, C-STOREd into Orthanc the way a modality would send it.
 *   5. Progress until the SR and the heatmaps are stored in Orthanc, in the same study; then the
 *      score (as read back from the SR in Orthanc) and where to look. Ctrl-C stops everything it
 *      started (by PID) and removes its temp files and Redis keys.
 *
 *   npm run demo [-- --series <folder>] [--slices 120] [--quiet-period 5] [--exit] [--keep]
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { collectFiles, sendFiles } from '../dicom/scu/client.js';
import { INFERENCE_QUEUE } from '../queue/jobs.js';
import { Keys } from '../stores/keys.js';
import { parseStored, resultRecordSchema, type ResultRecord } from '../contracts/result-record.js';
import { parseDispatchStates } from '../stores/dispatch-state.js';
import { freePort } from './child-process.js';
import { forwarderLua, startOrthanc, type Orthanc, type OrthancResource } from './orthanc.js';
import { lesionRanking, writePhantomSeries, type PhantomSeries } from './phantom.js';
import { dropRedisPrefix, MlsamProcess, portOr, PrivateRedisServer, redisAnswers } from './processes.js';
import { srCategory, srSeriesProbability } from './sr-read.js';

const NODE_AET = 'MLSAM';
const UPLOADER_AET = 'DEMO';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const { values: opts } = parseArgs({
  options: {
    series: { type: 'string' },
    slices: { type: 'string', default: '120' },
    'quiet-period': { type: 'string', default: '5' },
    'stable-age': { type: 'string', default: '3' },
    timeout: { type: 'string', default: '900' },
    redis: { type: 'string' },
    exit: { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
    'any-ports': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

if (opts.help) {
  process.stdout.write(`npm run demo [-- options]
  --series <folder>     send this chest CT series instead of the synthetic phantom
  --slices <n>          phantom slices (default 120)
  --quiet-period <s>    series quiet period of the node (default 5)
  --stable-age <s>      Orthanc's StableAge before it forwards (default 3)
  --timeout <s>         give up after this long (default 900)
  --redis <url>         Redis to use (default MLSAM_REDIS__URL, redis://127.0.0.1:6379, else a private redis-server)
  --exit                stop everything once the result is in Orthanc (default: keep running until Ctrl-C)
  --keep                keep the temp folder (spool, logs, Orthanc storage)
  --any-ports           any free ports (default: 8042/4242 for Orthanc, 11112/8080 for the node when free)
`);
  process.exit(0);
}

/** The usual port when it is free (and --any-ports is not given), else any free one. */
const port = (preferred: number): Promise<number> => (opts['any-ports'] ? freePort() : portOr(preferred));

const num = (name: string, v: string | undefined): number => {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name}: expected a positive number, got ${v}`);
  return n;
};

const tty = process.stdout.isTTY === true;
let statusShown = false;
function say(line: string): void {
  if (statusShown && tty) process.stdout.write('\r\x1b[2K');
  statusShown = false;
  process.stdout.write(`${line}\n`);
}
let lastStatus = '';
function status(line: string): void {
  if (line === lastStatus) return;
  lastStatus = line;
  if (tty) {
    process.stdout.write(`\r\x1b[2K  ${line}`);
    statusShown = true;
  } else {
    process.stdout.write(`  ${line}\n`);
  }
}

// Everything started is stopped in reverse order, by PID, on exit or Ctrl-C.
const cleanups: Array<{ what: string; fn: () => Promise<unknown> }> = [];
let cleaning: Promise<void> | undefined;
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    for (const c of cleanups.reverse()) {
      try {
        await c.fn();
      } catch (err) {
        process.stderr.write(`demo: could not ${c.what}: ${(err as Error).message}\n`);
      }
    }
  })();
  return cleaning;
}
let interrupted = false;
/** Set when the demo fails: the temp folder (logs, spool) is kept for a look. */
let failed = false;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    say('\nstopping what the demo started ...');
    void cleanup().then(() => process.exit(sig === 'SIGINT' ? 130 : 143));
  });
}

interface Watch {
  orthanc: Orthanc;
  redis: Redis;
  keys: Keys;
  queue: Queue;
  studyUid: string;
  seriesUid: string;
  expected: number;
}

function progressText(p: unknown): string {
  if (typeof p === 'number') return p > 0 ? `${Math.round(p)}%` : 'started';
  if (p && typeof p === 'object') {
    const o = p as Record<string, unknown>;
    const done = o.done ?? o.slicesDone ?? o.processed;
    const total = o.total ?? o.slicesTotal ?? o.slices;
    if (typeof done === 'number' && typeof total === 'number') return `${done}/${total} slices`;
    if (typeof o.stage === 'string') return o.stage;
  }
  return '';
}

/** Polls Orthanc and Redis until the result objects of the series are stored in Orthanc. */
async function waitForResult(
  w: Watch,
  timeoutMs: number,
): Promise<{ record: ResultRecord | undefined; sr: OrthancResource; objects: OrthancResource[] }> {
  const end = Date.now() + timeoutMs;
  const seen = new Set<string>();
  const phase = (key: string, line: string): void => {
    if (seen.has(key)) return;
    seen.add(key);
    say(line);
  };
  for (;;) {
    if (Date.now() > end) throw new Error(`no result in Orthanc after ${timeoutMs / 1000} s (logs: see the temp folder)`);
    // Orthanc forwarding.
    const jobs = await w.orthanc.jobs().catch(() => []);
    const job = jobs.find((j) => j.Type === 'DicomModalityStore');
    if (job) {
      phase(`job-${job.ID}`, `• Orthanc: the series is stable; forwarding it to ${NODE_AET} (Orthanc job ${job.ID.slice(0, 8)})`);
      if (job.State === 'Failure') phase(`jobfail-${job.ID}`, `  Orthanc's forward job failed: ${job.ErrorDescription}`);
    }
    // Node: series tracker, inference job, result record, dispatch.
    const s = await w.redis.hgetall(w.keys.series(w.seriesUid));
    const record = await w.redis
      .get(w.keys.result(w.seriesUid))
      .then((j) => parseStored(resultRecordSchema, j))
      .catch(() => undefined);
    if (s.status) {
      const received = await w.redis.hlen(w.keys.seriesInstances(w.seriesUid)).catch(() => 0);
      if (s.status === 'receiving') {
        status(`node received ${received}/${w.expected} instances; it scores the series once none arrived for the quiet period`);
      } else if (s.status === 'ignored') {
        phase('ignored', `• node: series ignored: ${s.reason ?? s.ignoreCode ?? '?'}`);
      } else {
        phase('queued', `• node: ${s.instanceCount ?? received} instances received; series complete, queued for scoring`);
      }
    }
    if (s.jobId && (!record || record.status === 'scoring')) {
      const j = await w.queue.getJob(s.jobId).catch(() => undefined);
      const state = j ? await j.getState().catch(() => 'unknown') : 'unknown';
      if (state === 'waiting' || state === 'delayed' || state === 'prioritized') status('queued: waiting for a free inference worker');
      else if (state === 'active') status(`scoring: ${progressText(j!.progress) || 'started'}`);
    }
    if (record?.status === 'scored' && record.score !== undefined) {
      phase(
        'scored',
        `• node: scored ${record.slices.length} slices: ${record.score.toFixed(3)} → ${record.category ?? '?'} ` +
          `(${((record.timings.totalMs ?? 0) / 1000).toFixed(1)} s, ${record.provider})`,
      );
    } else if (record?.status === 'not-scored' || record?.status === 'failed') {
      phase(`rec-${record.status}`, `• node: ${record.status}: ${record.reason ?? ''}`);
    }
    for (const d of parseDispatchStates(await w.redis.hgetall(w.keys.dispatch(w.seriesUid)))) {
      const dest = d.destination;
      if (d.status === 'sending' || d.status === 'pending')
        status(`sending results to ${dest}: ${d.instancesSent} sent, try ${d.attempts}`);
      if (d.status === 'failed')
        phase(`dfail-${dest}-${d.attempts}`, `  dispatch to ${dest} failed (try ${d.attempts}): ${d.lastError ?? ''}`);
    }
    // Orthanc: our objects in the same study.
    const series = await w.orthanc.seriesOfStudy(w.studyUid).catch(() => [] as OrthancResource[]);
    // The result series the record names (the heatmap SCs are Modality CT too); before it names them, every non-CT series.
    const resultSeries = new Set((record?.outputs ?? []).map((o) => o.seriesInstanceUid));
    const ours = series.filter(
      (x) =>
        x.MainDicomTags.SeriesInstanceUID !== w.seriesUid &&
        (resultSeries.size ? resultSeries.has(x.MainDicomTags.SeriesInstanceUID ?? '') : x.MainDicomTags.Modality !== 'CT'),
    );
    const srSeries = ours.find((x) => x.MainDicomTags.Modality === 'SR');
    if (srSeries) {
      const objects = (await Promise.all(ours.map((x) => w.orthanc.get<OrthancResource[]>(`/series/${x.ID}/instances`)))).flat();
      const expectedOutputs = record?.outputs?.length;
      const complete = expectedOutputs === undefined ? true : objects.length >= expectedOutputs;
      const sr = objects.find((o) => o.ParentSeries === srSeries.ID);
      if (complete && sr) return { record, sr, objects };
      status(`Orthanc holds ${objects.length}${expectedOutputs ? `/${expectedOutputs}` : ''} result objects`);
    }
    await sleep(500);
  }
}

/**
 * What the phantom can tell about the model: the slice probabilities of the slices that cut a
 * lesion against those of the lesion-free lung slices (a rank AUC), in plain words.
 */
function phantomCheck(ph: PhantomSeries, record: ResultRecord): string {
  const bySop = new Map(record.slices.map((s) => [s.sopInstanceUid, s.probability]));
  const p = ph.instances.map((i) => bySop.get(i.sopInstanceUid) ?? Number.NaN);
  const r = lesionRanking(p, ph);
  const verdict =
    r.auc >= 0.8
      ? 'the model ranks the lesion slices above the lesion-free ones'
      : r.auc > 0.5
        ? 'the model ranks the lesion slices only weakly above the lesion-free ones'
        : 'the model does NOT rank the lesion slices above the lesion-free ones';
  return (
    `  phantom check: lesion slices mean p ${r.lesionMean.toFixed(3)} (${r.lesion}), lesion-free lung slices ${r.lesionFreeMean.toFixed(3)} ` +
    `(${r.lesionFree}); ranking AUC ${r.auc.toFixed(3)}: ${verdict}`
  );
}

async function main(): Promise<void> {
  const quiet = num('quiet-period', opts['quiet-period']);
  const stableAge = num('stable-age', opts['stable-age']);
  const timeoutMs = num('timeout', opts.timeout) * 1000;
  const work = await mkdtemp(join(tmpdir(), 'mlsam-demo-'));
  cleanups.push({
    what: 'remove the temp folder',
    fn: async () => (opts.keep || failed ? say(`temp folder kept: ${work}`) : rm(work, { recursive: true, force: true })),
  });
  say(`mlsam-node demo — NOT FOR DIAGNOSTIC USE (temp folder ${work})`);

  // 1. Redis.
  let redisUrl = opts.redis ?? process.env.MLSAM_REDIS__URL ?? 'redis://127.0.0.1:6379';
  if (!(await redisAnswers(redisUrl))) {
    if (opts.redis) throw new Error(`Redis at ${redisUrl} does not answer`);
    await mkdir(join(work, 'redis'), { recursive: true });
    const r = await PrivateRedisServer.start(join(work, 'redis'));
    cleanups.push({ what: 'stop redis-server', fn: () => r.stop() });
    redisUrl = r.url;
    say(`• Redis: none answered, started a private redis-server (pid ${r.pid}) on ${r.url}`);
  } else {
    say(`• Redis: ${redisUrl.replace(/\/\/[^@]*@/, '//***@')}`);
  }
  const keyPrefix = `mlsam-demo-${randomBytes(3).toString('hex')}`;
  cleanups.push({ what: 'drop the demo Redis keys', fn: () => dropRedisPrefix(redisUrl, keyPrefix) });

  // 2. Orthanc, told about our node (port chosen now, before the node starts).
  const nodePort = await port(11112);
  const orthanc = await startOrthanc({
    httpPort: await port(8042),
    dicomPort: await port(4242),
    workDir: join(work, 'orthanc'),
    keepWorkDir: true,
    modalities: {
      mlsam: { aeTitle: NODE_AET, port: nodePort },
      demo: { aeTitle: UPLOADER_AET, port: 104 },
    },
    lua: [forwarderLua({ modality: 'mlsam', nodeAeTitle: NODE_AET })],
    stableAgeSeconds: stableAge,
  });
  cleanups.push({ what: 'stop Orthanc', fn: () => orthanc.stop() });
  say(
    `• Orthanc ${(await orthanc.system()).Version} (pid ${orthanc.pid}): web UI ${orthanc.explorerUrl}, DICOM ${orthanc.aeTitle}@127.0.0.1:${orthanc.dicomPort}`,
  );

  // 3. The node: every role in one process.
  const httpPort = await port(8080);
  const node = await MlsamProcess.start({
    command: 'serve',
    workDir: work,
    config: {
      dicom: { aeTitle: NODE_AET, host: '127.0.0.1', port: nodePort },
      redis: { url: redisUrl, keyPrefix },
      spool: { dir: join(work, 'spool') },
      series: { quietPeriodSeconds: quiet },
      destinations: [{ name: 'orthanc', aeTitle: orthanc.aeTitle, host: '127.0.0.1', port: orthanc.dicomPort }],
      http: { host: '127.0.0.1', port: httpPort },
      log: { level: 'info' },
    },
  });
  cleanups.push({ what: 'stop mlsam serve', fn: () => node.stop() });
  await node.waitListening(60_000);
  say(
    `• mlsam serve (pid ${node.pid}): DICOM ${NODE_AET}@127.0.0.1:${nodePort}, dashboard http://127.0.0.1:${httpPort}/ , log ${node.logPath}`,
  );

  // 4. The series.
  let files: string[];
  let seriesUid: string | undefined;
  let studyUid: string | undefined;
  let phantom: PhantomSeries | undefined;
  if (opts.series) {
    const dir = resolve(opts.series);
    if (!existsSync(dir)) throw new Error(`--series ${dir}: no such folder`);
    files = await collectFiles([dir]);
    say(`• series: ${files.length} files from ${dir}`);
  } else {
    const slices = Math.round(num('slices', opts.slices));
    say(`• generating the synthetic chest CT phantom: ${slices} slices 512×512 ...`);
    const ph = await writePhantomSeries({ dir: join(work, 'phantom'), slices });
    phantom = ph;
    files = ph.instances.map((i) => i.path);
    seriesUid = ph.seriesInstanceUid;
    studyUid = ph.studyInstanceUid;
    const range = (v: number[]): string => (v.length ? `${v[0]! + 1}–${v[v.length - 1]! + 1}` : 'none');
    const gg = ph.lesions.filter((l) => l.kind === 'ground-glass').length;
    say(
      `  lung on slices ${range(ph.lungSlices)}; ${gg} ground-glass opacities and ${ph.lesions.length - gg} consolidation cut ` +
        `${ph.lesionSlices.length} of them (${range(ph.lesionSlices)}); the other ${ph.lungSlices.length - ph.lesionSlices.length} lung slices are lesion-free`,
    );
    say('  (a phantom, not a patient: what it can show is whether the model ranks the lesion slices above the lesion-free ones)');
  }
  say(`• sending ${files.length} instances to Orthanc as ${UPLOADER_AET} (C-STORE) ...`);
  const sent = await sendFiles(
    { host: '127.0.0.1', port: orthanc.dicomPort, calledAeTitle: orthanc.aeTitle, callingAeTitle: UPLOADER_AET },
    files,
    { onProgress: (d, t) => (d === t || d % 10 === 0 ? status(`sent ${d}/${t}`) : undefined) },
  );
  say(
    `  ${sent.sent} stored in Orthanc in ${(sent.ms / 1000).toFixed(1)} s${sent.failed.length ? `, ${sent.failed.length} failed (${sent.failed[0]!.reason})` : ''}`,
  );
  if (sent.sent === 0) throw new Error('Orthanc stored nothing');

  // The CT series to follow (the phantom's, or the largest CT series Orthanc now holds).
  if (!seriesUid) {
    const cts = (await orthanc.find('Series', { Modality: 'CT' })).sort((a, b) => (b.Instances?.length ?? 0) - (a.Instances?.length ?? 0));
    const ct = cts[0];
    if (!ct) throw new Error('Orthanc holds no CT series: nothing will be forwarded (the forwarder sends CT only)');
    seriesUid = ct.MainDicomTags.SeriesInstanceUID!;
    const study = await orthanc.get<OrthancResource>(`/studies/${ct.ParentStudy}`);
    studyUid = study.MainDicomTags.StudyInstanceUID!;
    if (cts.length > 1) say(`  ${cts.length} CT series; following the largest one (all CT series are forwarded)`);
  }
  const expected = (await orthanc.instancesOfSeries(seriesUid)).length;
  say(
    `• waiting: Orthanc forwards the series after ${stableAge} s without new instances; the node scores it ${quiet} s after its last instance`,
  );

  const redis = new Redis(redisUrl, { maxRetriesPerRequest: null });
  redis.on('error', () => undefined);
  const queue = new Queue(INFERENCE_QUEUE, { connection: redis, prefix: keyPrefix });
  queue.on('error', () => undefined);
  cleanups.push({
    what: 'close the Redis connection',
    fn: async () => {
      await queue.close();
      redis.disconnect();
    },
  });
  const tSent = Date.now();
  const { record, sr, objects } = await waitForResult(
    { orthanc, redis, keys: new Keys(keyPrefix), queue, studyUid: studyUid!, seriesUid, expected },
    timeoutMs,
  );
  const srTags = await orthanc.instanceTags(sr.ID);
  const srScore = srSeriesProbability(srTags);
  const srCat = srCategory(srTags);
  const studyId = await orthanc.studyId(studyUid!);
  say('');
  say(`RESULT (${((Date.now() - tSent) / 1000).toFixed(1)} s after the last instance was sent; NOT FOR DIAGNOSTIC USE)`);
  if (record?.status === 'scored') {
    say(
      `  series score (COVID-19 pneumonia pattern probability): ${(srScore ?? record.score)?.toFixed(3)} → ${record.category ?? srCat} ` +
        `(threshold ${record.threshold ?? '?'}, model ${record.model.name} ${record.model.version}, ${record.slices.length} slices)`,
    );
    if (srScore !== undefined && record.score !== undefined && Math.abs(srScore - record.score) > 1e-3) {
      say(`  WARNING: the SR in Orthanc says ${srScore}, the node computed ${record.score}`);
    }
    if (srScore === undefined) say('  WARNING: no series probability found in the SR stored in Orthanc');
    if (srCat && record.category && !srCat.toLowerCase().includes(record.category)) {
      say(`  WARNING: the SR in Orthanc says "${srCat}", the node computed ${record.category}`);
    }
    if (record.keySlices.length) {
      say(
        `  key slices: ${record.keySlices
          .slice(0, 5)
          .map((k) => `#${k.index + 1} ${k.probability.toFixed(2)}`)
          .join(', ')}`,
      );
    }
    if (phantom) say(phantomCheck(phantom, record));
  } else {
    say(`  not scored: ${record?.reason ?? 'see the SR'}`);
  }
  const kos = record?.outputs?.filter((o) => o.kind === 'kos').length ?? 0;
  say(
    `  in Orthanc, same study: 1 SR + ${objects.length - 1 - kos} Secondary Capture image(s)${kos ? ` + ${kos} Key Object Selection` : ''}`,
  );
  say(`  Orthanc study:  ${orthanc.explorerUrl}#study?uuid=${studyId}`);
  say(`  Dashboard:      http://127.0.0.1:${httpPort}/admin/series/${seriesUid}  (user admin, empty password: loopback only)`);
  say(`  Series in API:  http://127.0.0.1:${httpPort}/api/series/${seriesUid}`);
  if (opts.exit) return;
  say('\nRunning; press Ctrl-C to stop Orthanc, the node and everything else the demo started.');
  await new Promise(() => undefined);
}

main()
  .then(() => cleanup())
  .then(() => process.exit(0))
  .catch(async (err: unknown) => {
    failed = true;
    say(`demo failed: ${(err as Error).message}`);
    await cleanup();
    process.exit(1);
  });
