/**
 * The demo's synthetic chest CT phantom (src/demo/phantom.ts), which the demo sends into Orthanc:
 * the HU values a chest CT has where it should have them (air, fat rim, soft tissue, lungs,
 * bone, liver below the diaphragm, no lung above the apex), vessels small enough for a small
 * morphological opening to remove while the lesions stay, lesions of -550 to -200 HU only on the
 * slices it says, and the files readable by DCMTK with the pixels written.
 */
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  anatomyAt,
  lesionCentreMm,
  lesionRanking,
  PHANTOM_FOV_MM,
  phantomLesions,
  phantomSliceHu,
  phantomSliceSets,
  writePhantomSeries,
} from '../../src/demo/phantom.js';
import { run } from '../helpers/dcmtk.js';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const SIZE = 256;
const PX = PHANTOM_FOV_MM / SIZE;
const LENGTH = 300;
const lesions = phantomLesions(1);
const slice = (t: number, withLesions = true): Int16Array => phantomSliceHu(SIZE, t, withLesions ? lesions : [], 1, LENGTH);
/** HU at a point given in mm (x to the patient's left, y posterior, 0 at the image centre). */
const at = (img: Int16Array, xm: number, ym: number): number =>
  img[Math.floor((ym + PHANTOM_FOV_MM / 2) / PX) * SIZE + Math.floor((xm + PHANTOM_FOV_MM / 2) / PX)]!;
const count = (img: Int16Array, lo: number, hi: number): number => img.reduce((n, v) => (v >= lo && v <= hi ? n + 1 : n), 0);

/** Binary opening with a k×k square: erosion then dilation (min / max filters). */
function opening(mask: Uint8Array, k: number): Uint8Array {
  const filter = (src: Uint8Array, keep: (a: number, b: number) => number): Uint8Array => {
    const r = Math.floor(k / 2);
    const tmp = new Uint8Array(src.length);
    const out = new Uint8Array(src.length);
    for (let y = 0; y < SIZE; y++) {
      for (let x = 0; x < SIZE; x++) {
        let v = src[y * SIZE + x]!;
        for (let d = -r; d <= r; d++) v = keep(v, src[y * SIZE + Math.min(SIZE - 1, Math.max(0, x + d))]!);
        tmp[y * SIZE + x] = v;
      }
    }
    for (let y = 0; y < SIZE; y++) {
      for (let x = 0; x < SIZE; x++) {
        let v = tmp[y * SIZE + x]!;
        for (let d = -r; d <= r; d++) v = keep(v, tmp[Math.min(SIZE - 1, Math.max(0, y + d)) * SIZE + x]!);
        out[y * SIZE + x] = v;
      }
    }
    return out;
  };
  return filter(filter(mask, Math.min), Math.max);
}

