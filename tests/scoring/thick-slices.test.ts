/**
 * Thick slices through the whole scoring path: COVID-CT-MD normal001 (2 mm) turned into 6 mm slabs (the mean of
 * three consecutive slices, every third kept), written as a DICOM series twice, once with SliceThickness 6 and
 * once labelled 2 mm. Averaged vessels read as ground glass; with SliceThickness 6 the widened ground-glass
 * opening keeps the normal lungs near their thin-slice opacity and the series "unlikely", and the result says
 * which thickness and opening it used.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeDicomFile, readDicomHeaderFile } from '../../src/dicom/decode/index.js';
import { writeSyntheticSeries } from '../../src/dicom/testing/synthetic-series.js';
import { ModelSession } from '../../src/model/session.js';
import { scoreFiles, type ScoredSeries } from '../../src/scoring/score.js';
import { selectSlices } from '../../src/scoring/select-slices.js';
import { SHIPPED_MODEL } from '../helpers/model.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const normal = path.resolve(root, '..', 'shared', 'data', 'covid-ct-md', 'normal001');

let session: ModelSession;
let tmp: string;
let thin: ScoredSeries;
let thick: ScoredSeries;
let labelledThin: ScoredSeries;

async function slabSeries(dir: string, sliceThickness: number): Promise<string> {
  const files = await readdir(normal);
  const cands = await Promise.all(files.map(async (f) => ({ file: path.join(normal, f), header: await readDicomHeaderFile(path.join(normal, f)) })));
  const sel = selectSlices(cands).slices; // superior first
  const decoded = await Promise.all(sel.map(async (s) => (await decodeDicomFile(s.file))));
  const first = decoded[0]!;
  const { width, height } = first.image;
  const slabs: Buffer[] = [];
  const z: number[] = [];
  for (let i = 1; i + 1 < decoded.length; i += 3) {
    const buf = Buffer.alloc(width * height * 2);
    const [a, b, c] = [decoded[i - 1]!.image.data, decoded[i]!.image.data, decoded[i + 1]!.image.data];
    for (let k = 0; k < width * height; k++) {
      const hu = (a[k]! + b[k]! + c[k]!) / 3;
      buf.writeUInt16LE(Math.max(0, Math.min(4095, Math.round(hu + 1024))), 2 * k);
    }
    slabs.push(buf);
    z.push(decoded[i]!.header.imagePositionPatient![2]!);
  }
  await writeSyntheticSeries({
    dir, count: slabs.length, rows: height, columns: width, pixelSpacing: first.header.pixelSpacing![0],
    zStart: z[0]!, sliceSpacing: z[1]! - z[0]!, sliceThickness, pixels: (i) => slabs[i]!,
  });
  return dir;
}

beforeAll(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), 'mlsam-thick-'));
  session = await ModelSession.load(SHIPPED_MODEL, { providers: ['cpu'], batchSize: 16 });
  const score = async (dir: string) => (await scoreFiles([dir], { session, decodeThreads: 2 })).series[0]!;
  thin = await score(normal);
  thick = await score(await slabSeries(path.join(tmp, 'thick6'), 6));
  labelledThin = await score(await slabSeries(path.join(tmp, 'thick6-as-2mm'), 2));
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

  it('keeps the normal lungs near their thin-slice opacity and the series unlikely; labelled 2 mm, the same slabs read far more opaque', () => {
    const pThin = thin.opacity!.total.percentOpacity;
    const pThick = thick.opacity!.total.percentOpacity;
    const pAs2 = labelledThin.opacity!.total.percentOpacity;
    expect(pAs2).toBeGreaterThan(2 * pThin);
    expect(pThick).toBeLessThan(0.6 * pAs2);
    expect(pThick).toBeLessThan(2 * pThin);
    console.log(`normal001 % opacity: 2 mm ${pThin}, 6 mm slabs ${pThick} (score ${thick.score.toFixed(3)}, ${thick.category}), slabs labelled 2 mm ${pAs2} (score ${labelledThin.score.toFixed(3)}, ${labelledThin.category})`);
    expect(thick.category).toBe('unlikely');
    expect(thick.score).toBeLessThan(labelledThin.score);
    // the volumes do not depend on the opening
    expect(thick.opacity!.total.lungMl).toBeCloseTo(labelledThin.opacity!.total.lungMl, 0);
  });
});
