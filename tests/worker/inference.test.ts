/**
 * The inference worker against real peers: DCMTK storescu → listener → spool → tracker → BullMQ →
 * worker → result record in Redis, on real COVID-CT-MD slices (JPEG Lossless), compared with
 * `mlsam score --json` on the same files; input variants made with DCMTK; deterministic problems
 * end as "not scored" without retries; transient ones retry; a grown series keeps its predecessor.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFile, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, isAbsolute, join } from 'node:path';
import { promisify } from 'node:util';
import type { Job } from 'bullmq';
import { afterEach, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config/schema.js';
import { newUid } from '../../src/dicom/testing/synthetic-series.js';
import { ListenerRole } from '../../src/node/listener-role.js';
import { WorkerRole, type WorkerStages } from '../../src/node/worker-role.js';
import { Keys } from '../../src/stores/keys.js';
import type { OutputFile, ResultRecord } from '../../src/contracts/result-record.js';
import { run } from '../helpers/dcmtk.js';
import { MLSAM_MAIN } from '../helpers/process.js';
import { cleanup, logger, testConfig, waitFor } from '../queue/helpers.js';
import { inferenceQueue } from '../e2e/helpers.js';
import {
  addJob,
  dcmodify,
  newIds,
  p001Files,
  plainRedis,
  retagSeries,
  spoolSeries,
  truncate,
  waitForRecord,
  type SeriesIds,
} from './helpers.js';
import { SHIPPED_VERSION } from '../helpers/model.js';

const exec = promisify(execFile);
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

async function config(tag: string): Promise<Config> {
  const c = await testConfig(tag, {
    series: { quietPeriodSeconds: 1, routing: { minSlices: 10 } },
    model: { batchSize: 8 },
    worker: { concurrency: 1, lockDurationSeconds: 10, stalledIntervalSeconds: 5 },
  });
  cleanups.push(() => cleanup(c));
  return c;
}

async function worker(c: Config, stages: WorkerStages = {}): Promise<WorkerRole> {
  const w = new WorkerRole({ config: c, logger }, stages);
  await w.start();
  cleanups.push(() => w.stop());
  return w;
}

function queueOf(c: Config) {
  const q = inferenceQueue(c);
  cleanups.push(() => q.close());
  return q.queue;
}

function redisOf(c: Config) {
  const r = plainRedis(c);
  cleanups.push(async () => void r.disconnect());
  return r;
}

async function tmp(tag: string): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), `mlsam-${tag}-`));
  cleanups.push(() => rm(d, { recursive: true, force: true }));
  return d;
}

interface CliOut {
  slices: { sopInstanceUid: string; probability: number; index: number }[];
  series: {
    seriesInstanceUid: string;
    score: number;
    category: string;
    k: number;
    keySlices: { sopInstanceUid: string; index: number }[];
  }[];
}

/** `mlsam score --json` (the built CLI) on files. */
async function scoreCli(files: string[]): Promise<CliOut> {
  const { stdout } = await exec(process.execPath, [MLSAM_MAIN, 'score', '--json', '--batch-size', '8', ...files], {
    maxBuffer: 64 * 1024 * 1024,
    env: { ...process.env, MLSAM_LOG__LEVEL: 'warn' },
  });
  return JSON.parse(stdout) as CliOut;
}

const probs = (r: ResultRecord) => r.slices.map((s) => [s.sopInstanceUid, s.probability] as const);

/** Same slices in the same order; probabilities equal (tolerance 0: bit for bit), or within `tol`. */
function expectSameProbabilities(actual: ResultRecord, expected: readonly (readonly [string, number])[], tol = 1e-6): void {
  expect(actual.slices.map((s) => s.sopInstanceUid)).toEqual(expected.map((e) => e[0]));
  if (tol === 0) {
    expect(actual.slices.map((s) => s.probability)).toEqual(expected.map((e) => e[1]));
    return;
  }
  const maxDiff = Math.max(...actual.slices.map((s, i) => Math.abs(s.probability - (expected[i]?.[1] ?? NaN))));
  expect(maxDiff).toBeLessThan(tol);
}

