/**
 * The drift watch end to end on both engines: results and feedback written through the store's
 * API (ResultsDb.saveResult of resultRow(record, scanner attributes), ResultsDb.addFeedback), the
 * admin role running in this process against real Redis and the real database, and everything
 * read over HTTP. A reference window of 40 studies; then 40 studies with the same input mix (no
 * alarm, no banner); then 40 from a new scanner and kernel, thicker slices, lower kVp, higher
 * scores and opacity, with radiologists disagreeing: the PSI gauges leave their band (checked
 * against the PSI recomputed here from the inserted mix), /metrics says so, /api/drift names the
 * alarms and every dashboard page carries the banner.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config/schema.js';
import type { SeriesOpacity } from '../../src/contracts/result-record.js';
import type { AcquisitionAttributes } from '../../src/dicom/decode/acquisition.js';
import { openResultsDb } from '../../src/db/open.js';
import { resultRow } from '../../src/db/result-row.js';
import type { ResultsDb } from '../../src/db/results-db.js';
import type { DriftReport } from '../../src/drift/report.js';
import { createLogger } from '../../src/log.js';
import { AdminRole } from '../../src/node/admin-role.js';
import { registerDriftGauges } from '../../src/admin/drift-metrics.js';
import { StoreHandle } from '../../src/db/handle.js';
import { DriftWatch } from '../../src/drift/watch.js';
import { Registry } from 'prom-client';
import { http } from '../admin/helpers.js';
import { cleanup, testConfig, waitFor } from '../queue/helpers.js';
import { createTestStore, ENGINES, fakeRecord, type TestStore } from './helpers.js';

const AUTH: [string, string] = ['ops', 'drift-secret-1'];

interface Mix {
  manufacturer: string;
  kernel: string;
  thickness: number;
  kvp: number;
  contrast: string | null;
}

const measure = (lungMl: number, pct: number) => ({
  lungMl,
  opacityMl: (lungMl * pct) / 100,
  highOpacityMl: (lungMl * pct) / 400,
  percentOpacity: pct,
  percentHighOpacity: pct / 4,
});
const opacity = (pct: number): SeriesOpacity => ({
  method: 'hu-threshold-v1',
  opacityHu: [-750, -300],
  highOpacityHu: [-300, 100],
  total: measure(4000, pct),
  left: measure(1900, pct),
  right: measure(2100, pct),
});

/** Study i of a block: its scanner from `mixOf`, its score and opacity from a fixed sequence. */
async function writeBlock(
  db: ResultsDb,
  block: number,
  n: number,
  mixOf: (i: number) => Mix,
  scoreOf: (i: number) => number,
  opacityOf: (i: number) => number,
): Promise<string[]> {
  const studies: string[] = [];
  for (let i = 0; i < n; i++) {
    const study = `1.2.826.0.1.77.${block}.${i + 1}`;
    const at = new Date(Date.UTC(2026, 10, 1 + block, 8, 0, i)).toISOString();
    const m = mixOf(i);
    const attrs: AcquisitionAttributes = {
      manufacturer: m.manufacturer,
      manufacturerModel: 'model',
      kernel: m.kernel,
      sliceThicknessMm: m.thickness,
      kvp: m.kvp,
      contrast: m.contrast,
    };
    const record = fakeRecord(study, `${study}.1`, scoreOf(i), { startedAt: at, finishedAt: at, opacity: opacity(opacityOf(i)) });
    await db.saveResult(resultRow(record, attrs));
    studies.push(study);
  }
  return studies;
}

// Reference and "same" blocks: 30 SIEMENS B30f 1 mm 120 kV, 10 SIEMENS B70f 1 mm 100 kV; every 4th with contrast.
const usual = (i: number): Mix =>
  i % 4 === 3
    ? { manufacturer: 'SIEMENS', kernel: 'B70f', thickness: 1, kvp: 100, contrast: 'IOMEPROL' }
    : { manufacturer: 'SIEMENS', kernel: 'B30f', thickness: 1, kvp: 120, contrast: i % 4 === 0 ? 'IOMEPROL' : '' };
