/**
 * Feedback, label import and the validation report over HTTP (the admin plugin on a real fastify
 * server, inject()), on both engines. The report's counts and metrics are recomputed here
 * independently from the seeded scores and labels: confusion counts by hand, Wilson intervals from
 * the closed formula, AUC by trapezoids under the ROC, its DeLong interval by midranks (Sun & Xu).
 */
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validationRoutes, type Identity } from '../../src/admin/validation-routes.js';
import { migrateToLatest, openStore } from '../../src/db/database.js';
import { StoreHandle } from '../../src/db/handle.js';
import { ResultsDb } from '../../src/db/results-db.js';
import { resultRow } from '../../src/db/result-row.js';
import type { ValidationReport } from '../../src/validation/report.js';
import { createTestStore, ENGINES, fakeRecord, type TestStore } from './helpers.js';

// 24 studies: score, reference label, scanner.
const SCANNERS = ['SIEMENS', 'GE MEDICAL SYSTEMS', 'TOSHIBA'] as const;
const STUDIES = Array.from({ length: 24 }, (_, i) => {
  const positive = i % 3 !== 0; // 16 positive, 8 negative
  // Overlapping scores with a tie, so that AUC < 1 and ties matter.
  const score = positive ? [0.92, 0.85, 0.7, 0.66, 0.58, 0.45, 0.3, 0.62][i % 8]! : [0.12, 0.35, 0.62, 0.2, 0.51, 0.05, 0.4, 0.28][i % 8]!;
  return {
    study: `1.2.826.0.1.${100 + i}`,
    score,
    label: positive ? 'covid-pattern' : i % 2 ? 'normal' : 'other-opacity',
    scanner: SCANNERS[i % 3]!,
    thickness: i < 12 ? 1 : 5,
  };
});

const wilsonRef = (k: number, n: number): [number, number] => {
  const z = 1.959963984540054;
  const p = k / n;
  const a = p + (z * z) / (2 * n);
  const b = z * Math.sqrt((p * (1 - p) + (z * z) / (4 * n)) / n);
  const d = 1 + (z * z) / n;
  return [(a - b) / d, (a + b) / d];
};

function midranks(x: number[]): number[] {
  const idx = x.map((v, i) => [v, i] as const).sort((a, b) => a[0] - b[0]);
  const r = new Array<number>(x.length);
  for (let i = 0; i < idx.length; ) {
    let j = i;
    while (j < idx.length && idx[j]![0] === idx[i]![0]) j++;
    for (let k = i; k < j; k++) r[idx[k]![1]] = (i + j + 1) / 2;
    i = j;
  }
  return r;
}

/** Sun & Xu's fast DeLong: AUC and its variance from midranks. */
function delongRef(pos: number[], neg: number[]): { auc: number; se: number } {
  const m = pos.length;
  const n = neg.length;
  const tz = midranks([...pos, ...neg]);
  const tx = midranks(pos);
  const ty = midranks(neg);
  const auc = (tz.slice(0, m).reduce((a, b) => a + b, 0) / m - (m + 1) / 2) / n;
  const v01 = pos.map((_, i) => (tz[i]! - tx[i]!) / n);
  const v10 = neg.map((_, j) => 1 - (tz[m + j]! - ty[j]!) / m);
  const variance = (v: number[]) => {
    const mu = v.reduce((a, b) => a + b, 0) / v.length;
    return v.reduce((s, x) => s + (x - mu) ** 2, 0) / (v.length - 1);
  };
  return { auc, se: Math.sqrt(variance(v01) / m + variance(v10) / n) };
}

function trapezoidAuc(scores: number[], truth: number[]): number {
  const ts = [...new Set(scores)].sort((a, b) => b - a);
  const P = truth.filter((t) => t === 1).length;
  const N = truth.length - P;
  let prev = [0, 0];
  let area = 0;
  for (const t of ts) {
    const tpr = scores.filter((s, i) => s >= t && truth[i] === 1).length / P;
    const fpr = scores.filter((s, i) => s >= t && truth[i] === 0).length / N;
    area += ((fpr - prev[0]!) * (tpr + prev[1]!)) / 2;
    prev = [fpr, tpr];
  }
  return area;
}

