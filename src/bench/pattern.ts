/**
 * What the distribution features cost the worker (issue 28: ≤ 2 ms per slice): on the shared COVID-CT-MD series,
 * each slice decoded and analysed once (the lung + opacity stage, timed for comparison), then its distribution
 * summary (src/model/pattern.ts, what a prepare thread adds per slice) timed `rounds` times, best of the rounds per
 * slice (the least disturbed by other load on the machine); and the series step (3-D foci, zones, rule) per series.
 *
 *   node dist/bench/pattern.js [--rounds 3]          (also section 5 of `npm run bench`)
 */
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadConfig, PROJECT_ROOT } from '../config/load.js';
import { decodeDicomFile, readDicomHeaderFile } from '../dicom/decode/index.js';
import { loadModelMetadata } from '../model/metadata.js';
import { resolveModelPath } from '../model/model-path.js';
import { analyseSlice, type SliceAnalysis } from '../model/opacity.js';
import { slicePattern, type SlicePattern } from '../model/pattern.js';
import { selectSlices } from '../scoring/select-slices.js';
import { sliceSpacing } from '../scoring/series-opacity.js';
import { seriesPattern } from '../scoring/series-pattern.js';

export interface PatternBenchRow {
  series: string;
  slices: number;
  /** Mean over slices of the best-of-rounds time of one slice's summary, ms. */
  patternMs: number;
  /** The slowest slice's best-of-rounds, ms. */
  patternMaxMs: number;
  /** Mean lung + opacity stage per slice (one pass), ms, for scale. */
  lungMs: number;
  /** The series step (3-D foci, zones, rule), ms. */
  seriesMs: number;
  category: string;
}

const SERIES = ['P001', 'cap001', 'normal001'];

export async function runPatternBench(rounds = 3): Promise<PatternBenchRow[] | null> {
  const ctmd = path.resolve(PROJECT_ROOT, '..', 'shared', 'data', 'covid-ct-md');
  if (!existsSync(ctmd)) return null;
  const meta = (await loadModelMetadata(resolveModelPath(loadConfig().model.path))).metadata;
  const lungs = meta.preprocessing.lungs;
  const quant = meta.quantification;
  if (!lungs || !quant) return null;
  const rows: PatternBenchRow[] = [];
  for (const name of SERIES) {
    const dir = path.join(ctmd, name);
    const cands = await Promise.all(
      readdirSync(dir).map(async (f) => ({ file: path.join(dir, f), header: await readDicomHeaderFile(path.join(dir, f)) })),
    );
    const sel = selectSlices(cands).slices;
    const analyses: SliceAnalysis[] = [];
    let lungMs = 0;
    for (const s of sel) {
      const d = await decodeDicomFile(s.file);
      const t = performance.now();
      analyses.push(
        analyseSlice(d.image.data, d.image.width, d.image.height, d.header.pixelSpacing ?? [1, 1], lungs, quant, d.image.sliceThicknessMm),
      );
      lungMs += performance.now() - t;
    }
    const best = new Array<number>(analyses.length).fill(Infinity);
    let patterns: SlicePattern[] = [];
    for (let r = 0; r < rounds; r++) {
      patterns = analyses.map((a, i) => {
        const t = performance.now();
        const p = slicePattern({ ...a.segmentation, ...a.masks }, a.grid.pxMm);
        best[i] = Math.min(best[i] as number, performance.now() - t);
        return p;
      });
    }
    const positions = sel.map((s) => s.position);
    const t = performance.now();
    const sp = seriesPattern(
      patterns.map((p, i) => ({ pattern: p, position: positions[i] ?? null })),
      sel[0]?.header.imageOrientationPatient ?? null,
      sliceSpacing(positions),
    );
    const seriesMs = performance.now() - t;
    rows.push({
      series: name,
      slices: sel.length,
      patternMs: best.reduce((a, b) => a + b, 0) / best.length,
      patternMaxMs: Math.max(...best),
      lungMs: lungMs / sel.length,
      seriesMs,
      category: sp?.category ?? 'n/a',
    });
  }
  return rows;
}

export function patternReportLines(rows: PatternBenchRow[] | null, rounds: number): string[] {
  if (!rows) return ['Skipped: ../shared/data/covid-ct-md is not there.'];
  return [
    `Per slice on the working grid, in one thread: the distribution summary a prepare thread adds to each HU slice ` +
      `(depth to the pleura, opacity components with their runs; best of ${rounds} rounds per slice), beside the lung + ` +
      `opacity stage it follows (one pass); then the series step once per series. Target: ≤ 2 ms per slice.`,
    '',
    '| series | slices | pattern per slice, mean (ms) | slowest slice (ms) | lung + opacity per slice (ms) | series step (ms) | category |',
    '|---|---:|---:|---:|---:|---:|---|',
    ...rows.map(
      (r) =>
        `| ${r.series} | ${r.slices} | ${r.patternMs.toFixed(2)} | ${r.patternMaxMs.toFixed(2)} | ${r.lungMs.toFixed(1)} | ${r.seriesMs.toFixed(1)} | ${r.category} |`,
    ),
  ];
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: { rounds: { type: 'string', default: '3' } } });
  const rounds = Math.max(1, Number(values.rounds) || 3);
  const rows = await runPatternBench(rounds);
  process.stdout.write(`${patternReportLines(rows, rounds).join('\n')}\n`);
}