describe('inference worker', () => {
  it('scores a real series that came in over DICOM, with the same slice probabilities as `mlsam score`', async () => {
    const c = await config('wk-e2e');
    const results: ResultRecord[] = [];
    const listener = new ListenerRole({ config: c, logger });
    await listener.start();
    cleanups.push(() => listener.stop());
    await worker(c, { onResult: async (r) => void results.push(r) });
    const queue = queueOf(c);
    const redis = redisOf(c);

    const files = await p001Files(30);
    // -xs: propose JPEG Lossless SV1, the files' own syntax (sent as published, not decompressed)
    const sent = await run('storescu', [
      '-v',
      '-xs',
      '-aet',
      'PACS',
      '-aec',
      'MLSAM',
      '127.0.0.1',
      String(listener.address?.port ?? 0),
      ...files,
    ]);
    expect((sent.stdout + sent.stderr).match(/Received Store Response \(Success\)/g)?.length, sent.stderr).toBe(30);
    const uid = (await import('../../src/dicom/decode/index.js').then((m) => m.readDicomHeaderFile(files[0] as string)))
      .seriesInstanceUid as string;
    const rec = await waitForRecord(redis, c, uid, ['scored', 'not-scored', 'failed'], 120_000);
    expect(rec.status, rec.reason).toBe('scored');

    const cli = await scoreCli(files);
    expect(cli.series).toHaveLength(1);
    // same engine, same batch size: the very same numbers
    expectSameProbabilities(
      rec,
      cli.slices.map((s) => [s.sopInstanceUid, s.probability] as const),
      0,
    );
    expect(rec.score).toBe(cli.series[0]!.score);
    expect(rec.category).toBe(cli.series[0]!.category);
    expect(rec.k).toBe(cli.series[0]!.k);
    expect(rec.keySlices.map((k) => k.sopInstanceUid)).toEqual(cli.series[0]!.keySlices.map((k) => k.sopInstanceUid));

    // the record: what the results stage, the dashboard and the API read
    expect(rec).toMatchObject({
      seriesInstanceUid: uid,
      callingAeTitle: 'PACS',
      instanceCount: 30,
      provider: 'cpu',
      model: { name: 'mlsam-mobilenetv2', version: SHIPPED_VERSION },
      attemptsMade: 1,
      dropped: [],
    });
    expect(
      rec.slices.every((s) => isAbsolute(s.file) && s.file.startsWith(rec.seriesDir) && s.sopClassUid === '1.2.840.10008.5.1.4.1.1.2'),
    ).toBe(true);
    expect(rec.slices.map((s) => s.index)).toEqual([...Array(30).keys()]);
    for (const k of rec.keySlices) {
      expect(k.attention?.data).toHaveLength((k.attention?.width ?? 0) * (k.attention?.height ?? 0));
      expect(k.attention?.imageWidth).toBe(512);
    }
    for (const t of ['waitMs', 'readMs', 'decodeMs', 'preprocessMs', 'inferMs', 'aggregateMs', 'resultsMs', 'totalMs'] as const) {
      expect(rec.timings[t], t).toBeGreaterThanOrEqual(0);
    }
    expect(rec.finishedAt).toBeDefined();
    expect(results).toHaveLength(1);

    // the job: completed once, progress slices done / total
    const jobs = await queue.getJobs(['completed', 'failed', 'active', 'waiting', 'delayed']);
    expect(jobs).toHaveLength(1);
    const job = jobs[0] as Job;
    expect(await job.getState()).toBe('completed');
    expect(job.progress).toEqual({ done: 30, total: 30 });
    expect(job.returnvalue).toMatchObject({ status: 'scored', category: rec.category });
    // the tracker's series hash and the result index show it
    const keys = new Keys(c.redis.keyPrefix);
    expect(await redis.hget(keys.series(uid), 'status')).toBe('scored');
    expect(await redis.zscore(keys.resultIndex(), uid)).not.toBeNull();
  }, 300_000);

  it('scores input variants the same: scrambled order, duplicates, localizer, mixed orientations, a corrupt slice, mixed transfer syntaxes', async () => {
    const c = await config('wk-var');
    await worker(c);
    const queue = queueOf(c);
    const redis = redisOf(c);
    const work = await tmp('variants');
    const files = await p001Files(12);
    const extra = (await p001Files(1, 12))[0] as string;
    const variants: Record<string, { ids: SeriesIds; dir: string }> = {};
    const make = async (name: string, src: string[], nameOf?: (i: number) => string) => {
      const ids = newIds();
      const dir = await spoolSeries(c.spool.dir, src, ids, nameOf);
      await retagSeries(dir, ids);
      variants[name] = { ids, dir };
      return dir;
    };
    await make('clean', files);
    await make('scrambled', files, () => `${randomBytes(6).toString('hex')}.dcm`);
    const dup = await make('duplicate', files);
    const dupUid = newUid();
    await copyFile(join(dup, '0003.dcm'), join(dup, 'z-dup.dcm'));
    await dcmodify(join(dup, 'z-dup.dcm'), { '(0008,0018)': dupUid, '(0020,0012)': '99' });
    const loc = await make('localizer', files);
    await copyFile(join(loc, '0000.dcm'), join(loc, 'z-loc.dcm'));
    await dcmodify(join(loc, 'z-loc.dcm'), { '(0008,0018)': newUid(), '(0008,0008)': 'ORIGINAL\\PRIMARY\\LOCALIZER' });
    const ori = await make('orientation', files);
    await copyFile(join(ori, '0001.dcm'), join(ori, 'z-sag.dcm'));
    await dcmodify(join(ori, 'z-sag.dcm'), { '(0008,0018)': newUid(), '(0020,0037)': '0\\1\\0\\0\\0\\-1' });
    const bad = await make('corrupt', [...files, extra]);
    await truncate(join(bad, '0012.dcm'), 5000);
    // transfer syntaxes the listener accepts, made by DCMTK from the JPEG Lossless originals
    const plain = join(work, 'plain');
    const mixed: string[] = [];
    for (const [i, f] of files.entries()) {
      const out = join(work, `m${i}.dcm`);
      if (i % 4 === 3) {
        mixed.push(f);
        continue;
      }
      expect((await run('dcmdjpeg', [f, i % 4 === 0 ? out : plain])).code).toBe(0);
      if (i % 4 === 1) expect((await run('dcmcjpls', [plain, out])).code).toBe(0);
      if (i % 4 === 2) expect((await run('dcmcrle', [plain, out])).code).toBe(0);
      mixed.push(out);
    }
    await make('syntaxes', mixed);

    for (const v of Object.values(variants)) await addJob(queue, v.dir, v.ids);
    const rec: Record<string, ResultRecord> = {};
    for (const [name, v] of Object.entries(variants))
      rec[name] = await waitForRecord(redis, c, v.ids.seriesInstanceUid, ['scored', 'not-scored', 'failed'], 180_000);
    for (const [name, r] of Object.entries(rec)) expect(r.status, `${name}: ${r.reason}`).toBe('scored');

    const clean = probs(rec.clean!);
    expect(clean).toHaveLength(12);
    for (const name of ['scrambled', 'localizer', 'orientation', 'corrupt', 'syntaxes']) expectSameProbabilities(rec[name]!, clean);
    // the later acquisition at a repeated position replaces the earlier one, with the same pixels
    const dupOf = (await import('../../src/dicom/decode/index.js').then((m) => m.readDicomHeaderFile(join(dup, '0003.dcm'))))
      .sopInstanceUid;
    expectSameProbabilities(
      rec.duplicate!,
      clean.map(([sop, p]) => [sop === dupOf ? dupUid : sop, p] as const),
    );
    const reasons = (r: ResultRecord) => r.dropped.map((d) => d.reason).join(' | ');
    expect(reasons(rec.duplicate!)).toMatch(new RegExp(`duplicate position .* kept the later acquisition ${dupUid.replace(/\./g, '\\.')}`));
    expect(reasons(rec.localizer!)).toMatch(/localizer/);
    expect(reasons(rec.orientation!)).toMatch(/not axial/);
    expect(reasons(rec.corrupt!)).toMatch(/undecodable \(pixel-data-too-short\)/);
    expect(rec.clean!.dropped).toEqual([]);
    const syntaxes = new Set<string>();
    for (const f of await readdir(variants.syntaxes!.dir)) {
      const h = await import('../../src/dicom/decode/index.js').then((m) => m.readDicomHeaderFile(join(variants.syntaxes!.dir, f)));
      syntaxes.add(h.transferSyntaxUid as string);
    }
    expect([...syntaxes].sort()).toEqual([
      '1.2.840.10008.1.2.1',
      '1.2.840.10008.1.2.4.70',
      '1.2.840.10008.1.2.4.80',
      '1.2.840.10008.1.2.5',
    ]);
  }, 300_000);

  it('ends deterministic problems as "not scored: <reason>" without retries: too short, no usable slices, undecodable', async () => {
    const c = await config('wk-ns');
    const seen: string[] = [];
    await worker(c, { onResult: async (r) => void seen.push(r.status) });
    const queue = queueOf(c);
    const redis = redisOf(c);
    const files = await p001Files(12);
    const short = newIds();
    await retagSeries(await spoolSeries(c.spool.dir, files.slice(0, 5), short), short);
    const scouts = newIds();
    const scoutDir = await spoolSeries(c.spool.dir, files, scouts);
    for (const f of await readdir(scoutDir))
      await dcmodify(join(scoutDir, f), {
        '(0020,000E)': scouts.seriesInstanceUid,
        '(0020,000D)': scouts.studyInstanceUid,
        '(0008,0008)': 'ORIGINAL\\PRIMARY\\LOCALIZER',
      });
    const broken = newIds();
    const brokenDir = await spoolSeries(c.spool.dir, files, broken);
    await retagSeries(brokenDir, broken);
    for (const f of await readdir(brokenDir)) await truncate(join(brokenDir, f), 5000);

    const cases: [SeriesIds, RegExp][] = [
      [short, /too few axial slices \(5 < 10\)/],
      [scouts, /no scorable slices/],
      [broken, /no slice could be decoded/],
    ];
    for (const [ids, , dir] of cases.map(
      ([ids, re]) => [ids, re, join(c.spool.dir, ids.studyInstanceUid, ids.seriesInstanceUid)] as const,
    )) {
      await addJob(queue, dir, ids);
    }
    for (const [ids, re] of cases) {
      const r = await waitForRecord(redis, c, ids.seriesInstanceUid, ['not-scored', 'scored', 'failed']);
      expect(r.status).toBe('not-scored');
      expect(r.reason).toMatch(re);
      expect(r.slices).toEqual([]);
      const job = await waitFor(
        async () => {
          const jobs = await queue.getJobs(['failed']);
          return jobs.find((j) => j.data.seriesInstanceUid === ids.seriesInstanceUid);
        },
        10_000,
        'failed job',
      );
      expect(job.failedReason).toMatch(new RegExp(`^not scored: .*${re.source}`));
      expect(job.attemptsMade).toBe(1); // UnrecoverableError: no retries
    }
    expect(seen).toEqual(['not-scored', 'not-scored', 'not-scored']);
  }, 300_000);

  it('retries a transient failure, marks the last failed attempt "failed", and keeps the predecessor of a grown series', async () => {
    const c = await config('wk-retry');
    let calls = 0;
    const srUid = newUid();
    const srSeries = newUid();
    await worker(c, {
      onResult: async (r): Promise<OutputFile[]> => {
        if (r.seriesInstanceUid === doomed.seriesInstanceUid) throw new Error('results store unavailable');
        if (calls++ === 0) throw new Error('transient: disk busy');
        return [
          {
            kind: 'sr',
            path: '/tmp/sr.dcm',
            sopClassUid: '1.2.840.10008.5.1.4.1.1.88.33',
            sopInstanceUid: srUid,
            seriesInstanceUid: srSeries,
          },
        ];
      },
    });
    const doomed = newIds();
    const queue = queueOf(c);
    const redis = redisOf(c);
    const files = await p001Files(11);
    const ids = newIds();
    const dir = await spoolSeries(c.spool.dir, files.slice(0, 10), ids);
    await retagSeries(dir, ids);
    const first = await addJob(queue, dir, ids);
    const r1 = await waitForRecord(redis, c, ids.seriesInstanceUid, ['scored', 'failed']);
    expect(r1).toMatchObject({ status: 'scored', attemptsMade: 2, jobId: first, outputs: [{ kind: 'sr', sopInstanceUid: srUid }] });
    expect(r1.previous).toBeUndefined();

    // the series grows: scored again, the old result becomes its predecessor
    await copyFile(files[10] as string, join(dir, 'late.dcm'));
    await dcmodify(join(dir, 'late.dcm'), { '(0020,000E)': ids.seriesInstanceUid, '(0020,000D)': ids.studyInstanceUid });
    const second = await addJob(queue, dir, ids);
    const r2 = await waitFor(
      async () => {
        const r = await waitForRecord(redis, c, ids.seriesInstanceUid, ['scored']);
        return r.jobId === second ? r : undefined;
      },
      60_000,
      'second result',
    );
    expect(r2.slices).toHaveLength(11);
    expect(r2.previous).toEqual([
      {
        instancesHash: r1.instancesHash,
        modelVersion: SHIPPED_VERSION,
        srSopInstanceUid: srUid,
        srSeriesInstanceUid: srSeries,
        finishedAt: r1.finishedAt,
      },
    ]);

    const ddir = await spoolSeries(c.spool.dir, files.slice(0, 10), doomed);
    await retagSeries(ddir, doomed);
    await addJob(queue, ddir, doomed, { attempts: 2 });
    const r3 = await waitForRecord(redis, c, doomed.seriesInstanceUid, ['failed']);
    expect(r3).toMatchObject({ status: 'failed', reason: 'results store unavailable', attemptsMade: 2 });
    expect(r3.slices).toHaveLength(10); // scored, then the results stage failed: the scores stay visible
    // the record is written inside the last attempt, before BullMQ moves the job to the failed set: wait for that
    const job = await waitFor(
      async () => (await queue.getJobs(['failed'])).find((j) => j.data.seriesInstanceUid === doomed.seriesInstanceUid),
      30_000,
      'the job in the failed set',
    );
    expect(job.attemptsMade).toBe(2);
    expect(basename(r3.seriesDir)).toBe(doomed.seriesInstanceUid);
  }, 300_000);

  it('skips a job whose series grew after it was queued when the job for the new content is waiting', async () => {
    const c = await config('wk-grown');
    const queue = queueOf(c);
    const redis = redisOf(c);
    const files = await p001Files(11);
    const sops = await Promise.all(
      files.map(
        async (f) => (await import('../../src/dicom/decode/index.js').then((m) => m.readDicomHeaderFile(f))).sopInstanceUid as string,
      ),
    );
    const ids = newIds();
    // spool names as the listener writes them: <SOP Instance UID>.dcm
    const dir = await spoolSeries(c.spool.dir, files.slice(0, 10), ids, (i) => `${sops[i]}.dcm`);
    await retagSeries(dir, ids);
    const old = await addJob(queue, dir, ids);
    await copyFile(files[10] as string, join(dir, `${sops[10]}.dcm`));
    await dcmodify(join(dir, `${sops[10]}.dcm`), { '(0020,000E)': ids.seriesInstanceUid, '(0020,000D)': ids.studyInstanceUid });
    const grown = await addJob(queue, dir, ids);
    await worker(c);
    const rec = await waitForRecord(redis, c, ids.seriesInstanceUid, ['scored', 'not-scored', 'failed']);
    expect(rec).toMatchObject({ status: 'scored', jobId: grown, instanceCount: 11 });
    expect(rec.slices).toHaveLength(11);
    expect(rec.previous).toBeUndefined(); // the old content was never scored, so it is no predecessor
    const oldJob = await queue.getJob(old);
    expect(await oldJob?.getState()).toBe('completed');
    expect(oldJob?.returnvalue).toEqual({ status: 'superseded', instancesHash: rec.instancesHash });
  }, 120_000);
});
