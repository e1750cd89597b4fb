/**
 * Helpers for the inference worker tests: real COVID-CT-MD slices (P001, JPEG Lossless), variants
 * derived with DCMTK's dcmodify / transcoders, jobs added the way the tracker adds them.
 */
import { copyFile, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import type { Config } from '../../src/config/schema.js';
import { readDicomHeaderFile } from '../../src/dicom/decode/index.js';
import { newUid } from '../../src/dicom/testing/synthetic-series.js';
import { INFERENCE_JOB_OPTIONS, inferenceJobId, instancesHash, type InferenceJobData } from '../../src/queue/jobs.js';
import { Keys } from '../../src/stores/keys.js';
import { resultRecordSchema, type ResultRecord } from '../../src/contracts/result-record.js';
import { run } from '../helpers/dcmtk.js';
import { SHARED_DATA } from '../helpers/dicom-listener.js';
import { waitFor } from '../queue/helpers.js';

export const P001 = join(SHARED_DATA, 'covid-ct-md', 'P001');

/** The first `n` files of P001 by name (a contiguous run of slice positions is not needed). */
export async function p001Files(n: number, skip = 0): Promise<string[]> {
  return (await readdir(P001))
    .sort()
    .slice(skip, skip + n)
    .map((f) => join(P001, f));
}

export interface SeriesIds {
  studyInstanceUid: string;
  seriesInstanceUid: string;
}

/**
 * Copies `files` into `<spool>/<study>/<series>` under new names; returns the folder and the
 * series ids. The files keep their own UIDs unless `retag` gives the series a fresh Series UID
 * (so several variants of P001 can be scored side by side).
 */
export async function spoolSeries(
  spool: string,
  files: string[],
  ids: SeriesIds,
  name: (i: number) => string = (i) => `${String(i).padStart(4, '0')}.dcm`,
): Promise<string> {
  const dir = join(spool, ids.studyInstanceUid, ids.seriesInstanceUid);
  await mkdir(dir, { recursive: true });
  for (const [i, f] of files.entries()) await copyFile(f, join(dir, name(i)));
  return dir;
}

/** dcmodify in place (-nb: no backup); `-m "(gggg,eeee)=value"` per entry. */
export async function dcmodify(file: string, tags: Record<string, string>): Promise<void> {
  const args = ['-nb', '-imt', ...Object.entries(tags).flatMap(([k, v]) => ['-m', `${k}=${v}`]), file];
  const r = await run('dcmodify', args);
  if (r.code !== 0) throw new Error(`dcmodify failed: ${r.stderr}`);
}

/** Gives every file of `dir` the series UID (and optionally study UID) of `ids`. */
export async function retagSeries(dir: string, ids: SeriesIds): Promise<void> {
  for (const f of (await readdir(dir)).sort()) {
    await dcmodify(join(dir, f), { '(0020,000E)': ids.seriesInstanceUid, '(0020,000D)': ids.studyInstanceUid });
  }
}

export async function sopUids(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const f of (await readdir(dir)).sort()) out.push((await readDicomHeaderFile(join(dir, f))).sopInstanceUid as string);
  return out;
}

/** The inference job the tracker would add for the folder's content. */
export async function addJob(
  queue: Queue<InferenceJobData>,
  dir: string,
  ids: SeriesIds,
  opts: Partial<typeof INFERENCE_JOB_OPTIONS> = {},
): Promise<string> {
  const sops = await sopUids(dir);
  const hash = instancesHash(sops);
  const now = new Date().toISOString();
  const data: InferenceJobData = {
    ...ids,
    seriesDir: dir,
    instanceCount: sops.length,
    instancesHash: hash,
    callingAeTitle: 'PACS',
    firstReceivedAt: now,
    lastReceivedAt: now,
    enqueuedBy: 'admin',
  };
  const jobId = inferenceJobId(ids.seriesInstanceUid, hash);
  await queue.add('score', data, { ...INFERENCE_JOB_OPTIONS, backoff: { type: 'fixed', delay: 200 }, ...opts, jobId });
  return jobId;
}

export function newIds(): SeriesIds {
  return { studyInstanceUid: newUid(), seriesInstanceUid: newUid() };
}

export async function readRecord(redis: Redis, config: Config, seriesUid: string): Promise<ResultRecord | undefined> {
  const raw = await redis.get(new Keys(config.redis.keyPrefix).result(seriesUid));
  return raw ? resultRecordSchema.parse(JSON.parse(raw)) : undefined;
}

/** Waits until the record of the series has one of `statuses` (and, if given, the content hash). */
export function waitForRecord(
  redis: Redis,
  config: Config,
  seriesUid: string,
  statuses: ResultRecord['status'][],
  timeoutMs = 120_000,
  hash?: string,
): Promise<ResultRecord> {
  return waitFor(
    async () => {
      const r = await readRecord(redis, config, seriesUid);
      return r && statuses.includes(r.status) && (!hash || r.instancesHash === hash) ? r : undefined;
    },
    timeoutMs,
    `result record of ${seriesUid} in ${statuses.join('/')}`,
    100,
  );
}

export async function truncate(file: string, bytes: number): Promise<void> {
  const buf = await readFile(file);
  await writeFile(file, buf.subarray(0, buf.length - bytes));
}

export function plainRedis(config: Config): Redis {
  const r = new Redis(config.redis.url, { maxRetriesPerRequest: 1 });
  r.on('error', () => undefined);
  return r;
}
