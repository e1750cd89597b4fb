import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { selectSeries, summarizeSeries, type SelectableInstance } from '../../src/queue/series-selection.js';
import { routeSeries } from '../../src/queue/routing.js';

const config = loadConfig({ env: {} });
const routing = { ...config.series.routing, minSlices: 10 };
const rules = config.series.selection;

const AXIAL = [1, 0, 0, 0, 1, 0];
const CORONAL = [1, 0, 0, 0, 0, -1];

function series(
  n: number,
  o: {
    spacing?: number;
    thickness?: number;
    kernel?: string;
    iop?: number[];
    imageType?: string[];
    sopClassUid?: string;
    number?: string;
  } = {},
): SelectableInstance[] {
  return Array.from({ length: n }, (_, i) => ({
    modality: 'CT',
    bodyPartExamined: 'CHEST',
    imageType: o.imageType ?? ['ORIGINAL', 'PRIMARY', 'AXIAL'],
    sopClassUid: o.sopClassUid ?? '1.2.840.10008.5.1.4.1.1.2',
    orientation: o.iop ?? AXIAL,
    position: (o.iop ?? AXIAL) === AXIAL ? [0, 0, -i * (o.spacing ?? 1)] : [0, i * (o.spacing ?? 1), 0],
    sliceThickness: o.thickness ?? o.spacing ?? 1,
    kernel: o.kernel ?? 'B30f',
    seriesNumber: o.number ?? '2',
    seriesDescription: '',
  }));
}

const pick = (list: Array<[string, SelectableInstance[]]>) =>
  selectSeries(
    list.map(([uid, inst]) => summarizeSeries(uid, inst, routing)),
    rules,
  );

describe('series selection', () => {
  it('prefers thin over thick, soft over sharp, and says why for every other series', () => {
    const s = pick([
      ['1.1', series(300, { spacing: 1, kernel: 'B70f' })], // thin, sharp lung kernel
      ['1.2', series(300, { spacing: 1, kernel: 'B30f' })], // thin, soft: chosen
      ['1.3', series(60, { spacing: 5, kernel: 'B30f' })], // thick
      ['1.4', series(300, { spacing: 1, iop: CORONAL })], // coronal (not a reformat by ImageType)
      ['1.5', series(40, { spacing: 1, imageType: ['DERIVED', 'SECONDARY', 'MIP'] })],
      ['1.6', series(2, { imageType: ['ORIGINAL', 'PRIMARY', 'LOCALIZER'] })],
      ['1.7', series(1, { sopClassUid: '1.2.840.10008.5.1.4.1.1.7' })],
      ['1.8', series(30, { spacing: 1 })], // 29 mm: not a whole chest
    ]);
    expect(s.chosen).toBe('1.2');
    expect(s.order).toEqual(['1.2', '1.1', '1.3']);
    const why = Object.fromEntries(s.roles.map((r) => [r.seriesInstanceUid, `${r.role}: ${r.reason}`]));
    expect(why['1.1']).toMatch(/^candidate: .*soft\/standard kernel preferred/);
    expect(why['1.3']).toMatch(/^candidate: .*thin slices/);
    expect(why['1.4']).toMatch(/^ignored: not axial \(coronal/);
    expect(why['1.5']).toMatch(/^ignored: reformat or projection \(ImageType DERIVED, MIP, SECONDARY\)/);
    expect(why['1.6']).toMatch(/^ignored: .*LOCALIZER/);
    expect(why['1.7']).toMatch(/^ignored: Secondary Capture Image Storage: stored, not scored/);
    expect(why['1.8']).toMatch(/^ignored: covers 29 mm/);
    expect(s.roles).toHaveLength(8);
  });

  it('takes a second acquisition as a candidate and breaks ties deterministically', () => {
    const a = pick([
      ['1.2.9', series(200, { number: '3' })],
      ['1.2.8', series(200, { number: '4' })],
    ]);
    const b = pick([
      ['1.2.8', series(200, { number: '4' })],
      ['1.2.9', series(200, { number: '3' })],
    ]);
    expect(a.chosen).toBe('1.2.9');
    expect(b.chosen).toBe('1.2.9');
    expect(a.roles.find((r) => r.seriesInstanceUid === '1.2.8')?.reason).toMatch(/lower SeriesNumber/);
  });

  it('follows preferKernel: sharp', () => {
    const s = selectSeries(
      [summarizeSeries('1.1', series(300, { kernel: 'B70f' }), routing), summarizeSeries('1.2', series(300, { kernel: 'B30f' }), routing)],
      { ...rules, preferKernel: 'sharp' },
    );
    expect(s.chosen).toBe('1.1');
  });

  it('routes unscored storage SOP classes as ignored with the class name', () => {
    const d = routeSeries(series(1, { sopClassUid: '1.2.840.10008.5.1.4.1.1.88.67' }), routing);
    expect(d).toMatchObject({ route: 'ignore', code: 'sop-class' });
    if (d.route === 'ignore') expect(d.reason).toMatch(/X-Ray Radiation Dose SR/);
  });
});
