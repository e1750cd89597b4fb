/**
 * Lung segmentation and opacity quantification (src/model/lung.ts, opacity.ts, morphology.ts):
 * a phantom with known lungs and lesions; TypeScript = Python (training/lung.py) on real slices; plausible
 * lung volumes on the shared COVID-CT-MD series; no lung above the apex or below the diaphragm; thick slices
 * (simulated 6 mm slabs) measured with their SliceThickness.
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { decodeDicomFile } from '../../src/dicom/decode/index.js';
import { loadModelMetadata, type ModelMetadata } from '../../src/model/metadata.js';
import { dilate, diskHalfWidths, erode, label, RADIUS_SLACK, type Mask } from '../../src/model/morphology.js';
import { analyseSlice, groundGlassOpenMm } from '../../src/model/opacity.js';
import { cropFor, toUnit } from '../../src/model/preprocess.js';
import { seriesFiles, slabs } from '../helpers/ctmd.js';
import { SHIPPED_METADATA } from '../helpers/model.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const MODEL = SHIPPED_METADATA;

let meta: ModelMetadata;
beforeAll(async () => {
  meta = (await loadModelMetadata(MODEL)).metadata;
});
const lungs = () => meta.preprocessing.lungs!;
const quant = () => meta.quantification!;

function dice(a: Uint8Array, b: Uint8Array): number {
  let inter = 0;
  let sa = 0;
  let sb = 0;
  for (let i = 0; i < a.length; i++) {
    inter += a[i]! & b[i]!;
    sa += a[i]!;
    sb += b[i]!;
  }
  return sa + sb === 0 ? 1 : (2 * inter) / (sa + sb);
}

function unpack(b64: string, n: number): Uint8Array {
  const bytes = Buffer.from(b64, 'base64');
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (bytes[i >> 3]! >> (7 - (i & 7))) & 1;
  return out;
}

/**
 * A 512×512 chest phantom at 0.7 mm/px: air, a soft-tissue body with fat rim, two lung ellipses of −850 HU with
 * vessels, trachea, spine, a table; optional lesions. Returns HU and the true lung mask (lungs incl. vessels
 * and lesions), at full resolution.
 */
function phantom(opts: { lesions?: { x: number; y: number; r: number; hu: number }[]; lungs?: boolean } = {}) {
  const W = 512;
  const H = 512;
  const hu = new Float32Array(W * H).fill(-1000);
  const truth = new Uint8Array(W * H);
  const inEllipse = (x: number, y: number, cx: number, cy: number, rx: number, ry: number) =>
    ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1;
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const i = y * W + x;
      if (y >= 430 && y < 440 && x > 60 && x < 452) hu[i] = 200; // table
      if (inEllipse(x, y, 256, 250, 200, 150)) hu[i] = -100; // fat rim
      if (inEllipse(x, y, 256, 250, 190, 140)) hu[i] = 40; // soft tissue
      if (inEllipse(x, y, 256, 360, 22, 22)) hu[i] = 700; // spine
      if (opts.lungs !== false) {
        for (const cx of [170, 342]) {
          if (inEllipse(x, y, cx, 240, 68, 100)) {
            hu[i] = -850;
            truth[i] = 1;
          }
        }
      }
      if (inEllipse(x, y, 256, 170, 11, 11)) hu[i] = -1000; // trachea (not lung)
    }
  }
  if (opts.lungs !== false) {
    // vessels: small dots of +40 HU inside the lungs
    for (let k = 0; k < 40; k++) {
      const cx = k % 2 ? 170 + ((k * 37) % 90) - 45 : 342 + ((k * 53) % 90) - 45;
      const cy = 240 + ((k * 71) % 150) - 75;
      for (let y = cy - 3; y <= cy + 3; y++)
        for (let x = cx - 3; x <= cx + 3; x++) if ((x - cx) ** 2 + (y - cy) ** 2 <= 4 && truth[y * W + x]) hu[y * W + x] = 40;
    }
  }
  for (const l of opts.lesions ?? []) {
    for (let y = l.y - l.r; y <= l.y + l.r; y++)
      for (let x = l.x - l.r; x <= l.x + l.r; x++) if ((x - l.x) ** 2 + (y - l.y) ** 2 <= l.r * l.r) hu[y * W + x] = l.hu;
  }
  return { hu, truth, W, H, spacing: [0.7, 0.7] as [number, number] };
}

