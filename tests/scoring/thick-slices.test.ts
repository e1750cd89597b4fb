/**
 * Thick slices through the whole scoring path: COVID-CT-MD normal001 (2 mm) turned into 6 mm slabs (the mean of
 * three consecutive slices, every third kept), written as a DICOM series twice, once with SliceThickness 6 and
 * once labelled 2 mm. Averaged vessels read as ground glass; with SliceThickness 6 the widened ground-glass
 * opening keeps the normal lungs near their thin-slice opacity and the series "unlikely", and the result says
 * which thickness and opening it used.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeSyntheticSeries } from '../../src/dicom/testing/synthetic-series.js';
import { formatReport } from '../../src/cli/score.js';
import { ModelSession } from '../../src/model/session.js';
import { scoreFiles, type ScoreResult, type ScoredSeries } from '../../src/scoring/score.js';
import { CTMD, slabs } from '../helpers/ctmd.js';
import { SHIPPED_MODEL } from '../helpers/model.js';

const normal = path.join(CTMD, 'normal001');

let session: ModelSession;
let tmp: string;
let thin: ScoredSeries;
let thick: ScoredSeries;
let labelledThin: ScoredSeries;
let thinResult: ScoreResult;
let thickResult: ScoreResult;

/** normal001's 6 mm slabs written as a DICOM series (stored = HU + 1024), positioned at their middle slices. */
async function slabSeries(dir: string, sliceThickness: number): Promise<string> {
  const { slabs: sl, first } = await slabs('normal001');
  const { width, height } = first.image;
  const stored = sl.map(({ hu }) => {
    const buf = Buffer.alloc(width * height * 2);
    for (let k = 0; k < hu.length; k++) buf.writeUInt16LE(Math.max(0, Math.min(4095, Math.round(hu[k]! + 1024))), 2 * k);
    return buf;
  });
  const z = sl.map((x) => x.parts[1].header.imagePositionPatient![2]!);
  await writeSyntheticSeries({
    dir,
    count: sl.length,
    rows: height,
    columns: width,
    pixelSpacing: first.header.pixelSpacing![0],
    zStart: z[0]!,
    sliceSpacing: z[1]! - z[0]!,
    sliceThickness,
    pixels: (i) => stored[i]!,
  });
  return dir;
}

beforeAll(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), 'mlsam-thick-'));
  session = await ModelSession.load(SHIPPED_MODEL, { providers: ['cpu'], batchSize: 16 });
  const score = (dir: string) => scoreFiles([dir], { session, decodeThreads: 2 });
  thinResult = await score(normal);
  thickResult = await score(await slabSeries(path.join(tmp, 'thick6'), 6));
  thin = thinResult.series[0]!;
  thick = thickResult.series[0]!;
  labelledThin = (await score(await slabSeries(path.join(tmp, 'thick6-as-2mm'), 2))).series[0]!;
}, 600_000);
afterAll(async () => {
  await session?.release();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe('thick slices through scoreFiles (normal001 as 6 mm slabs)', () => {
  it('reads SliceThickness and reports the ground-glass opening it used', () => {
    expect(thin.opacity!.sliceThicknessMm).toBe(2);
    expect(thin.opacity!.groundGlassOpenMm).toBe(1.8);
    expect(thick.opacity!.sliceThicknessMm).toBe(6);
    expect(thick.opacity!.sliceSpacingMm).toBeCloseTo(6, 3);
    expect(thick.opacity!.groundGlassOpenMm).toBeCloseTo(3, 6);
    expect(labelledThin.opacity!.groundGlassOpenMm).toBe(1.8);
  });

  it('says so in the plain-text report of mlsam score', () => {
    const thinText = formatReport(thinResult);
    const thickText = formatReport(thickResult);
    expect(thinText).toContain('2 mm slices, ground-glass opening 1.8 mm');
    expect(thinText).not.toContain('thick slices');
    expect(thickText).toContain('6 mm slices, ground-glass opening 3 mm');
    expect(thickText).toContain('thick slices: partial volume makes the opacity less exact');
  });

  it('keeps the normal lungs near their thin-slice opacity and the series unlikely; labelled 2 mm, the same slabs read far more opaque', () => {
    const pThin = thin.opacity!.total.percentOpacity;
    const pThick = thick.opacity!.total.percentOpacity;
    const pAs2 = labelledThin.opacity!.total.percentOpacity;
    expect(pAs2).toBeGreaterThan(2 * pThin);
    expect(pThick).toBeLessThan(0.6 * pAs2);
    expect(pThick).toBeLessThan(2 * pThin);
    console.log(
      `normal001 % opacity: 2 mm ${pThin}, 6 mm slabs ${pThick} (score ${thick.score.toFixed(3)}, ${thick.category}), slabs labelled 2 mm ${pAs2} (score ${labelledThin.score.toFixed(3)}, ${labelledThin.category})`,
    );
    expect(thick.category).toBe('unlikely');
    expect(thick.score).toBeLessThan(labelledThin.score);
    // the volumes do not depend on the opening
    expect(thick.opacity!.total.lungMl).toBeCloseTo(labelledThin.opacity!.total.lungMl, 0);
  });
});
