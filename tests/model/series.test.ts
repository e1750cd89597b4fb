/**
 * Slice selection and series aggregation on real COVID-CT-MD headers (with variants derived from
 * them in code: localizer, sagittal, enhanced CT, repeated acquisition, no pixel data).
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { readDicomHeaderFile, type DicomHeader } from '../../src/dicom/decode/index.js';
import { aggregateSeries, categorize, topK, type SeriesPolicy } from '../../src/model/aggregate.js';
import { selectSlices, type Candidate } from '../../src/scoring/select-slices.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const covid = path.resolve(repoRoot, '..', 'shared', 'data', 'covid-ct-md');

const policy: SeriesPolicy = {
  aggregation: { method: 'topk-mean', kFraction: 0.1, kMin: 3 },
  threshold: 0.5,
  indeterminateMargin: 0.1,
  keySlices: 5,
};

describe('aggregateSeries', () => {
  it('k = min(n, max(kMin, ceil(kFraction n)))', () => {
    expect([1, 2, 3, 10, 29, 30, 31, 148].map((n) => topK(n, policy.aggregation))).toEqual([1, 2, 3, 3, 3, 3, 4, 15]);
  });

  it('top-k mean, key slices best first with ties by index', () => {
    const probs = Array.from({ length: 40 }, (_, i) => (i % 10) / 10); // 0..0.9 four times
    const agg = aggregateSeries(probs, policy);
    expect(agg.k).toBe(4);
    expect(agg.score).toBeCloseTo(0.9, 12);
    expect(agg.category).toBe('likely');
    expect(agg.keySlices.map((k) => k.index)).toEqual([9, 19, 29, 39, 8]);
    expect(() => aggregateSeries([], policy)).toThrow(RangeError);
    expect(() => aggregateSeries([Number.NaN], policy)).toThrow(RangeError);
  });

  it('category bands around the threshold', () => {
    expect(categorize(0.61, policy)).toBe('likely');
    expect(categorize(0.59, policy)).toBe('indeterminate');
    expect(categorize(0.41, policy)).toBe('indeterminate');
    expect(categorize(0.4, policy)).toBe('unlikely');
    expect(categorize(0.05, policy)).toBe('unlikely');
  });
});

describe('selectSlices', () => {
  let headers: Candidate[] = [];
  let labelOrder: string[] = [];
  beforeAll(async () => {
    const dir = path.join(covid, 'P001');
    headers = await Promise.all(
      readdirSync(dir)
        .sort()
        .map(async (f) => ({ file: path.join(dir, f), header: await readDicomHeaderFile(path.join(dir, f)) })),
    );
    // slice_labels.csv: series,SOPInstanceUID,InstanceNumber,SliceLocation,label sorted by SliceLocation descending
    labelOrder = readFileSync(path.join(covid, 'slice_labels.csv'), 'utf8')
      .split('\n')
      .slice(1)
      .filter((l) => l.startsWith('P001,'))
      .map((l) => l.split(',')[1] as string);
  });

  it('keeps every axial CT slice of a clean series, superior first (= SliceLocation descending)', () => {
    const sel = selectSlices(headers);
    expect(sel.dropped).toEqual([]);
    expect(sel.slices.map((s) => s.header.sopInstanceUid)).toEqual(labelOrder);
    for (let i = 1; i < sel.slices.length; i++) expect(sel.slices[i - 1]!.position).toBeGreaterThan(sel.slices[i]!.position);
  });

  it('drops localizers, non-axial, non-CT-Image-Storage, pixel-less instances and earlier duplicates, with reasons', () => {
    const base = headers.slice(0, 10);
    const h = (i: number): DicomHeader => base[i]!.header;
    const variant = (name: string, header: DicomHeader): Candidate => ({ file: `/x/${name}`, header });
    const extra: Candidate[] = [
      variant('loc', { ...h(0), sopInstanceUid: '1.2.3.1', imageType: ['ORIGINAL', 'PRIMARY', 'LOCALIZER'] }),
      variant('sag', { ...h(1), sopInstanceUid: '1.2.3.2', imageOrientationPatient: [0, 1, 0, 0, 0, -1] }),
      variant('enh', { ...h(2), sopInstanceUid: '1.2.3.3', sopClassUid: '1.2.840.10008.5.1.4.1.1.2.1' }),
      variant('nopix', { ...h(3), sopInstanceUid: '1.2.3.4', hasPixelData: false }),
      // a repeat of slice 4's position from a later acquisition: it replaces slice 4
      variant('again', { ...h(4), sopInstanceUid: '1.2.3.5', acquisitionNumber: (h(4).acquisitionNumber ?? 1) + 1 }),
      // a repeat of slice 5's position from an earlier acquisition: dropped
      variant('older', { ...h(5), sopInstanceUid: '1.2.3.6', acquisitionNumber: (h(5).acquisitionNumber ?? 1) - 1 }),
    ];
    const sel = selectSlices([...base, ...extra]);
    const reasons = Object.fromEntries(sel.dropped.map((d) => [d.sopInstanceUid, d.reason]));
    expect(reasons['1.2.3.1']).toMatch(/localizer/);
    expect(reasons['1.2.3.2']).toMatch(/not axial/);
    expect(reasons['1.2.3.3']).toMatch(/not CT Image Storage/);
    expect(reasons['1.2.3.4']).toMatch(/no Pixel Data/);
    expect(reasons[h(4).sopInstanceUid as string]).toMatch(/duplicate position.*1\.2\.3\.5/);
    expect(reasons['1.2.3.6']).toMatch(/duplicate position/);
    expect(sel.slices).toHaveLength(10);
    const uids = sel.slices.map((s) => s.header.sopInstanceUid);
    expect(uids).toContain('1.2.3.5');
    expect(uids).not.toContain(h(4).sopInstanceUid);
  });
});