describe.each(ENGINES)('feedback and validation API (%s)', (engine) => {
  let ts: TestStore;
  let app: FastifyInstance;
  let handle: StoreHandle;
  const who: { current: Identity } = { current: { name: 'dr.lee', role: 'radiologist' } };

  beforeAll(async () => {
    ts = await createTestStore(engine);
    const open = async () => {
      const conn = openStore(ts.url);
      await migrateToLatest(conn);
      return new ResultsDb(conn);
    };
    handle = new StoreHandle(open);
    const db = await handle.get();
    for (const s of STUDIES) {
      await db.saveResult(
        resultRow(fakeRecord(s.study, `${s.study}.1`, s.score), {
          manufacturer: s.scanner,
          manufacturerModel: null,
          kernel: s.thickness === 1 ? 'B70f' : 'STANDARD',
          sliceThicknessMm: s.thickness,
          kvp: 120,
          contrast: null,
        }),
      );
    }
    // A study with a second, lower-scoring series: the study score is its highest.
    await db.saveResult(resultRow(fakeRecord(STUDIES[1]!.study, `${STUDIES[1]!.study}.2`, 0.01), null));
    app = Fastify();
    await app.register(validationRoutes, { store: handle, identify: () => who.current });
    await app.ready();
  });
  afterAll(async () => {
    await app?.close();
    await handle?.close();
    await ts?.drop();
  });

  it('feedback: 201 with the user, 404 for an unknown study, 400 naming the allowed labels, 403 for a viewer', async () => {
    const ok = await app.inject({
      method: 'POST',
      url: `/api/studies/${STUDIES[0]!.study}/feedback`,
      payload: { label: 'normal', comment: 'no opacity' },
    });
    expect(ok.statusCode).toBe(201);
    // Score 0.12 → unlikely; 'normal' agrees.
    expect(ok.json()).toMatchObject({ label: 'normal', agree: true, user: 'dr.lee', comment: 'no opacity' });
    const unknown = await app.inject({ method: 'POST', url: '/api/studies/9.9.9/feedback', payload: { label: 'normal' } });
    expect(unknown.statusCode).toBe(404);
    const bad = await app.inject({ method: 'POST', url: `/api/studies/${STUDIES[0]!.study}/feedback`, payload: { label: 'pneumonia' } });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error).toMatch(/label "pneumonia" is not one of covid-pattern, other-opacity, normal, not-assessable/);
    expect(bad.json().allowedLabels).toEqual(['covid-pattern', 'other-opacity', 'normal', 'not-assessable']);
    who.current = { name: 'guest', role: 'viewer' };
    const viewer = await app.inject({ method: 'POST', url: `/api/studies/${STUDIES[0]!.study}/feedback`, payload: { label: 'normal' } });
    expect(viewer.statusCode).toBe(403);
    who.current = { name: 'dr.lee', role: 'radiologist' };
  });

  it('label import: good rows in, bad rows reported by line number', async () => {
    const lines = [
      'StudyInstanceUID,label',
      ...STUDIES.map((s) => `${s.study},${s.label}`),
      'garbage,normal',
      `${STUDIES[2]!.study},pneumonia`,
      '1.2.999,not-assessable',
    ];
    const res = await app.inject({
      method: 'POST',
      url: '/api/validation/labels',
      headers: { 'content-type': 'text/csv' },
      payload: lines.join('\r\n'),
    });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.imported).toBe(25);
    expect(body.errors.map((e: { line: number }) => e.line)).toEqual([26, 27]);
    expect(body.notYetScored).toEqual(['1.2.999']);
    const allBad = await app.inject({
      method: 'POST',
      url: '/api/validation/labels',
      headers: { 'content-type': 'text/csv' },
      payload: 'StudyInstanceUID,label\n1.2,maybe\n',
    });
    expect(allBad.statusCode).toBe(400);
  });

  it('the report agrees with an independent recomputation', async () => {
    const r = (await app.inject({ method: 'GET', url: '/api/validation' })).json() as ValidationReport;
    const truth = STUDIES.map((s) => (s.label === 'covid-pattern' ? 1 : 0));
    const scores = STUDIES.map((s) => s.score);
    const tp = STUDIES.filter((s, i) => s.score >= 0.5 && truth[i] === 1).length;
    const fp = STUDIES.filter((s, i) => s.score >= 0.5 && truth[i] === 0).length;
    const fn = STUDIES.filter((s, i) => s.score < 0.5 && truth[i] === 1).length;
    const tn = STUDIES.filter((s, i) => s.score < 0.5 && truth[i] === 0).length;
    expect(r.counts).toMatchObject({
      cases: 24,
      positives: 16,
      negatives: 8,
      labelledNotScored: 1,
      scoredNotLabelled: 0,
      scoredStudies: 24,
    });
    const t = r.operatingPoints.find((o) => o.name === 'threshold')!;
    expect(t.confusion).toEqual({ tp, fp, tn, fn });
    expect(t.sensitivity.value).toBeCloseTo(tp / (tp + fn), 12);
    expect(t.specificity.value).toBeCloseTo(tn / (tn + fp), 12);
    expect(t.ppv.value).toBeCloseTo(tp / (tp + fp), 12);
    expect(t.npv.value).toBeCloseTo(tn / (tn + fn), 12);
    const [lo, hi] = wilsonRef(tp, tp + fn);
    expect(t.sensitivity.ci![0]).toBeCloseTo(lo, 10);
    expect(t.sensitivity.ci![1]).toBeCloseTo(hi, 10);
    expect(r.auc.value).toBeCloseTo(trapezoidAuc(scores, truth), 12);
    const d = delongRef(
      scores.filter((_, i) => truth[i] === 1),
      scores.filter((_, i) => truth[i] === 0),
    );
    expect(r.auc.value).toBeCloseTo(d.auc, 12);
    expect(r.auc.ci![0]).toBeCloseTo(Math.max(0, d.auc - 1.959963984540054 * d.se), 10);
    expect(r.auc.ci![1]).toBeCloseTo(Math.min(1, d.auc + 1.959963984540054 * d.se), 10);
    // Categories: likely ≥ 0.6, indeterminate 0.4–0.6, unlikely below (fakeRecord's cut-offs).
    const likely = STUDIES.filter((s) => s.score >= 0.6);
    expect(r.byCategory.find((c) => c.category === 'likely')).toMatchObject({
      positives: likely.filter((s) => s.label === 'covid-pattern').length,
      negatives: likely.filter((s) => s.label !== 'covid-pattern').length,
    });
    // Subgroups: 8 per scanner, all flagged too small; thickness bands 12 + 12.
    const byScanner = r.subgroups.find((g) => g.by === 'manufacturer')!.groups;
    expect(byScanner.map((g) => g.n)).toEqual([8, 8, 8]);
    expect(byScanner.every((g) => g.warning?.startsWith('too small'))).toBe(true);
    expect(
      r.subgroups
        .find((g) => g.by === 'thickness')!
        .groups.map((g) => [g.name, g.n])
        .sort(),
    ).toEqual([
      ['> 3 mm', 12],
      ['≤ 1.5 mm', 12],
    ]);
    // The study with a second series kept its highest score.
    expect(r.cases.find((c) => c.studyInstanceUid === STUDIES[1]!.study)!.score).toBe(STUDIES[1]!.score);
    expect(r.roc[0]).toMatchObject({ fpr: 0, tpr: 0 });
    expect(r.roc.at(-1)).toMatchObject({ fpr: 1, tpr: 1 });
  });

  it('feedback moves the report: the latest answer of a study is its reference', async () => {
    const before = (await app.inject({ method: 'GET', url: '/api/validation' })).json() as ValidationReport;
    const s = STUDIES.find((x) => x.label !== 'covid-pattern' && x.score < 0.5)!;
    const res = await app.inject({
      method: 'POST',
      url: `/api/studies/${s.study}/feedback`,
      payload: { label: 'covid-pattern', agree: false },
    });
    expect(res.statusCode).toBe(201);
    const after = (await app.inject({ method: 'GET', url: '/api/validation' })).json() as ValidationReport;
    expect(after.counts.positives).toBe(before.counts.positives + 1);
    expect(after.operatingPoints[0]!.confusion.fn).toBe(before.operatingPoints[0]!.confusion.fn + 1);
  });

  it('exports CSV and a self-contained HTML file with both pictures', async () => {
    const csv = await app.inject({ method: 'GET', url: '/api/validation.csv' });
    expect(csv.headers['content-type']).toMatch(/text\/csv/);
    expect(csv.body.split('\n')[0]).toBe('section,group,metric,value,k,n,ci_low,ci_high');
    expect(csv.body).toMatch(/^operating-point,threshold,sensitivity,/m);
    const html = await app.inject({ method: 'GET', url: '/api/validation.html' });
    expect(html.body).toContain('<svg id="roc"');
    expect(html.body).toContain('<svg id="calibration"');
    expect(html.body).toContain('NOT FOR DIAGNOSTIC USE');
    expect(html.body).not.toMatch(/<script|src="http|href="http/);
  });
});
