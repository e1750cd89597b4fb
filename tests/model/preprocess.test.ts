import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, afterAll } from 'vitest';
import dcmjs from 'dcmjs';
import {
  cropBox,
  cropFor,
  preprocessingSchema,
  preprocessSlice,
  sliceSize,
  toUnit,
  triangleWeights,
  type Preprocessing,
  type SliceImage,
} from '../../src/model/preprocess.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const dataRoot = path.resolve(repoRoot, '..', 'shared', 'data');
const fixDir = path.join(repoRoot, 'tests', 'fixtures', 'model');

interface PreprocFixture {
  source: string;
  sopInstanceUid: string;
  kind: 'hu';
  file: string;
  shape: [number, number];
  cropBox: { y0: number; y1: number; x0: number; x1: number };
  cropUsed: string;
  preprocessing: unknown;
}

function findFixture(): PreprocFixture {
  const files = execFileSync('ls', [fixDir]).toString().split('\n');
  const name = files.find((f) => f.startsWith('preproc-') && f.endsWith('.json'));
  if (!name) throw new Error('no preproc fixture: run /usr/bin/python3 training/make_fixtures.py');
  return JSON.parse(readFileSync(path.join(fixDir, name), 'utf8')) as PreprocFixture;
}

const tmp = mkdtempSync(path.join(tmpdir(), 'mlsam-preproc-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Decode a JPEG Lossless CT slice with DCMTK dcmdjpeg, then read raw pixels with dcmjs; returns HU. */
function readHuSlice(file: string): { img: SliceImage; sop: string } {
  const out = path.join(tmp, `${path.basename(file)}.raw.dcm`);
  execFileSync('dcmdjpeg', [file, out]);
  const buf = readFileSync(out);
  const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
  const dict = dcmjs.data.DicomMessage.readFile(ab);
  const ds = dcmjs.data.DicomMetaDictionary.naturalizeDataset(dict.dict) as Record<string, unknown>;
  const rows = ds.Rows as number;
  const cols = ds.Columns as number;
  const slope = Number(ds.RescaleSlope ?? 1);
  const intercept = Number(ds.RescaleIntercept ?? 0);
  const pix = (ds.PixelData as ArrayBuffer[])[0] as ArrayBuffer;
  const stored = ds.PixelRepresentation === 1 ? new Int16Array(pix) : new Uint16Array(pix);
  const data = new Float32Array(rows * cols);
  for (let i = 0; i < data.length; i++) data[i] = (stored[i] as number) * slope + intercept;
  const ps = (ds.PixelSpacing as number[] | undefined)?.map(Number);
  const pixelSpacing = ps && ps.length === 2 ? ([ps[0], ps[1]] as [number, number]) : null;
  return { img: { width: cols, height: rows, data, kind: 'hu', pixelSpacing }, sop: ds.SOPInstanceUID as string };
}

describe('preprocessSlice', () => {
  const fx = findFixture();
  const spec: Preprocessing = preprocessingSchema.parse(fx.preprocessing);

  it('matches the Python preprocessing of a real COVID-CT-MD DICOM slice within 1e-3', () => {
    const { img, sop } = readHuSlice(path.join(dataRoot, fx.source));
    expect(sop).toBe(fx.sopInstanceUid);
    const crop = cropFor(img, toUnit(img, spec), spec);
    expect(crop.box).toEqual(fx.cropBox);
    expect(crop.used).toBe(fx.cropUsed);

    const golden = new Float32Array(readFileSync(path.join(fixDir, fx.file)).buffer.slice(0));
    const plane = fx.shape[0] * fx.shape[1];
    expect(golden.length).toBe(plane);

    const offset = 5;
    const out = new Float32Array(offset + sliceSize(spec) + 3).fill(42);
    preprocessSlice(img, spec, out, offset);
    expect(out[offset - 1]).toBe(42);
    expect(out[offset + sliceSize(spec)]).toBe(42);
    let maxAbs = 0;
    for (let c = 0; c < spec.channels; c++) {
      for (let p = 0; p < plane; p++) {
        const d = Math.abs((out[offset + c * plane + p] as number) - (golden[p] as number));
        if (d > maxAbs) maxAbs = d;
      }
    }
    expect(maxAbs).toBeLessThan(1e-3);
  });

  it('the fixture was made with the shipped model metadata preprocessing block', () => {
    const metas = readdirSync(path.join(repoRoot, 'models')).filter((f) => f.endsWith('.json'));
    expect(metas).toHaveLength(1);
    const m = JSON.parse(readFileSync(path.join(repoRoot, 'models', metas[0] as string), 'utf8')) as { preprocessing: unknown };
    expect(preprocessingSchema.parse(m.preprocessing)).toEqual(spec);
    expect(spec.crop.method).toBe('lung-bbox');
  });

  it('lung crop: an HU phantom is cropped to its lungs + margin; a display image of it too; one lung in a display image falls back to the body box', () => {
    const w = 256;
    const h = 256;
    const hu = new Float32Array(w * h).fill(-1000);
    const inE = (x: number, y: number, cx: number, cy: number, rx: number, ry: number) => ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        if (inE(x, y, 128, 128, 110, 80)) hu[y * w + x] = 40;
        if (inE(x, y, 85, 125, 33, 50) || inE(x, y, 171, 125, 33, 50)) hu[y * w + x] = -850;
      }
    }
    const img: SliceImage = { width: w, height: h, data: hu, kind: 'hu', pixelSpacing: [1.4, 1.4] };
    const crop = cropFor(img, toUnit(img, spec), spec);
    expect(crop.used).toBe('lung');
    // lungs span x 52..204, y 75..175; margin = floor(lungMarginFraction * 153)
    const m = Math.floor((spec.crop.lungMarginFraction as number) * 153);
    for (const [got, want] of [
      [crop.box.x0, 52 - m],
      [crop.box.x1, 204 + m],
      [crop.box.y0, 75 - m],
      [crop.box.y1, 175 + m],
    ] as const) {
      expect(Math.abs(got - want)).toBeLessThanOrEqual(2);
    }
    // the same picture as an 8-bit lung-window display image
    const gray = Float32Array.from(hu, (v) =>
      Math.min(255, Math.max(0, ((v - (spec.window.center - spec.window.width / 2)) / spec.window.width) * 255)),
    );
    const disp: SliceImage = { width: w, height: h, data: gray, kind: 'display' };
    expect(cropFor(disp, toUnit(disp, spec), spec).used).toBe('lung');
    // one lung only (a figure crop of a detail): the body box
    const one = Float32Array.from(gray);
    for (let y = 0; y < h; y++)
      for (let x = 128; x < w; x++) if (one[y * w + x]! < 150 && inE(x, y, 128, 128, 110, 80)) one[y * w + x] = 170;
    const oneImg: SliceImage = { width: w, height: h, data: one, kind: 'display' };
    expect(cropFor(oneImg, toUnit(oneImg, spec), spec).used).toBe('body');
    // an HU slice without pixel spacing cannot use the mm rules: the body box
    expect(cropFor({ ...img, pixelSpacing: null }, toUnit(img, spec), spec).used).toBe('body');
  });

  it('triangle weights are normalised and reduce to identity at scale 1', () => {
    for (const [nIn, nOut] of [
      [512, 224],
      [53, 224],
      [224, 224],
      [3, 224],
    ] as const) {
      const w = triangleWeights(nIn, nOut);
      for (const row of w.weights) expect(row.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
    }
    const id = triangleWeights(224, 224);
    for (let i = 0; i < 224; i++) {
      const row = id.weights[i] as Float64Array;
      expect(row[i - (id.start[i] as number)]).toBeCloseTo(1, 12);
    }
  });

  it('display kind: constant gray maps to (v/255 - mean)/std everywhere, tiny images are upsampled', () => {
    const img: SliceImage = { width: 7, height: 3, data: new Float32Array(21).fill(51), kind: 'display' };
    const out = preprocessSlice(img, spec);
    const expected = (51 / 255 - spec.normalize.mean) / spec.normalize.std;
    for (const v of out) expect(v).toBeCloseTo(expected, 6);
  });

  it('crops a full-field slice to the body and keeps the whole image when nothing stands out', () => {
    const w = 100;
    const h = 80;
    const data = new Float32Array(w * h).fill(-1000); // air
    for (let y = 20; y < 60; y++) for (let x = 30; x < 90; x++) data[y * w + x] = 40; // "body"
    const img: SliceImage = { width: w, height: h, data, kind: 'hu' };
    const m = Math.floor(spec.crop.marginFraction * 100);
    expect(cropBox(toUnit(img, spec), w, h, spec)).toEqual({ y0: 20 - m, y1: 59 + m, x0: 30 - m, x1: 89 + m });
    const air: SliceImage = { width: w, height: h, data: new Float32Array(w * h).fill(-1000), kind: 'hu' };
    expect(cropBox(toUnit(air, spec), w, h, spec)).toEqual({ y0: 0, y1: h - 1, x0: 0, x1: w - 1 });
  });
});
