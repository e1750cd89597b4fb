/** COVID-CT-MD series from ../shared/data for tests: the selected slices in order, and simulated thick slabs. */
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeDicomFile, readDicomHeaderFile, type DecodedDicom } from '../../src/dicom/decode/index.js';
import { selectSlices } from '../../src/scoring/select-slices.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CTMD = path.resolve(repoRoot, '..', 'shared', 'data', 'covid-ct-md');

/** The selected slices of a COVID-CT-MD series, superior first. */
export async function seriesFiles(name: string): Promise<string[]> {
  const dir = path.join(CTMD, name);
  const cands = await Promise.all(
    readdirSync(dir).map(async (f) => ({ file: path.join(dir, f), header: await readDicomHeaderFile(path.join(dir, f)) })),
  );
  return selectSlices(cands).slices.map((s) => s.file);
}

export interface Slab {
  /** HU: the mean of three consecutive slices. */
  hu: Float32Array;
  /** The three slices it averages, superior first. */
  parts: [DecodedDicom, DecodedDicom, DecodedDicom];
}

/** 6 mm slabs of a 2 mm series: the mean of slices i − 1, i, i + 1 for every third i (i = 1, 4, 7, …). */
export async function slabs(name: string): Promise<{ slabs: Slab[]; first: DecodedDicom }> {
  const decoded = await Promise.all((await seriesFiles(name)).map((f) => decodeDicomFile(f)));
  const out: Slab[] = [];
  for (let i = 1; i + 1 < decoded.length; i += 3) {
    const parts = [decoded[i - 1]!, decoded[i]!, decoded[i + 1]!] as Slab['parts'];
    const [a, b, c] = parts.map((p) => p.image.data);
    const hu = new Float32Array(a!.length);
    for (let k = 0; k < hu.length; k++) hu[k] = (a![k]! + b![k]! + c![k]!) / 3;
    out.push({ hu, parts });
  }
  return { slabs: out, first: decoded[0]! };
}
