/**
 * scoreFiles(), the API the inference worker uses: batches across boundaries, a broken slice is
 * dropped with its reason while the rest of the series is scored, key-slice attention comes with
 * the crop box it covers, and minSlices refuses short series with a reason.
 */
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scoreFiles } from '../../src/scoring/score.js';
import { ModelSession } from '../../src/model/session.js';
import { SHIPPED_MODEL } from '../helpers/model.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const p001 = path.resolve(repoRoot, '..', 'shared', 'data', 'covid-ct-md', 'P001');
const tmp = mkdtempSync(path.join(tmpdir(), 'mlsam-score-'));
let session: ModelSession;

beforeAll(async () => {
  session = await ModelSession.load(SHIPPED_MODEL, { batchSize: 4 });
  const names = readdirSync(p001).sort().slice(0, 10);
  for (const n of names.slice(0, 9)) copyFileSync(path.join(p001, n), path.join(tmp, n));
  // the tenth instance of the series, cut short in its pixel data
  const last = readFileSync(path.join(p001, names[9] as string));
  writeFileSync(path.join(tmp, 'zz-truncated.dcm'), last.subarray(0, last.length - 5000));
  writeFileSync(path.join(tmp, 'notes.txt'), 'not an image');
});
afterAll(async () => {
  await session?.release();
  rmSync(tmp, { recursive: true, force: true });
});

describe('scoreFiles', () => {
  it('scores a series in batches, drops the truncated instance with a reason, keeps key-slice attention', async () => {
    const progress: number[] = [];
    const r = await scoreFiles([tmp], { session, keyAttention: true, onProgress: (p) => progress.push(p.done) });
    expect(r.series).toHaveLength(1);
    const s = r.series[0]!;
    expect(s.slices).toBe(9);
    expect(s.dropped).toHaveLength(1);
    expect(s.dropped[0]!.file).toMatch(/zz-truncated\.dcm$/);
    expect(s.dropped[0]!.reason).toMatch(/undecodable \(pixel-data-too-short\)/);
    expect(r.skipped.map((x) => path.basename(x.file))).toEqual(['notes.txt']);
    expect(progress).toEqual([4, 8, 10]);
    expect(s.keySlices.length).toBe(Math.min(9, session.metadata.series.keySlices));
    for (const k of s.keySlices) {
      expect(k.attention, `attention of key slice ${k.index}`).toBeDefined();
      const a = k.attention!;
      expect(a.data).toHaveLength(a.width * a.height);
      expect([a.imageWidth, a.imageHeight]).toEqual([512, 512]);
      expect(a.cropBox.x1).toBeGreaterThan(a.cropBox.x0);
      expect(a.cropBox.y1).toBeLessThan(512);
    }
    // same slices scored alone give the same probabilities: batching does not change results
    const single = await scoreFiles([path.join(tmp, r.slices[3]!.file.split(path.sep).pop() as string)], { session });
    expect(single.slices[0]!.probability).toBeCloseTo(r.slices[3]!.probability, 5);
  });

  it('refuses series shorter than minSlices, with the reason', async () => {
    const r = await scoreFiles([tmp], { session, minSlices: 20 });
    expect(r.series).toEqual([]);
    expect(r.notScored[0]?.reason).toMatch(/too few axial slices \(10 < 20\)/);
  });
});
