/**
 * `mlsam score` end to end, as an operator runs it: the built CLI on the COVID-CT-MD series (JPEG
 * Lossless DICOM) and a COVID-CT PNG. The COVID series must rank above the normal one; the JSON
 * must be one object with the documented fields, consistent with the model metadata: the fused series
 * score is reproduced from the printed slice numbers (src/model/fusion.ts), the PNG is scored by the CNN
 * alone and says so.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { fuseSeries, type FusionSpec } from '../../src/model/fusion.js';
import type { ScoreResult } from '../../src/scoring/score.js';
import { SHIPPED_METADATA } from '../helpers/model.js';

const run = promisify(execFile);
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const data = path.resolve(repoRoot, '..', 'shared', 'data');
const cli = path.join(repoRoot, 'dist', 'cli', 'main.js');
const metaPath = SHIPPED_METADATA;

type Out = ScoreResult;

function labels(series: string): string[] {
  return readFileSync(path.join(data, 'covid-ct-md', 'slice_labels.csv'), 'utf8')
    .split('\n')
    .filter((l) => l.startsWith(`${series},`))
    .map((l) => l.split(',')[1] as string);
}

const png = (() => {
  const split = readFileSync(path.join(data, 'covid-ct', 'split.csv'), 'utf8').split('\n');
  const row = split.find((l) => /^CT_COVID\/.*\.png,1,test$/.test(l)) as string;
  return path.join(data, 'covid-ct', row.split(',')[0] as string);
})();

beforeAll(() => {
  if (!existsSync(cli)) execFileSync('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: repoRoot, stdio: 'inherit' });
});

describe('mlsam score', () => {
  it('scores P001 above normal001, a PNG as a one-slice series, and skips a non-image file', async () => {
    const meta = JSON.parse(readFileSync(metaPath, 'utf8')) as {
      name: string;
      version: string;
      series: { keySlices: number; threshold: number; aggregation: { kFraction: number; kMin: number } };
      fusion: FusionSpec;
      metrics?: { covidCtMd?: { series?: Record<string, { score?: number }> } };
    };
    const t0 = Date.now();
    const { stdout } = await run(
      process.execPath,
      [
        cli,
        'score',
        '--json',
        '--batch-size',
        '16',
        path.join(data, 'covid-ct-md', 'P001'),
        path.join(data, 'covid-ct-md', 'normal001'),
        png,
        path.join(data, 'covid-ct-md', 'slice_labels.csv'),
      ],
      { cwd: repoRoot, maxBuffer: 64 * 1024 * 1024, env: { ...process.env, MLSAM_LOG__LEVEL: 'warn' } },
    );
    const secs = (Date.now() - t0) / 1000;
    const out = JSON.parse(stdout) as Out;
    console.info(
      `score CLI: ${out.timing.slicesScored} slices in ${secs.toFixed(1)} s wall (${out.timing.slicesPerSecond} slices/s inside)`,
    );

    expect(out.model).toMatchObject({ name: meta.name, version: meta.version });
    expect(out.series).toHaveLength(3);
    expect(out.skipped.map((s) => path.basename(s.file))).toEqual(['slice_labels.csv']);

    const p001 = labels('P001');
    const normal = labels('normal001');
    const uidOf = (sops: string[]) => out.slices.find((s) => s.sopInstanceUid === sops[0])?.seriesInstanceUid;
    const sP = out.series.find((s) => s.seriesInstanceUid === uidOf(p001));
    const sN = out.series.find((s) => s.seriesInstanceUid === uidOf(normal));
    expect(sP?.slices).toBe(p001.length);
    expect(sN?.slices).toBe(normal.length);
    expect(sP!.score).toBeGreaterThan(sN!.score);
    // the Python pipeline's series scores, recorded by the export, are reproduced end to end
    const py = meta.metrics?.covidCtMd?.series;
    if (py?.P001?.score !== undefined && py.normal001?.score !== undefined) {
      expect(Math.abs(sP!.score - py.P001.score)).toBeLessThan(2e-3);
      expect(Math.abs(sN!.score - py.normal001.score)).toBeLessThan(2e-3);
    }

    for (const [s, sops] of [
      [sP!, p001],
      [sN!, normal],
    ] as const) {
      const mine = out.slices.filter((x) => x.seriesInstanceUid === s.seriesInstanceUid);
      // scan order, superior first, is the data set's SliceLocation-descending order
      expect(mine.map((x) => x.sopInstanceUid)).toEqual(sops);
      expect(mine.every((x) => x.probability >= 0 && x.probability <= 1 && x.cnnProbability >= 0 && x.cnnProbability <= 1)).toBe(true);
      // HU series are fused: the printed slice numbers and the series' opacity reproduce the score
      expect(s.fusion).toBe('cnn+opacity');
      const f = fuseSeries(
        mine.map((x) => ({ cnn: x.cnnProbability, lungAreaMm2: x.lungAreaMm2!, opacityMm2: (x.opacityPercent! * x.lungAreaMm2!) / 100 })),
        s.opacity!.total.percentOpacity,
        meta.fusion,
        meta.series.aggregation,
      )!;
      expect(s.score).toBeCloseTo(f.score, 6);
      expect(s.k).toBe(f.k);
      expect(s.eligibleSlices).toBe(f.ranked.length);
      for (const [i, x] of mine.entries()) expect(x.probability).toBeCloseTo(f.slices[i]!.probability, 6);
      expect(s.keySlices).toHaveLength(meta.series.keySlices);
      expect(s.keySlices.map((x) => x.index)).toEqual(f.ranked.slice(0, meta.series.keySlices));
      expect(s.keySlices.every((k) => mine[k.index]!.eligible === true)).toBe(true);
      expect(s.keySlices.map((x) => x.sopInstanceUid)).toEqual(s.keySlices.map((x) => mine[x.index]!.sopInstanceUid));
      expect(['likely', 'indeterminate', 'unlikely']).toContain(s.category);
      // the distribution of the opacity, described after the RSNA consensus beside the score (never a diagnosis)
      expect(s.pattern?.rule).toBe('rsna-distribution-v1');
      expect(s.pattern!.features.percentOpacity).toBeCloseTo(s.opacity!.total.percentOpacity, 2);
    }
    expect(sN!.pattern!.category).toBe('no-opacity');
    expect(['typical', 'indeterminate', 'atypical']).toContain(sP!.pattern!.category);

    const img = out.series.find((s) => s.seriesInstanceUid === null);
    expect(img?.slices).toBe(1);
    expect(img?.keySlices[0]?.file).toBe(png);
    const imgSlice = out.slices.find((s) => s.file === png);
    expect(imgSlice?.sopInstanceUid).toBeNull();
    expect(img?.score).toBeCloseTo(imgSlice!.probability, 9);
    // 8-bit: no HU, the CNN alone, and the output says so
    expect(img?.fusion).toBe('cnn-only');
    expect(img?.opacity).toBeUndefined();
    expect(img?.pattern).toBeUndefined();
    expect(imgSlice!.probability).toBe(imgSlice!.cnnProbability);
    expect(img?.threshold).toBe(meta.series.threshold);
  }, 600_000);

  it('prints a readable report without --json, and exits 2 when nothing can be scored', async () => {
    const { stdout } = await run(process.execPath, [cli, 'score', png], {
      cwd: repoRoot,
      env: { ...process.env, MLSAM_LOG__LEVEL: 'warn' },
    });
    expect(stdout).toMatch(/NOT FOR DIAGNOSTIC USE/);
    // the category with the band it comes from (issue 26)
    expect(stdout).toMatch(/score 0\.\d{4} — (likely|indeterminate|unlikely) \((0\.\d\d or below|0\.\d\d–0\.\d\d|0\.\d\d or above)\)/);
    expect(stdout).toContain('the CNN alone (no Hounsfield units');
    expect(stdout).toContain(path.basename(png));

    const odd = path.join(data, 'dicom-samples', 'orthanc-tests', 'odd');
    const unscorable = [
      '2026-05-06-Deeply-Nested-Sequence.dcm',
      'sample-pdf.dcm',
      '2026-05-26-oob-monochrome-46341.dcm',
      'Issue22-NoPixelData.dcm',
    ].map((f) => path.join(odd, f));
    const r = await run(process.execPath, [cli, 'score', '--json', ...unscorable], {
      cwd: repoRoot,
      env: { ...process.env, MLSAM_LOG__LEVEL: 'warn' },
    }).then(
      () => ({ code: 0, stdout: '' }),
      (e: { code: number; stdout: string }) => ({ code: e.code, stdout: e.stdout }),
    );
    expect(r.code).toBe(2);
    const out = JSON.parse(r.stdout) as Out;
    expect(out.series).toEqual([]);
    expect(out.skipped.length + out.notScored.length).toBeGreaterThan(0);
    expect(out.skipped.find((s) => s.file.endsWith('2026-05-06-Deeply-Nested-Sequence.dcm'))?.reason).toMatch(/nested/);
  }, 120_000);
});
