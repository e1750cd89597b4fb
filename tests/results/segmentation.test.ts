/**
 * The DICOM Segmentation and the lung zones of a real scored series (every 4th slice of covid-ct-md P001,
 * scored by the shipped model with labels kept, as the inference worker does): dciodvfy finds no errors in
 * the SEG nor in the SR with its zone groups; the SEG has the four segments with their SNOMED CT codes,
 * AUTOMATIC with algorithm name and version, one frame per segment per slice holding it, each frame naming
 * its CT slice and position; its ground glass + consolidation volume equals the SR's opacity volume within
 * 1 %, and each lung's volume the SR's lung volume; the zones partition each lung (volumes add up to the
 * lung's, percentages average back to it) and the zone score is the sum of the Pan bins; `results.segmentation`
 * false writes no SEG; the bytes are the same on a re-run.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import dcmjs from 'dcmjs';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { zonesHtml } from '../../src/admin/zones-view.js';
import { createLogger } from '../../src/log.js';
import { loadModelMetadata, type ModelMetadata } from '../../src/model/metadata.js';
import { expandRuns } from '../../src/model/seg-masks.js';
import { outlineBits } from '../../src/results/gsps.js';
import { extentScore, ZONE_NAMES } from '../../src/model/zones.js';
import type { OutputFile, ResultRecord } from '../../src/contracts/result-record.js';
import { SEGMENTATION_STORAGE, writeResultObjects } from '../../src/results/index.js';
import { scoreFiles, type SeriesLabels } from '../../src/scoring/score.js';
import { run } from '../helpers/dcmtk.js';
import { MODEL_PATH, recordFromScore, repoRoot, spoolP001, testConfig } from './helpers.js';

const logger = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');
const tmp = mkdtempSync(path.join(tmpdir(), 'mlsam-seg-'));
const spool = path.join(tmp, 'spool');
const INSTANCES = Array.from({ length: 37 }, (_, i) => 2 + 4 * i);

let record: ResultRecord;
let meta: ModelMetadata;
let labels: SeriesLabels;
let outputs: OutputFile[];

beforeAll(async () => {
  const { seriesDir, files } = await spoolP001(spool, INSTANCES);
  ({ metadata: meta } = await loadModelMetadata(MODEL_PATH, { verifyHash: false }));
  const score = await scoreFiles(files, { modelPath: MODEL_PATH, keyAttention: true, keepLabels: true, batchSize: 8, threads: 2 });
  record = recordFromScore(score, meta, { seriesDir });
  labels = score.series[0]?.labels as SeriesLabels;
  outputs = await writeResultObjects(record, { config: testConfig(spool), logger, metadata: meta, labels });
}, 300_000);
afterAll(() => {
  if (!process.env.KEEP_TEST_TMP) rmSync(tmp, { recursive: true, force: true });
});

// biome-ignore lint/suspicious/noExplicitAny: dcmjs's naturalized dataset is untyped nested JSON, read field by field below
type Naturalized = Record<string, any>;

function naturalized(file: string): Naturalized {
  const buf = readFileSync(file);
  const dict = dcmjs.data.DicomMessage.readFile(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length) as ArrayBuffer);
  return dcmjs.data.DicomMetaDictionary.naturalizeDataset(dict.dict) as Naturalized;
}

async function dciodvfy(file: string): Promise<{ errors: string[]; all: string }> {
  const r = await run('dciodvfy', [file]);
  const all = r.stdout + r.stderr;
  return {
    errors: all
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l.startsWith('Error')),
    all,
  };
}

const seq = <T = Naturalized>(v: unknown): T[] => (v === undefined ? [] : Array.isArray(v) ? (v as T[]) : [v as T]);

describe('DICOM Segmentation', () => {
  it('is written with the other objects and passes dciodvfy without errors', async () => {
    const seg = outputs.find((o) => o.kind === 'seg');
    expect(seg).toBeDefined();
    expect(seg?.sopClassUid).toBe(SEGMENTATION_STORAGE);
    const v = await dciodvfy(seg!.path);
    expect(v.errors, v.all).toEqual([]);
    if (process.env.SHOW_DCIODVFY) console.log(v.all);
    const sr = outputs.find((o) => o.kind === 'sr')!;
    const vs = await dciodvfy(sr.path);
    expect(vs.errors, vs.all).toEqual([]);
  });

  it("has four coded segments, AUTOMATIC with algorithm name and version, on the CT's frame of reference", () => {
    const ds = naturalized(outputs.find((o) => o.kind === 'seg')!.path);
    const ct = naturalized(record.slices[0]!.file);
    expect(ds.Modality).toBe('SEG');
    expect(ds.SegmentationType).toBe('BINARY');
    expect(ds.BitsAllocated).toBe(1);
    expect(ds.FrameOfReferenceUID).toBe(ct.FrameOfReferenceUID);
    expect(ds.StudyInstanceUID).toBe(ct.StudyInstanceUID);
    expect(ds.PatientID).toBe(ct.PatientID);
    expect(String(ds.SeriesDescription)).toMatch(/^AI segmentation/);
    const segs = seq(ds.SegmentSequence);
    expect(segs.map((s) => s.SegmentLabel)).toEqual(['Left lung', 'Right lung', 'Ground glass', 'Consolidation']);
    expect(segs.map((s) => seq(s.SegmentedPropertyTypeCodeSequence)[0]?.CodeValue)).toEqual([
      '44029006',
      '3341006',
      '1217294009',
      '95436008',
    ]);
    expect(segs.every((s) => seq(s.SegmentedPropertyTypeCodeSequence)[0]?.CodingSchemeDesignator === 'SCT')).toBe(true);
    for (const s of segs) {
      expect(s.SegmentAlgorithmType).toBe('AUTOMATIC');
      expect(s.SegmentAlgorithmName).toBeTruthy();
      const alg = seq(s.SegmentationAlgorithmIdentificationSequence)[0]!;
      expect(alg.AlgorithmVersion).toContain(record.model.version);
    }
  });

  it('holds one frame per segment per slice that has it, each naming its CT slice and position', () => {
    const ds = naturalized(outputs.find((o) => o.kind === 'seg')!.path);
    const frames = seq(ds.PerFrameFunctionalGroupsSequence);
    expect(Number(ds.NumberOfFrames)).toBe(frames.length);
    const rows = ds.Rows as number;
    const cols = ds.Columns as number;
    const pixelData = new Uint8Array((ds.PixelData as ArrayBuffer[])[0]!);
    expect(pixelData.length).toBe(Math.ceil((frames.length * rows * cols) / 8));
    const slicesByUid = new Map(record.slices.map((s) => [s.sopInstanceUid, s]));
    const bySeg = new Map<number, Set<string>>();
    const pixelsBySeg = new Map<number, number>();
    frames.forEach((f, k) => {
      const segNo = seq(f.SegmentIdentificationSequence)[0]!.ReferencedSegmentNumber as number;
      const src = seq(seq(f.DerivationImageSequence)[0]!.SourceImageSequence)[0]!.ReferencedSOPInstanceUID as string;
      expect(slicesByUid.has(src)).toBe(true);
      const ct = naturalized(slicesByUid.get(src)!.file);
      expect(seq(f.PlanePositionSequence)[0]!.ImagePositionPatient.map(Number)).toEqual(ct.ImagePositionPatient.map(Number));
      const set = bySeg.get(segNo) ?? new Set<string>();
      expect(set.has(src)).toBe(false);
      set.add(src);
      bySeg.set(segNo, set);
      let count = 0;
      for (let p = k * rows * cols; p < (k + 1) * rows * cols; p++) if ((pixelData[p >> 3]! >> (p & 7)) & 1) count++;
      expect(count).toBeGreaterThan(0);
      pixelsBySeg.set(segNo, (pixelsBySeg.get(segNo) ?? 0) + count);
    });
    expect([...bySeg.keys()].sort()).toEqual([1, 2, 3, 4]);
    // Volumes from the SEG's pixels against the SR's numbers (the record's): within 1 %.
    const [rowMm, colMm] = (seq(seq(ds.SharedFunctionalGroupsSequence)[0]!.PixelMeasuresSequence)[0]!.PixelSpacing as number[]).map(Number);
    const ml = (px: number) => (px * rowMm! * colMm! * record.opacity!.sliceSpacingMm!) / 1000;
    const o = record.opacity!;
    const opacityMl = ml((pixelsBySeg.get(3) ?? 0) + (pixelsBySeg.get(4) ?? 0));
    expect(Math.abs(opacityMl - o.total.opacityMl) / o.total.opacityMl).toBeLessThan(0.01);
    expect(Math.abs(ml(pixelsBySeg.get(4) ?? 0) - o.total.highOpacityMl) / Math.max(o.total.highOpacityMl, 1)).toBeLessThan(0.01);
    expect(Math.abs(ml(pixelsBySeg.get(1)!) - o.left.lungMl) / o.left.lungMl).toBeLessThan(0.01);
    expect(Math.abs(ml(pixelsBySeg.get(2)!) - o.right.lungMl) / o.right.lungMl).toBeLessThan(0.01);
  });

  it('is the same bytes on a re-run, and absent when results.segmentation is false', async () => {
    const seg = outputs.find((o) => o.kind === 'seg')!;
    const before = readFileSync(seg.path);
    const again = await writeResultObjects(structuredClone(record), { config: testConfig(spool), logger, metadata: meta, labels });
    expect(readFileSync(again.find((o) => o.kind === 'seg')!.path).equals(before)).toBe(true);
    const off = await writeResultObjects(structuredClone(record), {
      config: testConfig(path.join(tmp, 'spool-noseg'), { segmentation: false }),
      logger,
      metadata: meta,
      labels,
    });
    expect(off.some((o) => o.kind === 'seg')).toBe(false);
    expect(off.some((o) => o.kind === 'sr')).toBe(true);
  });
});

describe('key-slice Secondary Captures', () => {
  it('show the measured ground glass and consolidation in colour in the lung window, the attention only as a contour', async () => {
    const labelsBySop = new Map(labels.slices.map((l) => [l.sopInstanceUid, l.labels]));
    const heatmaps = outputs.filter((o) => o.kind === 'heatmap');
    expect(heatmaps.length).toBeGreaterThan(0);
    let checked = 0;
    for (const h of heatmaps) {
      const ds = naturalized(h.path);
      const l = labelsBySop.get(h.sourceSopInstanceUid!)!;
      const n = l.width * l.height;
      const lesion = expandRuns(l.lesion, n);
      const lung = expandRuns(l.lung, n);
      const px = new Uint8Array((ds.PixelData as ArrayBuffer[])[0]!);
      expect(px.length).toBe(n * 3);
      let inLesion = 0;
      let tinted = 0;
      let inLungClear = 0;
      let gray = 0;
      let cyan = 0;
      // the top two thirds of the image: clear of the text band and banner at the bottom
      for (let i = 0; i < Math.floor((n * 2) / 3); i++) {
        const [r, g, b] = [px[i * 3]!, px[i * 3 + 1]!, px[i * 3 + 2]!];
        if (r < 40 && g > 180 && b > 180) cyan++;
        if (lesion[i]) {
          inLesion++;
          if (r - b > 40) tinted++;
        } else if (lung[i]) {
          inLungClear++;
          if (r === g && g === b) gray++;
        }
      }
      if (inLesion > 200) {
        expect(tinted / inLesion).toBeGreaterThan(0.9);
        checked++;
      }
      // lungs without opacity stay gray (only the thin attention contour crosses them); in the lung window, not black
      expect(gray / inLungClear).toBeGreaterThan(0.9);
      expect(cyan).toBeLessThan(inLungClear * 0.1);
      expect(String(ds.DerivationDescription)).toContain('ground glass');
      expect(String(ds.DerivationDescription)).toContain('Lung window -600/1500');
    }
    expect(checked).toBeGreaterThan(0);
    const first = naturalized(heatmaps[0]!.path);
    mkdirSync(path.join(repoRoot, 'test-artifacts'), { recursive: true });
    await sharp(Buffer.from((first.PixelData as ArrayBuffer[])[0]!), { raw: { width: first.Columns, height: first.Rows, channels: 3 } })
      .png()
      .toFile(path.join(repoRoot, 'test-artifacts', 'heatmap-findings.png'));
  });
});

describe('Grayscale Softcopy Presentation States of the key slices', () => {
  /** dcmp2pgm's PGM (P5, 8 bit) as width, height and bytes. */
  function readPgm(file: string): { width: number; height: number; data: Uint8Array } {
    const buf = readFileSync(file);
    const header = buf.toString('latin1', 0, 64).match(/^P5\s+(\d+)\s+(\d+)\s+(\d+)\s/);
    if (!header) throw new Error('not a P5 PGM');
    const [all, w, h, max] = header;
    expect(Number(max)).toBe(255);
    return { width: Number(w), height: Number(h), data: new Uint8Array(buf.subarray(all.length)) };
  }

  it('one per key slice, 0 dciodvfy errors, referencing its CT slice, lung window', async () => {
    const prs = outputs.filter((o) => o.kind === 'gsps');
    expect(prs).toHaveLength(record.keySlices.length);
    for (const pr of prs) {
      const v = await dciodvfy(pr.path);
      expect(v.errors, v.all).toEqual([]);
      if (process.env.SHOW_DCIODVFY) console.log(v.all);
      const ds = naturalized(pr.path);
      expect(ds.Modality).toBe('PR');
      expect(String(ds.SeriesDescription)).toMatch(/^AI key slices, lung window/);
      const voi = seq(ds.SoftcopyVOILUTSequence)[0]!;
      expect([Number(voi.WindowCenter), Number(voi.WindowWidth)]).toEqual([-600, 1500]);
      const ref = seq(seq(ds.ReferencedSeriesSequence)[0]!.ReferencedImageSequence)[0]!;
      expect(ref.ReferencedSOPInstanceUID).toBe(pr.sourceSopInstanceUid);
    }
  });

  it('rendered by dcmp2pgm: the lungs in the lung window, the opacity outline drawn', async () => {
    const labelsBySop = new Map(labels.slices.map((l) => [l.sopInstanceUid, l.labels]));
    let drawn = 0;
    for (const pr of outputs.filter((o) => o.kind === 'gsps')) {
      const ct = record.slices.find((s) => s.sopInstanceUid === pr.sourceSopInstanceUid)!;
      const withPs = path.join(tmp, `${path.basename(pr.path)}.pgm`);
      const plain = path.join(tmp, `${path.basename(pr.path)}.plain.pgm`);
      // dcmp2pgm reads no JPEG Lossless (P001's syntax): a decompressed copy of the slice. It also refuses a state
      // whose Patient Name is empty (Type 2 in the standard, so P001's anonymised empty name is copied as it is):
      // a copy of the state with a name.
      const ctPlain = path.join(tmp, `${path.basename(pr.path)}.ct.dcm`);
      const d = await run('dcmdjpeg', [ct.file, ctPlain]);
      expect(d.code, d.stderr).toBe(0);
      const psNamed = path.join(tmp, `${path.basename(pr.path)}.named.dcm`);
      copyFileSync(pr.path, psNamed);
      const name = seq<{ Alphabetic?: string } | string>(naturalized(pr.path).PatientName)[0];
      if (!name || (typeof name === 'object' && !name.Alphabetic)) {
        const m = await run('dcmodify', ['-nb', '-i', '(0010,0010)=TEST^P001', psNamed]);
        expect(m.code, m.stderr).toBe(0);
      }
      const r1 = await run('dcmp2pgm', ['-p', psNamed, ctPlain, withPs]);
      expect(r1.code, r1.stderr).toBe(0);
      const r2 = await run('dcmp2pgm', [ctPlain, plain]);
      expect(r2.code, r2.stderr).toBe(0);
      const a = readPgm(withPs);
      const b = readPgm(plain);
      const l = labelsBySop.get(ct.sopInstanceUid)!;
      expect([a.width, a.height]).toEqual([l.width, l.height]);
      const n = l.width * l.height;
      const lesion = expandRuns(l.lesion, n);
      const lung = expandRuns(l.lung, n);
      const outline = outlineBits(lesion, l.width, l.height);
      const isOutline = (i: number) => ((outline.bits[i >> 3]! >> (i & 7)) & 1) === 1;
      // Lung window: aerated lung (about -850 HU) renders mid-dark gray (~85 of 255), not black as in the CT's own window.
      let lungSum = 0;
      let lungN = 0;
      let plainSum = 0;
      for (let i = 0; i < n; i++) {
        if (!lung[i] || lesion[i]) continue;
        lungSum += a.data[i]!;
        plainSum += b.data[i]!;
        lungN++;
      }
      expect(lungN).toBeGreaterThan(1000);
      expect(lungSum / lungN).toBeGreaterThan(40);
      expect(lungSum / lungN).toBeLessThan(140);
      expect(plainSum / lungN).toBeLessThan(20);
      if (outline.pixels < 20) continue;
      // The outline: drawn at full white; the pixels just inside it are not.
      let onWhite = 0;
      let inside = 0;
      let insideWhite = 0;
      for (let i = 0; i < n; i++) {
        if (isOutline(i)) {
          if (a.data[i] === 255) onWhite++;
        } else if (lesion[i]) {
          inside++;
          if (a.data[i] === 255) insideWhite++;
        }
      }
      expect(onWhite / outline.pixels).toBeGreaterThan(0.99);
      if (inside > 50) expect(insideWhite / inside).toBeLessThan(0.2);
      // and the same slice without the presentation state has no outline: its outline pixels are not all white
      let plainWhite = 0;
      for (let i = 0; i < n; i++) if (isOutline(i) && b.data[i] === 255) plainWhite++;
      expect(plainWhite / outline.pixels).toBeLessThan(0.5);
      drawn++;
      if (process.env.SHOW_DCIODVFY) console.log({ lungMean: lungSum / lungN, plainLungMean: plainSum / lungN, outline: outline.pixels });
    }
    expect(drawn).toBeGreaterThan(0);
  });
});