/** Nearest-neighbour view of a working-grid mask at full resolution. */
function upsample(m: Mask, W: number, H: number): Uint8Array {
  const out = new Uint8Array(W * H);
  for (let y = 0; y < H; y++)
    for (let x = 0; x < W; x++) out[y * W + x] = m.data[Math.floor((y * m.height) / H) * m.width + Math.floor((x * m.width) / W)]!;
  return out;
}

describe('morphology', () => {
  it('dilation and erosion equal the shift-OR / shift-AND definition over the disk', () => {
    const w = 37;
    const h = 29;
    let seed = 7;
    const rnd = () => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed / 2147483648;
    };
    const m: Mask = { width: w, height: h, data: Uint8Array.from({ length: w * h }, () => (rnd() < 0.35 ? 1 : 0)) };
    for (const r of [1, 1.44, 2.4, 3.2, 0.998]) {
      const hws = diskHalfWidths(r);
      const R = (hws.length - 1) >> 1;
      const offs: [number, number][] = [];
      const rs = r * RADIUS_SLACK;
      for (let dy = -R; dy <= R; dy++) for (let dx = -R; dx <= R; dx++) if (dx * dx + dy * dy <= rs * rs + 1e-9) offs.push([dy, dx]);
      const get = (x: number, y: number) => (x < 0 || y < 0 || x >= w || y >= h ? 0 : m.data[y * w + x]!);
      const d = dilate(m, r);
      const e = erode(m, r);
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          expect(d.data[y * w + x]).toBe(offs.some(([dy, dx]) => get(x + dx, y + dy)) ? 1 : 0);
          expect(e.data[y * w + x]).toBe(offs.every(([dy, dx]) => get(x + dx, y + dy)) ? 1 : 0);
        }
      }
    }
  });

  it('gives a radius a hair off a whole number of pixels (field-of-view rounding of the grid) the whole-number disc', () => {
    // 1.25 mm on the grids of COVID-CT-MD P001 (383 mm: 1.2516 mm/px) and cap001 (302 mm: 1.2479 mm/px)
    for (const mm of [1.25, 2.5]) {
      const exact = Array.from(diskHalfWidths(mm / 1.25));
      expect(Array.from(diskHalfWidths(mm / 1.2516))).toEqual(exact);
      expect(Array.from(diskHalfWidths(mm / 1.2479))).toEqual(exact);
    }
    expect(Array.from(diskHalfWidths(1.25 / 1.2516))).toEqual([0, 1, 0]);
  });

  it('labels components in raster order of their first pixel, 4- and 8-connected', () => {
    // 0 1 0 0      8-connected: {(1,0),(0,1)} and the L-shape on the right
    // 1 0 0 1      4-connected: the two diagonal pixels are apart
    // 0 0 1 1
    const m: Mask = { width: 4, height: 3, data: Uint8Array.from([0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 1]) };
    const c8 = label(m, 8);
    const c4 = label(m, 4);
    expect(c8.n).toBe(2);
    expect(Array.from(c8.sizes)).toEqual([0, 2, 3]);
    expect(c4.n).toBe(3);
    expect(Array.from(c4.labels)).toEqual([0, 1, 0, 0, 2, 0, 0, 3, 0, 0, 3, 3]);
  });
});

