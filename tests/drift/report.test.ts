/**
 * The drift report's rules on rows built here (the statistics themselves are checked against SciPy
 * in statistics.test.ts; the whole path through a real store in tests/db/drift.test.ts): the
 * windows (a validation period, the last days), one study per StudyInstanceUID, the bands with and
 * without chance, the agreement rules (Newcombe's interval recomputed from the Wilson formula, a
 * floor), the model-version note.
 */
import { describe, expect, it } from 'vitest';
import { DRIFT_DEFAULTS, type DriftConfig } from '../../src/config/schema.js';
import type { AgreementAnswerRow, DriftInputRow } from '../../src/db/results-db.js';
import { buildDriftReport, kvpBand, newcombeDifference } from '../../src/drift/report.js';
import { wilson } from '../../src/validation/metrics.js';

const cfg = (over: Partial<DriftConfig> = {}): DriftConfig => ({ ...DRIFT_DEFAULTS, ...over });

function row(i: number, day: string, over: Partial<DriftInputRow> = {}): DriftInputRow {
  return {
    study_instance_uid: `1.2.3.${day.replace(/-/g, '')}.${i}`,
    series_instance_uid: `1.2.3.${day.replace(/-/g, '')}.${i}.1`,
    score: ((i * 37) % 100) / 100,
    opacity_percent: (i * 13) % 40,
    manufacturer: 'SIEMENS',
    kernel: 'B30f',
    slice_thickness_mm: 1,
    kvp: 120,
    contrast: '',
    finished_at: `${day}T10:${String(Math.floor(i / 60) % 60).padStart(2, '0')}:${String(i % 60).padStart(2, '0')}.000Z`,
    model_version: '2.1.0',
    ...over,
  };
}
const block = (n: number, day: string, over: (i: number) => Partial<DriftInputRow> = () => ({})): DriftInputRow[] =>
  Array.from({ length: n }, (_, i) => row(i, day, over(i)));
const answer = (r: DriftInputRow, agree: boolean, user = 'dr.kim'): AgreementAnswerRow => ({
  study_instance_uid: r.study_instance_uid,
  series_instance_uid: '',
  user_name: user,
  agree: agree ? 1 : 0,
  created_at: r.finished_at,
});

describe('drift windows', () => {
  it('a validation period as the reference, the last days after it as the current window', () => {
    const rows = [...block(40, '2026-01-10'), ...block(10, '2026-02-15'), ...block(35, '2026-03-20')];
    const r = buildDriftReport(
      rows,
      [],
      cfg({
        reference: { kind: 'period', studies: 100, from: '2026-01-01', to: '2026-01-31' },
        current: { kind: 'days', studies: 100, days: 20 },
      }),
      new Date('2026-03-25T00:00:00Z'),
    );
    expect(r.windows.reference).toMatchObject({ studies: 40, description: 'the studies scored from 2026-01-01 to 2026-01-31' });
    expect(r.windows.current.studies).toBe(35); // February is neither: before the last 20 days
    expect(r.windows.current.from!.slice(0, 10)).toBe('2026-03-20');
  });

  it('counts a study once: the latest row of each series, the highest-scoring series, timed by its first', () => {
    const a = row(1, '2026-01-10', { score: 0.2 });
    const rescored = { ...a, score: 0.1, finished_at: '2026-05-01T00:00:00.000Z' }; // the same series later
    const other = { ...a, series_instance_uid: `${a.series_instance_uid}9`, score: 0.05, finished_at: '2026-01-11T00:00:00.000Z' };
    const r = buildDriftReport([a, other, rescored], [], cfg({ minStudies: 2 }));
    expect(r.windows.reference.studies).toBe(1);
    expect(r.windows.reference.from).toBe(a.finished_at);
    expect(r.variables.find((v) => v.variable === 'score')!.reference).toBe(1);
  });

  it('a "first" reference still filling has no current window and says so', () => {
    const r = buildDriftReport(block(60, '2026-01-10'), [], cfg());
    expect(r.windows.reference.description).toBe('the first 100 scored studies (still filling: 60 so far)');
    expect(r.windows.current.studies).toBe(0);
    expect(r.variables.every((v) => v.level === 'not-enough-studies' && !v.alarm)).toBe(true);
  });
});

