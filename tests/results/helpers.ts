/**
 * A real ResultRecord for the results tests: a few slices of ../shared/data/covid-ct-md/P001 are
 * copied into a spool-shaped folder and scored with the shipped model (key-slice attention on);
 * recordFromScore turns the ScoreResult into the record the inference worker writes (with the
 * model work's fields: opacity, regions, CNN-only numbers, when the scoring gives them).
 */
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { readDicomHeaderFile } from '../../src/dicom/decode/index.js';
import { spoolPathFor } from '../../src/dicom/spool/spool-layout.js';
import { SopClass } from '../../src/dicom/uids.js';
import { loadModelMetadata, type ModelMetadata } from '../../src/model/metadata.js';
import { scoreFiles, type ScoreResult, type SeriesLabels } from '../../src/scoring/score.js';
import { scoredFields } from '../../src/worker/inference/scored-record.js';
import type { ResultRecord } from '../../src/contracts/result-record.js';
import { SHIPPED_MODEL } from '../helpers/model.js';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const P001 = path.resolve(repoRoot, '..', 'shared', 'data', 'covid-ct-md', 'P001');
export const MODEL_PATH = SHIPPED_MODEL;

/** sha256 over the sorted SOP Instance UIDs, one per line. */
export function instancesHash(uids: readonly string[]): string {
  return createHash('sha256')
    .update([...uids].sort().join('\n'))
    .digest('hex');
}

/** Copies the P001 instances with these instance numbers into <spool>/<study>/<series>/<sop>.dcm; returns the series folder. */
export async function spoolP001(spoolDir: string, instanceNumbers: readonly number[]): Promise<{ seriesDir: string; files: string[] }> {
  const wanted = new Set(instanceNumbers);
  const files: string[] = [];
  let seriesDir = '';
  for (const name of readdirSync(P001).sort()) {
    const n = Number(/_(\d+)\.dcm$/.exec(name)?.[1]);
    if (!wanted.has(n)) continue;
    const src = path.join(P001, name);
    const h = await readDicomHeaderFile(src);
    const dest = spoolPathFor(spoolDir, h.studyInstanceUid as string, h.seriesInstanceUid as string, h.sopInstanceUid as string);
    mkdirSync(path.dirname(dest), { recursive: true });
    copyFileSync(src, dest);
    seriesDir = path.dirname(dest);
    files.push(dest);
  }
  return { seriesDir, files };
}

/** The ResultRecord of the (single) series of a ScoreResult, as the inference worker would write it. */
export function recordFromScore(
  score: ScoreResult,
  _meta: ModelMetadata,
  opts: { seriesDir: string; startedAt?: string; finishedAt?: string; previous?: ResultRecord['previous'] },
): ResultRecord {
  const s = score.series[0];
  if (!s?.seriesInstanceUid || !s.studyInstanceUid) throw new Error('no scored DICOM series');
  const fields = scoredFields(
    s,
    score.slices.filter((x) => x.seriesInstanceUid === s.seriesInstanceUid),
    SopClass.CtImageStorage,
  );
  return {
    studyInstanceUid: s.studyInstanceUid,
    seriesInstanceUid: s.seriesInstanceUid,
    instancesHash: instancesHash(fields.slices.map((x) => x.sopInstanceUid)),
    jobId: `test-${s.seriesInstanceUid}`,
    seriesDir: opts.seriesDir,
    callingAeTitle: 'TESTSCU',
    status: 'scored',
    model: { name: score.model.name, version: score.model.version, sha256: score.model.sha256 },
    provider: 'cpu',
    instanceCount: fields.slices.length + s.dropped.length,
    ...fields,
    dropped: s.dropped.map((d) => ({ sopInstanceUid: d.sopInstanceUid, reason: d.reason })),
    timings: {},
    startedAt: opts.startedAt ?? '2026-11-26T01:02:03.456Z',
    finishedAt: opts.finishedAt ?? '2026-11-26T01:02:09.789Z',
    attemptsMade: 1,
    ...(opts.previous ? { previous: opts.previous } : {}),
  };
}

/** Scores the spooled series and returns its record, the model metadata and (as the worker keeps them) the slices' lung and lesion labels. */
export async function scoredRecord(
  seriesDir: string,
  files: string[],
): Promise<{ record: ResultRecord; meta: ModelMetadata; labels?: SeriesLabels }> {
  const { metadata } = await loadModelMetadata(MODEL_PATH, { verifyHash: false });
  const score = await scoreFiles(files, { modelPath: MODEL_PATH, keyAttention: true, keepLabels: true, batchSize: 8, threads: 2 });
  const labels = score.series[0]?.labels;
  return { record: recordFromScore(score, metadata, { seriesDir }), meta: metadata, ...(labels ? { labels } : {}) };
}

/** Config with the spool at `spoolDir`. */
export function testConfig(spoolDir: string, results: Partial<Config['results']> = {}): Config {
  const c = loadConfig({ env: {}, overrides: { spool: { dir: spoolDir } } });
  return { ...c, results: { ...c.results, ...results } };
}