describe('lung segmentation on a phantom', () => {
  it('finds the known lungs (Dice ≥ 0.95), leaves the trachea out, splits left from right', () => {
    const p = phantom();
    const a = analyseSlice(p.hu, p.W, p.H, p.spacing, lungs(), quant());
    const got = upsample(a.segmentation.lung, p.W, p.H);
    expect(dice(got, p.truth)).toBeGreaterThanOrEqual(0.95);
    // trachea centre is not lung
    expect(got[170 * p.W + 256]).toBe(0);
    // sides: each lung ellipse is one side
    const area = 68 * 100 * Math.PI * 0.49; // mm² of one ellipse
    expect(a.imageLeft.lungMm2).toBeGreaterThan(0.9 * area);
    expect(a.imageLeft.lungMm2).toBeLessThan(1.1 * area);
    expect(a.imageRight.lungMm2).toBeGreaterThan(0.9 * area);
    expect(a.imageRight.lungMm2).toBeLessThan(1.1 * area);
    // vessels are no opacity
    expect(a.total.opacityMm2).toBeLessThan(20);
  });

  it('measures a ground-glass and a consolidation lesion, each in its lung', () => {
    const ggo = { x: 150, y: 220, r: 20, hu: -550 };
    const cons = { x: 350, y: 270, r: 14, hu: 10 };
    const p = phantom({ lesions: [ggo, cons] });
    const a = analyseSlice(p.hu, p.W, p.H, p.spacing, lungs(), quant());
    const mm2 = (r: number) => Math.PI * r * r * 0.49;
    // the lesions stay lung (consolidation is a hole the bounded filling closes)
    expect(dice(upsample(a.segmentation.lung, p.W, p.H), p.truth)).toBeGreaterThanOrEqual(0.95);
    expect(a.imageLeft.opacityMm2).toBeGreaterThan(0.8 * mm2(ggo.r));
    expect(a.imageLeft.opacityMm2).toBeLessThan(1.15 * mm2(ggo.r));
    expect(a.imageLeft.highMm2).toBeLessThan(5);
    expect(a.imageRight.highMm2).toBeGreaterThan(0.7 * mm2(cons.r));
    expect(a.imageRight.opacityMm2).toBeLessThan(1.3 * mm2(cons.r));
  });

  it('finds no lung in a slice without lungs (abdomen-like) or in air', () => {
    const p = phantom({ lungs: false });
    expect(analyseSlice(p.hu, p.W, p.H, p.spacing, lungs(), quant()).total.lungMm2).toBe(0);
    const air = new Float32Array(p.W * p.H).fill(-1000);
    expect(analyseSlice(air, p.W, p.H, p.spacing, lungs(), quant()).total.lungMm2).toBe(0);
  });
});

async function analyseFile(file: string) {
  const d = await decodeDicomFile(file);
  return { d, a: analyseSlice(d.image.data, d.image.width, d.image.height, d.header.pixelSpacing!, lungs(), quant()) };
}

describe('TypeScript = Python (training/lung.py) on real slices', () => {
  it('gives the same lung, opacity and high-opacity masks and the same lung crop', async () => {
    const picks: string[] = [];
    for (const [s, idx] of [
      ['P001', [20, 60, 100, 125]],
      ['cap001', [40, 100, 140]],
      ['normal001', [30, 90, 130]],
    ] as const) {
      const files = await seriesFiles(s);
      for (const i of idx) picks.push(files[i]!);
    }
    const py = JSON.parse(
      execFileSync('/usr/bin/python3', [path.join(root, 'training', 'lung_dump.py'), ...picks], { maxBuffer: 64 << 20 }).toString(),
    ) as {
      width: number;
      height: number;
      masks: Record<'lung' | 'opacity' | 'high', string>;
      cropBox: [number, number, number, number];
      cropUsed: string;
    }[];
    expect(py).toHaveLength(picks.length);
    let totalOpacity = 0;
    for (const [i, file] of picks.entries()) {
      const { d, a } = await analyseFile(file);
      const ref = py[i]!;
      expect([a.grid.width, a.grid.height]).toEqual([ref.width, ref.height]);
      const n = ref.width * ref.height;
      expect(dice(a.segmentation.lung.data, unpack(ref.masks.lung, n))).toBeGreaterThanOrEqual(0.99);
      expect(dice(a.masks.opacity.data, unpack(ref.masks.opacity, n))).toBeGreaterThanOrEqual(0.99);
      expect(dice(a.masks.high.data, unpack(ref.masks.high, n))).toBeGreaterThanOrEqual(0.99);
      totalOpacity += a.total.opacityMm2;
      const img = { ...d.image, pixelSpacing: d.header.pixelSpacing };
      const crop = cropFor(img, toUnit(img, meta.preprocessing), meta.preprocessing, a.segmentation);
      expect(crop.used).toBe(ref.cropUsed);
      expect([crop.box.y0, crop.box.y1, crop.box.x0, crop.box.x1]).toEqual(ref.cropBox);
    }
    expect(totalOpacity).toBeGreaterThan(0); // the comparison covered slices with opacity
  }, 120_000);
});

