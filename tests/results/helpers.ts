/**
 * A real ResultRecord for the results tests: a few slices of ../shared/data/covid-ct-md/P001 are
 * copied into a spool-shaped folder and scored with the shipped model (key-slice attention on);
 * recordFromScore turns the ScoreResult into the record the inference worker writes.
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
import { scoreFiles, type ScoreResult } from '../../src/scoring/score.js';
import type { ResultRecord } from '../../src/queue/result-record.js';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const P001 = path.resolve(repoRoot, '..', 'shared', 'data', 'covid-ct-md', 'P001');
export const MODEL_PATH = path.join(repoRoot, 'models', 'mlsam-mobilenetv2-1.0.0.onnx');

/** sha256 over the sorted SOP Instance UIDs, one per line. */
export function instancesHash(uids: readonly string[]): string {
  return createHash('sha256').update([...uids].sort().join('\n')).digest('hex');
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
  meta: ModelMetadata,
  opts: { seriesDir: string; startedAt?: string; finishedAt?: string; previous?: ResultRecord['previous'] },
): ResultRecord {
  const s = score.series[0];
  if (!s || !s.seriesInstanceUid || !s.studyInstanceUid) throw new Error('no scored DICOM series');
  const slices = score.slices
    .filter((x) => x.seriesInstanceUid === s.seriesInstanceUid)
    .map((x) => ({
      index: x.index,
      sopInstanceUid: x.sopInstanceUid as string,
      sopClassUid: SopClass.CtImageStorage,
      file: x.file,
      probability: x.probability,
      position: x.position,
      instanceNumber: x.instanceNumber,
    }));
  return {
    studyInstanceUid: s.studyInstanceUid,
    seriesInstanceUid: s.seriesInstanceUid,
    instancesHash: instancesHash(slices.map((x) => x.sopInstanceUid)),
    jobId: `test-${s.seriesInstanceUid}`,
    seriesDir: opts.seriesDir,
    callingAeTitle: 'TESTSCU',
    status: 'scored',
    model: { name: score.model.name, version: score.model.version, sha256: score.model.sha256 },
    provider: 'cpu',
    instanceCount: slices.length + s.dropped.length,
    score: s.score,
    category: s.category,
    threshold: s.threshold,
    indeterminateMargin: meta.series.indeterminateMargin,
    k: s.k,
    slices,
    keySlices: s.keySlices.map((k) => ({
      index: k.index,
      sopInstanceUid: k.sopInstanceUid as string,
      probability: k.probability,
      ...(k.attention ? { attention: k.attention } : {}),
    })),
    dropped: s.dropped.map((d) => ({ sopInstanceUid: d.sopInstanceUid, reason: d.reason })),
    timings: {},
    startedAt: opts.startedAt ?? '2026-11-26T01:02:03.456Z',
    finishedAt: opts.finishedAt ?? '2026-11-26T01:02:09.789Z',
    attemptsMade: 1,
    ...(opts.previous ? { previous: opts.previous } : {}),
  };
}

/** Scores the spooled series and returns its record and the model metadata. */
export async function scoredRecord(seriesDir: string, files: string[]): Promise<{ record: ResultRecord; meta: ModelMetadata }> {
  const { metadata } = await loadModelMetadata(MODEL_PATH, { verifyHash: false });
  const score = await scoreFiles(files, { modelPath: MODEL_PATH, keyAttention: true, batchSize: 8, threads: 2 });
  return { record: recordFromScore(score, metadata, { seriesDir }), meta: metadata };
}

/** Config with the spool at `spoolDir`. */
export function testConfig(spoolDir: string, results: Partial<Config['results']> = {}): Config {
  const c = loadConfig({ env: {}, overrides: { spool: { dir: spoolDir } } });
  return { ...c, results: { ...c.results, ...results } };
}

/**
 * The record as the model work fills it (region outlines, opacity burden, CNN-only numbers), for
 * records whose pipeline does not give these yet: every key slice with an attention map gets an
 * outline (a 12-gon of radius 14 px) around its attention peak, clipped to the image, and
 * deterministic opacity figures; the series gets an opacity block. Values derive from the record.
 */
export function seedModelFields(record: ResultRecord, pixelSpacingMm = 0.7): ResultRecord {
  const r = structuredClone(record);
  r.keySlices = r.keySlices.map((k, i) => {
    const att = k.attention;
    if (!att) return k;
    let best = 0;
    att.data.forEach((v, j) => { if (v > (att.data[best] ?? 0)) best = j; });
    const bw = att.cropBox.x1 - att.cropBox.x0 + 1;
    const bh = att.cropBox.y1 - att.cropBox.y0 + 1;
    const cx = att.cropBox.x0 + (((best % att.width) + 0.5) * bw) / att.width;
    const cy = att.cropBox.y0 + ((Math.floor(best / att.width) + 0.5) * bh) / att.height;
    const rad = 14;
    const pts: number[] = [];
    for (let a = 0; a < 12; a++) {
      const t = (a / 12) * 2 * Math.PI;
      pts.push(
        Math.min(att.imageWidth - 0.5, Math.max(0.5, Math.round((cx + rad * Math.cos(t)) * 2) / 2)),
        Math.min(att.imageHeight - 0.5, Math.max(0.5, Math.round((cy + rad * Math.sin(t) * 0.8) * 2) / 2)),
      );
    }
    pts.push(pts[0]!, pts[1]!);
    let area = 0;
    for (let j = 0; j + 3 < pts.length; j += 2) area += pts[j]! * pts[j + 3]! - pts[j + 2]! * pts[j + 1]!;
    const opacity = Math.round((5 + 30 * k.probability) * 100) / 100;
    return {
      ...k,
      cnnProbability: Math.round(k.probability * 0.9 * 1e4) / 1e4,
      opacityPercent: opacity,
      highOpacityPercent: Math.round((opacity / (4 + i)) * 100) / 100,
      region: { peak: [cx, cy], polygon: pts, polygonAreaMm2: Math.round((Math.abs(area) / 2) * pixelSpacingMm * pixelSpacingMm * 10) / 10 },
    };
  });
  const measure = (lungMl: number, pct: number) => ({
    lungMl, opacityMl: Math.round(lungMl * pct) / 100, highOpacityMl: Math.round(lungMl * pct * 0.2) / 100,
    percentOpacity: pct, percentHighOpacity: Math.round(pct * 20) / 100,
  });
  r.cnnScore = Math.round((r.score ?? 0) * 0.95 * 1e4) / 1e4;
  r.fusion = 'cnn+opacity';
  r.opacity = {
    method: 'hu-threshold-v1', opacityHu: [-700, -100], highOpacityHu: [-100, 100],
    total: measure(4210, 11.4), right: measure(2290, 9.8), left: measure(1920, 13.3),
  };
  return r;
}