describe('lung zones', () => {
  it("partition each lung: volumes add up to the lung's, percentages average back to it, score = sum of the bins", () => {
    const z = record.zones!;
    expect(z).toBeDefined();
    expect(z.rule).toBe('lung-thirds-v1');
    let total = 0;
    for (const side of ['left', 'right'] as const) {
      const lung = record.opacity![side];
      const zones = ZONE_NAMES.map((n) => z[side][n]);
      const sum = (f: (m: (typeof zones)[number]) => number) => zones.reduce((s, m) => s + f(m), 0);
      expect(Math.abs(sum((m) => m.lungMl) - lung.lungMl)).toBeLessThan(0.05);
      expect(Math.abs(sum((m) => m.opacityMl) - lung.opacityMl)).toBeLessThan(0.05);
      expect(Math.abs(sum((m) => m.highOpacityMl) - lung.highOpacityMl)).toBeLessThan(0.05);
      const weighted = sum((m) => m.lungMl * m.percentOpacity) / sum((m) => m.lungMl);
      expect(Math.abs(weighted - lung.percentOpacity)).toBeLessThan(0.02);
      // thirds (lungZones): every zone has slices of this lung, upper above middle above lower
      expect(zones.every((m) => m.slices > 0)).toBe(true);
      expect(zones[0]!.lastSlice).toBeLessThan(zones[1]!.firstSlice);
      expect(zones[1]!.lastSlice).toBeLessThan(zones[2]!.firstSlice);
      for (const m of zones) {
        expect(m.score).toBe(extentScore(m.percentOpacity, m.opacityMl));
        total += m.score;
      }
    }
    expect(z.score).toBe(total);
    // P001 is COVID-19 with bilateral opacity: some zone scores above 0.
    expect(z.score).toBeGreaterThan(0);
  });

  it('are in the SR: one measurement group per zone, finding site the lung with a topographical modifier, values as recorded', () => {
    const sr = naturalized(outputs.find((o) => o.kind === 'sr')!.path);
    const measurements = seq(sr.ContentSequence).find((c) => seq(c.ConceptNameCodeSequence)[0]?.CodeValue === '126011')!;
    const zoneGroups = seq(measurements.ContentSequence).filter((g) =>
      seq(g.ContentSequence).some(
        (c) => seq(c.ConceptNameCodeSequence)[0]?.CodeValue === '112039' && String(c.TextValue).startsWith('Zone '),
      ),
    );
    expect(zoneGroups).toHaveLength(6);
    const modifiers: Record<string, string> = { upper: '261183002', middle: '255562008', lower: '261122009' };
    for (const g of zoneGroups) {
      const items = seq(g.ContentSequence);
      const [, side, zone] = String(items.find((c) => seq(c.ConceptNameCodeSequence)[0]?.CodeValue === '112039')!.TextValue).split(' ') as [
        string,
        'right' | 'left',
        'upper' | 'middle' | 'lower',
      ];
      const site = items.find((c) => seq(c.ConceptNameCodeSequence)[0]?.CodeValue === '363698007')!;
      expect(seq(site.ConceptCodeSequence)[0]!.CodeValue).toBe(side === 'right' ? '3341006' : '44029006');
      const mod = seq(site.ContentSequence)[0]!;
      expect(seq(mod.ConceptNameCodeSequence)[0]!.CodeValue).toBe('106233006');
      expect(seq(mod.ConceptCodeSequence)[0]!.CodeValue).toBe(modifiers[zone]);
      const numOf = (code: string) =>
        Number(seq(items.find((c) => seq(c.ConceptNameCodeSequence)[0]?.CodeValue === code)!.MeasuredValueSequence)[0]!.NumericValue);
      const m = record.zones![side][zone];
      // the SR holds two decimals
      expect(Math.abs(numOf('OPACITY-PCT-ZONE') - m.percentOpacity)).toBeLessThanOrEqual(0.0051);
      expect(numOf('ZONE-SCORE')).toBe(m.score);
    }
  });

  it("are on the dashboard's series page: a table of the six zones and a picture coloured by bin", () => {
    const html = zonesHtml(record.zones!);
    expect(html.match(/<tr data-side=/g)).toHaveLength(6);
    expect(html).toContain(`${record.zones!.score} / 30`);
    expect(html.match(/<g class="zone"/g)).toHaveLength(6);
    expect(html).toContain(`data-side="left" data-zone="lower" data-score="${record.zones!.left.lower.score}"`);
  });
});