describe('drift bands and chance', () => {
  it('a moderate PSI in small windows that chance explains does not alarm; the same shift in large windows does', () => {
    // 30 + 30 studies: 20 % vs 40 % sharp kernel.
    const small = [
      ...block(30, '2026-01-10', (i) => ({ kernel: i < 6 ? 'B70f' : 'B30f' })),
      ...block(30, '2026-02-10', (i) => ({ kernel: i < 12 ? 'B70f' : 'B30f' })),
    ];
    const c = cfg({ reference: { kind: 'first', studies: 30, from: '', to: '' }, current: { kind: 'last', studies: 30, days: 30 } });
    const k = buildDriftReport(small, [], c).variables.find((v) => v.variable === 'kernel')!;
    // By hand: (0.4 − 0.2)·ln 2 + (0.6 − 0.8)·ln(0.75).
    expect(k.psi).toBeCloseTo(0.2 * Math.log(2) - 0.2 * Math.log(0.75), 12);
    expect(k.level).toBe('moderate');
    expect(k.psiPValue).toBeGreaterThan(0.01);
    expect(k.alarm).toBe(false);
    const large = [
      ...block(600, '2026-01-10', (i) => ({ kernel: i % 5 === 0 ? 'B70f' : 'B30f' })),
      ...block(600, '2026-02-10', (i) => ({ kernel: i % 5 < 2 ? 'B70f' : 'B30f' })),
    ];
    const c2 = cfg({ reference: { kind: 'first', studies: 600, from: '', to: '' }, current: { kind: 'last', studies: 600, days: 30 } });
    const k2 = buildDriftReport(large, [], c2).variables.find((v) => v.variable === 'kernel')!;
    expect(k2.psi).toBeCloseTo(k.psi!, 12);
    expect(k2.psiPValue).toBeLessThan(1e-6);
    expect(k2.alarm).toBe(true);
  });

  it('bands kVp and contrast; notes windows scored by different model versions', () => {
    expect([70, 80, 90, 100, 110, 120, 130, 140].map(kvpBand)).toEqual([
      '< 90 kV',
      '< 90 kV',
      '90–109 kV',
      '90–109 kV',
      '110–129 kV',
      '110–129 kV',
      '≥ 130 kV',
      '≥ 130 kV',
    ]);
    expect(kvpBand(null)).toBe('unknown');
    const rows = [
      ...block(30, '2026-01-10', (i) => ({ contrast: i < 10 ? 'IOMEPROL' : i < 20 ? '' : null })),
      ...block(30, '2026-02-10', () => ({ model_version: '2.2.0' })),
    ];
    const r = buildDriftReport(rows, [], cfg({ reference: { kind: 'first', studies: 30, from: '', to: '' } }));
    expect(r.variables.find((v) => v.variable === 'contrast')!.bins).toEqual([
      { label: 'none', reference: 10, current: 30 },
      { label: 'contrast', reference: 10, current: 0 },
      { label: 'unknown', reference: 10, current: 0 },
    ]);
    expect(r.warnings[0]).toMatch(/different model versions \(reference 2\.1\.0, current 2\.2\.0\)/);
  });
});

describe('agreement with the radiologists', () => {
  const rows = [...block(40, '2026-01-10'), ...block(40, '2026-02-10')];
  const ref = rows.slice(0, 40);
  const cur = rows.slice(40);
  const c = cfg({ reference: { kind: 'first', studies: 40, from: '', to: '' }, current: { kind: 'last', studies: 40, days: 30 } });

  it('falls when Newcombe’s interval of current − reference lies below zero (recomputed from the Wilson formula)', () => {
    const answers = [...ref.slice(0, 20).map((r, i) => answer(r, i < 19)), ...cur.slice(0, 20).map((r, i) => answer(r, i < 12))];
    const r = buildDriftReport(rows, answers, c);
    expect(r.agreement.reference).toMatchObject({ k: 19, n: 20 });
    expect(r.agreement.current).toMatchObject({ k: 12, n: 20 });
    // Newcombe (1998) method 10 by hand: d ± sqrt of the squared distances to the Wilson bounds.
    const z = 1.959963984540054;
    const wil = (k: number, n: number): [number, number] => {
      const p = k / n;
      const mid = (p + (z * z) / (2 * n)) / (1 + (z * z) / n);
      const half = (z / (1 + (z * z) / n)) * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n));
      return [mid - half, mid + half];
    };
    const [l1, u1] = wil(19, 20);
    const [l2, u2] = wil(12, 20);
    const d = 12 / 20 - 19 / 20;
    expect(r.agreement.difference!.value).toBeCloseTo(d, 12);
    expect(r.agreement.difference!.ci[0]).toBeCloseTo(d - Math.sqrt((0.6 - l2) ** 2 + (u1 - 0.95) ** 2), 12);
    expect(r.agreement.difference!.ci[1]).toBeCloseTo(d + Math.sqrt((u2 - 0.6) ** 2 + (0.95 - l1) ** 2), 12);
    expect(r.agreement.difference!.ci[1]).toBeLessThan(0);
    expect(r.agreement).toMatchObject({ status: 'fallen', alarm: true });
    expect(r.alarms).toContain(
      'Agreement with radiologists fell: 60 % (12/20) in the current window against 95 % (19/20) in the reference',
    );
    // The latest answer per study and radiologist counts: changing one's mind replaces the answer.
    const changed = buildDriftReport(rows, [...answers, answer(cur[19]!, true)], c);
    expect(changed.agreement.current).toMatchObject({ k: 13, n: 20 });
  });

  it('a small drop within chance does not fall; too few answers say so', () => {
    const answers = [...ref.slice(0, 20).map((r, i) => answer(r, i < 18)), ...cur.slice(0, 20).map((r, i) => answer(r, i < 16))];
    expect(buildDriftReport(rows, answers, c).agreement).toMatchObject({ status: 'ok', alarm: false });
    expect(buildDriftReport(rows, answers.slice(0, 30), c).agreement).toMatchObject({ status: 'not-enough-answers', alarm: false });
    expect(newcombeDifference(wilson(0, 0), wilson(1, 2))).toBeNull();
  });

  it('with a floor: falls when the current Wilson upper bound is below it', () => {
    const answers = cur.slice(0, 20).map((r, i) => answer(r, i < 14)); // 70 %: Wilson 95 % upper bound ≈ 0.855
    expect(wilson(14, 20).ci![1]).toBeCloseTo(0.8546, 3);
    const fl = (floor: number) => buildDriftReport(rows, answers, { ...c, agreement: { floor, minAnswers: 20 } }).agreement;
    expect(fl(0.9)).toMatchObject({ status: 'fallen', alarm: true, floor: 0.9 });
    expect(fl(0.8)).toMatchObject({ status: 'ok', alarm: false });
  });
});
