/**
 * The demo's synthetic chest CT phantom (src/demo/phantom.ts), which the demo sends into Orthanc:
 * the HU values a chest CT should have where they should be, ground glass only in the slices it
 * says, and the files readable by DCMTK with the pixels written (not the generator's defaults).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { groundGlassLesions, phantomSliceHu, writePhantomSeries } from '../../src/demo/phantom.js';
import { run } from '../helpers/dcmtk.js';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const SIZE = 256;
const at = (img: Int16Array, fx: number, fy: number): number => img[Math.round(fy * SIZE) * SIZE + Math.round(fx * SIZE)]!;
const count = (img: Int16Array, lo: number, hi: number): number => img.reduce((n, v) => (v >= lo && v <= hi ? n + 1 : n), 0);

it('has air, soft tissue, lungs near -850 HU, bone, and ground glass of -500 to -300 HU only where it says', () => {
  const lesions = groundGlassLesions(1);
  const mid = phantomSliceHu(SIZE, 0.65, lesions, 1);
  expect(at(mid, 0.02, 0.02)).toBeLessThan(-900); // air
  expect(Math.abs(at(mid, 0.5 - 0.176, 0.47) + 850)).toBeLessThan(120); // right lung, patient's right = image left
  expect(Math.abs(at(mid, 0.5 + 0.176, 0.47) + 850)).toBeLessThan(120); // left lung
  expect(at(mid, 0.5, 0.48 + 0.29 * 0.62)).toBeGreaterThan(200); // vertebral body
  expect(count(mid, 500, 1000)).toBeGreaterThan(50); // ribs and spine
  // Ground glass: pixels between -500 and -300 HU in a slice inside the lesion band …
  const ggInBand = count(mid, -520, -300);
  expect(ggInBand).toBeGreaterThan(50);
  // … and none at the apex, far from every lesion, nor anywhere without lesions.
  const apex = phantomSliceHu(SIZE, 0.02, lesions, 1);
  expect(count(apex, -520, -300)).toBeLessThan(ggInBand / 20);
  const clean = phantomSliceHu(SIZE, 0.65, [], 1);
  expect(count(clean, -520, -300)).toBeLessThan(ggInBand / 20);
});

it('writes CT Part-10 files whose pixel data are the phantom', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mlsam-phantom-'));
  dirs.push(dir);
  const ph = await writePhantomSeries({ dir, slices: 24, size: SIZE });
  expect(ph.instances).toHaveLength(24);
  expect(ph.groundGlassSlices.length).toBeGreaterThan(0);
  expect(ph.groundGlassSlices.length).toBeLessThan(24);
  const dump = await run('dcmdump', ['+P', '0008,0060', '+P', '0028,0010', '+P', '0028,1052', ph.instances[12]!.path]);
  expect(dump.code).toBe(0);
  expect(dump.stdout).toMatch(/\(0008,0060\) CS \[CT\]/);
  expect(dump.stdout).toMatch(new RegExp(`\\(0028,0010\\) US ${SIZE}`));
  // The pixels in the file are the phantom's (stored = HU + 1024), not the header generator's.
  const raw = await run('dcmdump', ['+W', dir, ph.instances[12]!.path]);
  expect(raw.code).toBe(0);
  const { readFile, readdir } = await import('node:fs/promises');
  const rawFile = (await readdir(dir)).find((n) => n.endsWith('.raw'));
  expect(rawFile).toBeDefined();
  const px = await readFile(join(dir, rawFile!));
  const t = 12 / 23;
  const hu = phantomSliceHu(SIZE, t, groundGlassLesions(1), 1);
  for (const i of [0, 1000, (SIZE * SIZE) / 2 + Math.floor(SIZE / 3), SIZE * SIZE - 1]) expect(px.readUInt16LE(i * 2) - 1024).toBe(hu[i]);
});