// The shifted block: 10 as before, 30 from a new scanner with a new kernel, 5 mm slices, 80 kV, no contrast element.
const shifted = (i: number): Mix =>
  i < 10 ? usual(i) : { manufacturer: 'GE MEDICAL SYSTEMS', kernel: 'LUNG', thickness: 5, kvp: 80, contrast: null };
/** A fixed, spread sequence of scores in (0, 1) (a low-discrepancy walk), offset per block. */
const spread = (i: number, seed: number): number => ((i * 0.6180339887 + seed) % 1) * 0.9 + 0.05;

/** PSI from the formula, over the categories of both windows. */
function psiByHand(ref: string[], cur: string[]): number {
  let s = 0;
  for (const c of new Set([...ref, ...cur])) {
    const e = ref.filter((x) => x === c).length / ref.length || 1e-4;
    const a = cur.filter((x) => x === c).length / cur.length || 1e-4;
    s += (a - e) * Math.log(a / e);
  }
  return s;
}

function gauge(metrics: string, name: string, labels: string): number | undefined {
  const line = metrics.split('\n').find((l) => l.startsWith(`${name}{${labels}}`) || (labels === '' && l.startsWith(`${name} `)));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

describe.each(ENGINES)('drift watch on %s', (engine) => {
  let store: TestStore;
  let config: Config;
  let db: ResultsDb;
  let role: AdminRole;
  let get: ReturnType<typeof http>;
  const refStudies: string[] = [];

  const drift = async (): Promise<DriftReport> => (await (await get('/api/drift')).json()) as DriftReport;
  /** Waits for a recomputation that sees `n` current studies (drift.refreshSeconds is 1 here). */
  const driftWith = (n: number): Promise<DriftReport> =>
    waitFor(
      async () => {
        const r = await drift();
        return r.windows.current.studies === n ? r : undefined;
      },
      20_000,
      `a drift report with ${n} current studies`,
    );

  beforeAll(async () => {
    store = await createTestStore(engine);
    config = await testConfig(`drift-${engine}`, {
      http: { host: '127.0.0.1', port: 0, username: AUTH[0], password: AUTH[1] },
      storage: { url: store.url },
      drift: {
        reference: { kind: 'first', studies: 40 },
        current: { kind: 'last', studies: 40 },
        minStudies: 30,
        refreshSeconds: 1,
        agreement: { floor: null, minAnswers: 15 },
      },
    });
    db = await openResultsDb(config);
    refStudies.push(
      ...(await writeBlock(
        db,
        1,
        40,
        usual,
        (i) => spread(i, 0.1),
        (i) => spread(i, 0.3) * 20,
      )),
    );
    // Radiologists agree with 18 of 20 reference answers.
    for (let i = 0; i < 20; i++)
      await db.addFeedback({ studyInstanceUid: refStudies[i]!, label: 'normal', agree: i % 10 !== 0, user: 'dr.kim', source: 'dashboard' });
    role = new AdminRole({ config, logger: createLogger('silent') });
    await role.start();
    get = http(role.address!.port, AUTH);
  }, 60_000);

  afterAll(async () => {
    await role?.stop();
    await db?.conn.close();
    await store?.drop();
    if (config) await cleanup(config);
  });

  it('with only the reference: not enough studies, no figure, no alarm, no banner', async () => {
    const r = await drift();
    expect(r.notice).toMatch(/NOT FOR DIAGNOSTIC USE/);
    expect(r.windows.reference.studies).toBe(40);
    expect(r.windows.current.studies).toBe(0);
    expect(r.variables.every((v) => v.level === 'not-enough-studies' && v.psi === null && !v.alarm)).toBe(true);
    expect(r.variables[0]!.note).toMatch(/not enough studies: 40 in the reference and 0 in the current window \(needs ≥ 30/);
    expect(r.agreement.status).toBe('not-enough-answers');
    expect(r.alarms).toEqual([]);
    const m = await (await get('/metrics')).text();
    expect(gauge(m, 'mlsam_drift_level', 'variable="kernel"')).toBe(-1);
    expect(gauge(m, 'mlsam_drift_psi', 'variable="kernel"')).toBeUndefined();
    expect(gauge(m, 'mlsam_drift_window_studies', 'window="reference"')).toBe(40);
    expect(gauge(m, 'mlsam_feedback_agreement_rate', 'window="reference"')).toBeCloseTo(0.9, 12);
    const page = await (await get('/admin')).text();
    expect(page).toContain('<a href="/admin/drift">Drift</a>');
    expect(page).not.toContain('drift-banner');
  });

  it('the same mix after it: figures, all stable, no banner', async () => {
    await writeBlock(
      db,
      2,
      40,
      usual,
      (i) => spread(i, 0.45),
      (i) => spread(i, 0.75) * 20,
    );
    const r = await driftWith(40);
    const kernel = r.variables.find((v) => v.variable === 'kernel')!;
    expect(kernel.psi).toBeCloseTo(0, 12);
    expect(r.variables.map((v) => [v.variable, v.level])).toEqual([
      ['manufacturer', 'stable'],
      ['kernel', 'stable'],
      ['thickness', 'stable'],
      ['kvp', 'stable'],
      ['contrast', 'stable'],
      ['score', 'stable'],
      ['opacity', 'stable'],
    ]);
    expect(r.variables.find((v) => v.variable === 'score')!.ks!.method).toBe('exact');
    expect(r.alarms).toEqual([]);
    expect(await (await get('/admin/studies')).text()).not.toContain('drift-banner');
  });

  it('a new scanner, kernel, thickness and kVp with higher scores, and disagreeing radiologists: gauges above the band, alarms, the banner on every page', async () => {
    const cur = await writeBlock(
      db,
      3,
      40,
      shifted,
      (i) => (i < 10 ? spread(i, 0.2) : 0.55 + spread(i, 0.2) * 0.45),
      (i) => (i < 10 ? spread(i, 0.6) * 20 : 15 + spread(i, 0.6) * 30),
    );
    // Radiologists agree with 7 of 20 current answers.
    for (let i = 0; i < 20; i++)
      await db.addFeedback({ studyInstanceUid: cur[i]!, label: 'covid-pattern', agree: i % 3 === 0, user: 'dr.kim', source: 'api' });
    const r = await waitFor(
      async () => {
        const x = await drift();
        return x.variables.some((v) => v.alarm) && x.agreement.current.n === 20 ? x : undefined;
      },
      20_000,
      'the drift alarm',
    );
    expect(r.windows.current.studies).toBe(40);
    const byName = new Map(r.variables.map((v) => [v.variable, v]));
    const refMix = Array.from({ length: 40 }, (_, i) => usual(i));
    const curMix = Array.from({ length: 40 }, (_, i) => shifted(i));
    // The PSI of the inputs, recomputed from the inserted mix.
    expect(byName.get('kernel')!.psi).toBeCloseTo(
      psiByHand(
        refMix.map((m) => m.kernel),
        curMix.map((m) => m.kernel),
      ),
      10,
    );
    expect(byName.get('manufacturer')!.psi).toBeCloseTo(
      psiByHand(
        refMix.map((m) => m.manufacturer),
        curMix.map((m) => m.manufacturer),
      ),
      10,
    );
    expect(byName.get('contrast')!.psi).toBeCloseTo(
      psiByHand(
        refMix.map((m) => (m.contrast === null ? 'unknown' : m.contrast === '' ? 'none' : 'contrast')),
        curMix.map((m) => (m.contrast === null ? 'unknown' : m.contrast === '' ? 'none' : 'contrast')),
      ),
      10,
    );
    for (const v of ['manufacturer', 'kernel', 'thickness', 'kvp', 'contrast', 'score', 'opacity'] as const) {
      expect(byName.get(v)!.level, v).toBe('shift');
      expect(byName.get(v)!.alarm, v).toBe(true);
    }
    expect(byName.get('score')!.ks!.pValue).toBeLessThan(0.01);
    expect(r.agreement).toMatchObject({ status: 'fallen', alarm: true, current: { k: 7, n: 20 }, reference: { k: 18, n: 20 } });
    expect(r.agreement.difference!.ci[1]).toBeLessThan(0);
    expect(r.alarms.some((a) => /^Reconstruction kernel: PSI \d/.test(a))).toBe(true);
    expect(r.alarms.some((a) => /^Agreement with radiologists fell: 35 % \(7\/20\)/.test(a))).toBe(true);

    const m = await (await get('/metrics')).text();
    expect(gauge(m, 'mlsam_drift_psi', 'variable="kernel"')).toBeGreaterThan(0.25);
    expect(gauge(m, 'mlsam_drift_psi', 'variable="kernel"')).toBeCloseTo(byName.get('kernel')!.psi!, 10);
    expect(gauge(m, 'mlsam_drift_level', 'variable="kernel"')).toBe(2);
    expect(gauge(m, 'mlsam_drift_alarm', 'variable="kernel"')).toBe(1);
    expect(gauge(m, 'mlsam_drift_ks', 'variable="score"')).toBeCloseTo(byName.get('score')!.ks!.statistic, 10);
    expect(gauge(m, 'mlsam_drift_alarm', 'variable="agreement"')).toBe(1);
    expect(gauge(m, 'mlsam_feedback_agreement_rate', 'window="current"')).toBeCloseTo(0.35, 12);
    expect(gauge(m, 'mlsam_drift_up', '')).toBe(1);

    for (const path of ['/admin', '/admin/studies', '/admin/validation', '/admin/review', '/admin/associations', '/admin/drift']) {
      const res = await get(path);
      expect(res.status, path).toBe(200);
      const page = await res.text();
      expect(page, path).toMatch(/<main><div id="drift-banner" role="alert"/);
      expect(page, path).toContain('Reconstruction kernel: PSI');
      expect(page, path).toContain('Agreement with radiologists fell');
    }
    // Not inside JSON, downloads or Bull Board.
    expect(await (await get('/api/validation.html')).text()).not.toContain('drift-banner');
    const driftPage = await (await get('/admin/drift')).text();
    expect(driftPage).toMatch(/<tr data-variable="kernel" data-level="shift">/);
    expect(driftPage).toContain('Newcombe 95 % CI');
  });

  it('DriftWatch computes once per refreshSeconds however often it is asked (scrapes, pages, API share it)', async () => {
    const handle = new StoreHandle(async () => db);
    const watch = new DriftWatch({ store: handle, config: { ...config.drift, refreshSeconds: 60 } });
    const registry = new Registry();
    registerDriftGauges(registry, watch);
    await Promise.all([watch.report(), watch.report(), registry.metrics()]);
    for (let i = 0; i < 5; i++) {
      await watch.report();
      await registry.metrics();
    }
    expect(watch.computations).toBe(1);
    expect(await registry.metrics()).toMatch(/mlsam_drift_psi\{variable="kernel"\} \d/);
    await watch.refresh();
    expect(watch.computations).toBe(2);
  });

  it('scrapes read the cached figures: the store is read at most once per refreshSeconds', async () => {
    const stamps: number[] = [];
    for (let i = 0; i < 3; i++) stamps.push(gauge(await (await get('/metrics')).text(), 'mlsam_drift_computed_timestamp_seconds', '')!);
    // Three scrapes back to back share one or two computations (refreshSeconds 1), never three.
    expect(new Set(stamps).size).toBeLessThanOrEqual(2);
  });
});