describe('phantom anatomy', () => {
  it('has air, a fat rim, soft tissue, lungs near -850 HU, bone, and a table', () => {
    const mid = slice(0.3);
    expect(at(mid, -170, -170)).toBeLessThan(-900); // air
    expect(Math.abs(at(mid, -72, 4) + 850)).toBeLessThan(60); // right lung (image left)
    expect(Math.abs(at(mid, 72, -30) + 850)).toBeLessThan(60); // left lung
    const a = anatomyAt(0.3);
    expect(Math.abs(at(mid, 0, 5 - a.bodyB + 7) + 100)).toBeLessThan(50); // subcutaneous fat, anterior
    expect(at(mid, 0, 5 + 0.52 * a.bodyB)).toBeGreaterThan(150); // vertebral body
    expect(count(mid, 500, 1000)).toBeGreaterThan(100); // ribs, spine, sternum
    expect(Math.abs(at(mid, 0, 5 + 112 + 5) - 150)).toBeLessThan(60); // table under the back
  });

  it('starts above the lung apices and ends below the diaphragm in liver, stomach and spleen', () => {
    const neck = slice(0.03);
    const lungPixels = (img: Int16Array): number => count(img, -920, -780);
    expect(lungPixels(neck)).toBeLessThan(200); // the trachea only
    expect(lungPixels(slice(0.3))).toBeGreaterThan(5000);
    const abdomen = slice(0.97);
    expect(lungPixels(abdomen)).toBeLessThan(50);
    expect(Math.abs(at(abdomen, -50, 12) - 60)).toBeLessThan(50); // liver
    // The liver dome rises into the right lung base while the left lung goes on.
    const base = slice(0.84);
    expect(Math.abs(at(base, -60, 10) - 60)).toBeLessThan(50);
    expect(Math.abs(at(base, 80, 0) + 850)).toBeLessThan(60);
  });

  it('has small vessels that a 5 mm opening removes, while the lesions (15-40 mm) stay', () => {
    const clean = slice(0.3, false);
    const dense = (img: Int16Array): Uint8Array => Uint8Array.from(img, (v) => (v > -600 ? 1 : 0));
    const lungOnly = (img: Int16Array, m: Uint8Array): Uint8Array => {
      // Pixels inside both lung ellipses (mm geometry), where vessels and lesions are.
      const a = anatomyAt(0.3);
      return m.map((v, i) => {
        const xm = ((i % SIZE) + 0.5) * PX - PHANTOM_FOV_MM / 2;
        const ym = (Math.floor(i / SIZE) + 0.5) * PX - PHANTOM_FOV_MM / 2;
        const inLung = [-1, 1].some((s) => ((xm - s * 72) / (a.lungA[0] - 4)) ** 2 + ((ym - 4) / (a.lungB[0] - 4)) ** 2 <= 1);
        return v && inLung && img[i]! < 200 ? 1 : 0;
      });
    };
    const vessels = lungOnly(clean, dense(clean));
    const nVessels = vessels.reduce((s, v) => s + v, 0);
    expect(nVessels).toBeGreaterThan(10);
    const k = Math.max(3, Math.round(5 / PX) | 1);
    expect(opening(vessels, k).reduce((s, v) => s + v, 0)).toBe(0);
    const l = lesions.find((x) => x.diameterMm >= 25)!;
    const withLesion = slice(l.t);
    const [lx, ly] = lesionCentreMm(l);
    expect(at(withLesion, lx, ly)).toBeGreaterThan(-600);
    expect(at(withLesion, lx, ly)).toBeLessThan(-150);
    const opened = opening(
      Uint8Array.from(withLesion, (v) => (v > -700 && v < -100 ? 1 : 0)),
      k,
    );
    const c = Math.floor((ly + PHANTOM_FOV_MM / 2) / PX) * SIZE + Math.floor((lx + PHANTOM_FOV_MM / 2) / PX);
    expect(opened[c]).toBe(1);
  });

  it('puts lesions of -550 to -200 HU, 15-40 mm, peripheral, on only some lung slices', () => {
    for (const l of lesions) {
      expect(l.diameterMm).toBeGreaterThanOrEqual(15);
      expect(l.diameterMm).toBeLessThanOrEqual(40);
      expect(l.hu).toBeGreaterThanOrEqual(-550);
      expect(l.hu).toBeLessThanOrEqual(-200);
      expect(l.radial).toBeGreaterThanOrEqual(0.6);
    }
    expect(lesions.some((l) => l.kind === 'consolidation')).toBe(true);
    const { lesionSlices, lungSlices } = phantomSliceSets(120, 2.5, lesions);
    expect(lesionSlices.every((i) => lungSlices.includes(i))).toBe(true);
    const free = lungSlices.filter((i) => !lesionSlices.includes(i));
    expect(lesionSlices.length).toBeGreaterThan(10);
    expect(free.length).toBeGreaterThan(lesionSlices.length / 2);
    // Lesion HU (-600 to -150) in a lesion slice, next to nothing in a lesion-free lung slice at the same level.
    const t = lesions[2]!.t;
    const inBand = count(slice(t), -600, -150);
    const cleanBand = count(slice(t, false), -600, -150);
    expect(inBand - cleanBand).toBeGreaterThan(50);
    const tFree = free[Math.floor(free.length / 4)]! / 119;
    expect(count(slice(tFree), -600, -150)).toBe(count(slice(tFree, false), -600, -150));
  });

  it('lesionRanking: rank AUC and means of lesion vs lesion-free lung slices', () => {
    const sets = { lesionSlices: [2, 3], lungSlices: [1, 2, 3, 4] };
    expect(lesionRanking([0, 0.2, 0.9, 0.8, 0.1], sets)).toMatchObject({ auc: 1, lesion: 2, lesionFree: 2 });
    expect(lesionRanking([0, 0.9, 0.1, 0.2, 0.8], sets).auc).toBe(0);
    expect(lesionRanking([0, 0.5, 0.5, 0.5, 0.5], sets).auc).toBe(0.5);
  });
});

it('writes CT Part-10 files whose pixel data are the phantom, spread over a 300 mm scan', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mlsam-phantom-'));
  dirs.push(dir);
  const ph = await writePhantomSeries({ dir, slices: 24, size: SIZE });
  expect(ph.instances).toHaveLength(24);
  expect(ph.instances[23]!.z - ph.instances[0]!.z).toBeCloseTo(-300, 0);
  expect(ph.lungSlices.length).toBeLessThan(24);
  expect(ph.lesionSlices.length).toBeGreaterThan(0);
  expect(ph.lesionSlices.length).toBeLessThan(ph.lungSlices.length);
  const dump = await run('dcmdump', ['+P', '0008,0060', '+P', '0028,0010', '+P', '0028,1052', ph.instances[12]!.path]);
  expect(dump.code).toBe(0);
  expect(dump.stdout).toMatch(/\(0008,0060\) CS \[CT\]/);
  expect(dump.stdout).toMatch(new RegExp(`\\(0028,0010\\) US ${SIZE}`));
  // The pixels in the file are the phantom's (stored = HU + 1024), not the header generator's.
  const raw = await run('dcmdump', ['+W', dir, ph.instances[12]!.path]);
  expect(raw.code).toBe(0);
  const rawFile = (await readdir(dir)).find((n) => n.endsWith('.raw'));
  expect(rawFile).toBeDefined();
  const px = await readFile(join(dir, rawFile!));
  const hu = phantomSliceHu(SIZE, 12 / 23, lesions, 1, 23 * 13.04);
  for (const i of [0, 1000, (SIZE * SIZE) / 2 + Math.floor(SIZE / 3), SIZE * SIZE - 1]) expect(px.readUInt16LE(i * 2) - 1024).toBe(hu[i]);
});
