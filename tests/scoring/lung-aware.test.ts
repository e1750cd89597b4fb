/**
 * Anatomy-aware scoring on the real COVID-CT-MD series with the shipped model: key slices hold lung, the
 * heatmap attention is zero outside the lungs, the finding's region lies in the lungs; fused and CNN-only
 * branches say which they are; opacity is reported per lung; the fused series order is COVID-19 above
 * community-acquired pneumonia above normal, and the normal series is "unlikely".
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeDicomFile } from '../../src/dicom/decode/index.js';
import { analyseSlice } from '../../src/model/opacity.js';
import { ModelSession } from '../../src/model/session.js';
import { scoreFiles, type ScoreResult, type ScoredSeries } from '../../src/scoring/score.js';
import { SHIPPED_MODEL } from '../helpers/model.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const data = path.resolve(root, '..', 'shared', 'data');
const MODEL = SHIPPED_MODEL;

let session: ModelSession;
const results = new Map<string, ScoreResult>();

beforeAll(async () => {
  session = await ModelSession.load(MODEL, { providers: ['cpu'], batchSize: 16 });
  for (const s of ['P001', 'cap001', 'normal001']) {
    results.set(s, await scoreFiles([path.join(data, 'covid-ct-md', s)], { session, keyAttention: true, decodeThreads: 2 }));
  }
}, 600_000);
afterAll(async () => {
  await session?.release();
});

const seriesOf = (s: string): ScoredSeries => results.get(s)!.series[0]!;

describe('lung-aware scoring of real HU series', () => {
  it('fuses the CNN with the opacity burden and reports lungs and opacity per lung', () => {
    for (const s of ['P001', 'cap001', 'normal001']) {
      const r = seriesOf(s);
      expect(r.fusion).toBe('cnn+opacity');
      const o = r.opacity!;
      expect(o.total.lungMl).toBeGreaterThan(2500);
      expect(o.left.lungMl + o.right.lungMl).toBeCloseTo(o.total.lungMl, 0);
      expect(o.total.opacityMl).toBeGreaterThanOrEqual(o.total.highOpacityMl);
      const slices = results.get(s)!.slices;
      expect(slices.every((x) => x.cnnProbability >= 0 && x.lungAreaMm2 !== undefined && x.eligible !== undefined)).toBe(true);
      // ineligible slices say why, eligible ones do not
      expect(slices.filter((x) => x.eligible === false).every((x) => /little lung/.test(x.ineligibleReason ?? ''))).toBe(true);
      expect(slices.filter((x) => x.eligible).every((x) => x.ineligibleReason === undefined)).toBe(true);
    }
    // the pneumonias are more opaque than the normal lungs
    expect(seriesOf('P001').opacity!.total.percentOpacity).toBeGreaterThan(2 * seriesOf('normal001').opacity!.total.percentOpacity);
    expect(seriesOf('cap001').opacity!.total.percentOpacity).toBeGreaterThan(2 * seriesOf('normal001').opacity!.total.percentOpacity);
  });

  it('ranks COVID-19 above community-acquired pneumonia above normal, and calls the normal series unlikely', () => {
    expect(seriesOf('P001').score).toBeGreaterThan(seriesOf('cap001').score);
    expect(seriesOf('cap001').score).toBeGreaterThan(seriesOf('normal001').score);
    expect(seriesOf('normal001').category).toBe('unlikely');
  });

  it('never puts a key slice, its heatmap or its region outside the lungs (normal001 too)', async () => {
    for (const s of ['P001', 'cap001', 'normal001']) {
      const r = seriesOf(s);
      const slices = results.get(s)!.slices;
      const maxLung = Math.max(...slices.map((x) => x.lungAreaMm2 ?? 0));
      expect(r.keySlices).toHaveLength(5);
      for (const k of r.keySlices) {
        const sl = slices[k.index]!;
        expect(sl.eligible).toBe(true);
        expect(sl.lungAreaMm2!).toBeGreaterThanOrEqual(0.2 * maxLung);
        // recompute the slice's lung mask and check the heatmap and region against it
        const d = await decodeDicomFile(k.file);
        const a = analyseSlice(
          d.image.data,
          d.image.width,
          d.image.height,
          d.header.pixelSpacing!,
          session.metadata.preprocessing.lungs!,
          session.metadata.quantification!,
        );
        const lung = a.segmentation.lung;
        const inLung = (x: number, y: number) =>
          lung.data[Math.floor((y * lung.height) / d.image.height) * lung.width + Math.floor((x * lung.width) / d.image.width)] === 1;
        const att = k.attention!;
        let outside = 0;
        let inside = 0;
        for (let v = 0; v < att.height; v++) {
          for (let u = 0; u < att.width; u++) {
            const x = att.cropBox.x0 + ((u + 0.5) * (att.cropBox.x1 - att.cropBox.x0 + 1)) / att.width;
            const y = att.cropBox.y0 + ((v + 0.5) * (att.cropBox.y1 - att.cropBox.y0 + 1)) / att.height;
            const val = att.data[v * att.width + u]!;
            if (inLung(x, y)) inside = Math.max(inside, val);
            else outside = Math.max(outside, val);
          }
        }
        expect(outside).toBe(0);
        expect(inside).toBe(1);
        expect(k.region).toBeDefined();
        const [px, py] = k.region!.peak;
        expect(inLung(px, py)).toBe(true);
        if (k.region!.polygon) {
          const poly = k.region!.polygon;
          expect(poly.length % 2).toBe(0);
          expect([poly[0], poly[1]]).toEqual([poly[poly.length - 2], poly[poly.length - 1]]);
          // the outline's vertices lie on or next to lung pixels (corners of lung-mask pixels)
          let near = 0;
          for (let i = 0; i < poly.length; i += 2) {
            const x = poly[i]!;
            const y = poly[i + 1]!;
            if (
              [
                [-1, -1],
                [-1, 1],
                [1, -1],
                [1, 1],
              ].some(([dx, dy]) => inLung(x + dx! * 1.5, y + dy! * 1.5))
            )
              near++;
          }
          expect(near).toBe(poly.length / 2);
          expect(k.region!.polygonAreaMm2!).toBeGreaterThan(0);
        }
      }
    }
  });

  it('8-bit images have no HU: the CNN alone decides and the result says so', async () => {
    const r = await scoreFiles(
      [path.join(data, 'covid-ct', 'CT_COVID', (await import('node:fs')).readdirSync(path.join(data, 'covid-ct', 'CT_COVID')).sort()[0]!)],
      { session, decodeThreads: 0 },
    );
    const s = r.series[0]!;
    expect(s.fusion).toBe('cnn-only');
    expect(s.opacity).toBeUndefined();
    expect(r.slices[0]!.probability).toBe(r.slices[0]!.cnnProbability);
    expect(s.threshold).toBe(session.metadata.series.threshold);
  });
});