describe('lung volumes on the shared series', () => {
  it('are plausible, and apex-above / below-diaphragm slices get (almost) no lung', async () => {
    for (const s of ['P001', 'normal001']) {
      const files = await seriesFiles(s);
      const areas: number[] = [];
      const positions: number[] = [];
      for (const f of files) {
        const { d, a } = await analyseFile(f);
        areas.push(a.total.lungMm2);
        positions.push(d.header.imagePositionPatient![2]!);
      }
      const spacing = Math.abs(positions[1]! - positions[0]!);
      const ml = (areas.reduce((x, y) => x + y, 0) * spacing) / 1000;
      // adult lungs at inspiration: 2.5-8 L (these scans cut off part of the bases)
      expect(ml).toBeGreaterThan(2500);
      expect(ml).toBeLessThan(8000);
      const max = Math.max(...areas);
      // the first slices are above the apex (neck): no lung
      expect(areas.slice(0, 5).every((x) => x < 0.01 * max)).toBe(true);
      if (s === 'normal001') {
        // its last slices are below the diaphragm (liver, stomach, bowel): almost no lung
        expect(areas.slice(-8).every((x) => x < 0.05 * max)).toBe(true);
      }
    }
  }, 120_000);
});

describe('thick slices (partial volume of vessels)', () => {
  it('SliceThickness reaches the measurement, and the ground-glass opening widens above the reference', async () => {
    const q = quant();
    expect(q.thickSlice).toBeDefined();
    expect((await decodeDicomFile((await seriesFiles('normal001'))[0]!)).image.sliceThicknessMm).toBe(2);
    expect(groundGlassOpenMm(q, 2)).toBe(q.groundGlassOpenMm);
    expect(groundGlassOpenMm(q, null)).toBe(q.groundGlassOpenMm);
    expect(groundGlassOpenMm(q, 6)).toBeGreaterThan(q.groundGlassOpenMm);
    expect(groundGlassOpenMm(q, 50)).toBe(q.thickSlice!.maxGroundGlassOpenMm);
  }, 120_000);

  it('keeps a normal series near its thin-slice opacity on simulated 6 mm slabs, and keeps the lesions of a COVID-19 series', async () => {
    for (const [name, lo, hi] of [
      ['normal001', 0, 1.6],
      ['P001', 0.6, 1.4],
    ] as const) {
      const { slabs: sl, first } = await slabs(name);
      const { width: w, height: h, pixelSpacing } = first.image;
      const opacityMm2 = (hu: Float32Array, thicknessMm: number | null | undefined) =>
        analyseSlice(hu, w, h, pixelSpacing!, lungs(), quant(), thicknessMm).total.opacityMm2;
      let thin = 0;
      let asThin = 0;
      let asThick = 0;
      for (const x of sl) {
        for (const p of x.parts) thin += opacityMm2(p.image.data, p.image.sliceThicknessMm) / 3;
        asThin += opacityMm2(x.hu, 2);
        asThick += opacityMm2(x.hu, 6);
      }
      // measured as if 2 mm, the slabs' averaged vessels read as ground glass: far more opacity than the thin slices
      expect(asThin / thin).toBeGreaterThan(1.6);
      // with SliceThickness 6 the widened opening brings it back near the thin-slice value
      expect(asThick / thin).toBeGreaterThanOrEqual(lo);
      expect(asThick / thin).toBeLessThanOrEqual(hi);
    }
  }, 240_000);

  it('TypeScript = Python with SliceThickness 6 mm', async () => {
    const files = await seriesFiles('P001');
    const picks = [files[60]!, files[100]!];
    const py = JSON.parse(
      execFileSync('/usr/bin/python3', [path.join(root, 'training', 'lung_dump.py'), '--thickness', '6', ...picks], {
        maxBuffer: 64 << 20,
      }).toString(),
    ) as {
      width: number;
      height: number;
      masks: Record<'lung' | 'opacity' | 'high', string>;
    }[];
    let total = 0;
    for (const [i, file] of picks.entries()) {
      const d = await decodeDicomFile(file);
      const a = analyseSlice(d.image.data, d.image.width, d.image.height, d.header.pixelSpacing!, lungs(), quant(), 6);
      const ref = py[i]!;
      const n = ref.width * ref.height;
      expect(dice(a.masks.opacity.data, unpack(ref.masks.opacity, n))).toBeGreaterThanOrEqual(0.99);
      total += a.total.opacityMm2;
    }
    expect(total).toBeGreaterThan(0);
  }, 120_000);
});
