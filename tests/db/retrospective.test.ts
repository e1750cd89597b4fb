/**
 * A retrospective local validation, end to end, on SQLite and on PostgreSQL: `mlsam serve` receives
 * the three real COVID-CT-MD series over DICOM (storescu), scores them with the shipped model and
 * writes every result to the store with the scanner's attributes; `mlsam validation import` reads
 * the labels (one bad line, reported); the report's counts and metrics are recomputed here from
 * the cases; that report's HTML export, opened in chromium, draws the ROC and calibration
 * pictures. Then the node restarts with Redis emptied of its keys (as a Redis that keeps nothing
 * on disk would come back): results and labels are still there, and a feedback moves the report.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config/schema.js';
import { readAcquisitionAttributes } from '../../src/dicom/decode/acquisition.js';
import { readDicomHeaderFile } from '../../src/dicom/decode/index.js';
import type { ValidationReport } from '../../src/validation/report.js';
import { CHROMIUM_ARGS } from '../admin/browser.js';
import { DaemonProcess, envOf, http } from '../admin/helpers.js';
import { run as dcmtk } from '../helpers/dcmtk.js';
import { CTMD } from '../helpers/ctmd.js';
import { MLSAM_MAIN } from '../helpers/process.js';
import { cleanup, dropPrefix, testConfig, waitFor } from '../queue/helpers.js';
import { createTestStore, ENGINES, expectReportPictures, type TestStore } from './helpers.js';

const run = promisify(execFile);
const AUTH: [string, string] = ['admin', 'retro-secret'];
const SERIES = [
  { name: 'P001', label: 'covid-pattern' },
  { name: 'cap001', label: 'other-opacity' },
  { name: 'normal001', label: 'normal' },
] as const;

describe.each(ENGINES)('retrospective validation of COVID-CT-MD through DICOM (%s)', (engine) => {
  let ts: TestStore;
  let config: Config;
  let daemon: DaemonProcess;
  let env: Record<string, string>;
  let get: ReturnType<typeof http>;
  const studies: { name: string; label: string; study: string; attrs: Awaited<ReturnType<typeof readAcquisitionAttributes>> }[] = [];
  const cleanups: (() => Promise<unknown>)[] = [];

  beforeAll(async () => {
    ts = await createTestStore(engine);
    cleanups.push(() => ts.drop());
    config = await testConfig(`retro-${engine}`, {
      series: { quietPeriodSeconds: 2, routing: { minSlices: 10 } },
      http: { username: AUTH[0], password: AUTH[1] },
    });
    cleanups.push(() => cleanup(config));
    // SQLite: the default store (in the spool); PostgreSQL: a database of this run.
    env = envOf(config, { MLSAM_WORKER__CONCURRENCY: '1', ...(engine === 'postgres' ? { MLSAM_STORAGE__URL: ts.url } : {}) });
    daemon = new DaemonProcess(env, 'serve');
    cleanups.push(() => daemon.stop('SIGKILL'));
    await daemon.start();
    get = http(daemon.httpPort, AUTH);
    for (const s of SERIES) {
      const dir = join(CTMD, s.name);
      const files = (await readdir(dir)).filter((f) => !f.startsWith('.')).map((f) => join(dir, f));
      const header = await readDicomHeaderFile(files[0]!);
      studies.push({ name: s.name, label: s.label, study: header.studyInstanceUid!, attrs: await readAcquisitionAttributes(files[0]!) });
      // -xs: JPEG Lossless, the files' own syntax (sent as published).
      const sent = await dcmtk('storescu', [
        '-v',
        '-xs',
        '-aet',
        'RETROSCU',
        '-aec',
        'MLSAM',
        '127.0.0.1',
        String(daemon.dicomPort),
        ...files,
      ]);
      const output = sent.stdout + sent.stderr;
      expect((output.match(/Received Store Response \(Success\)/g) ?? []).length, output.slice(-2000)).toBe(files.length);
    }
    await waitFor(
      async () => {
        const r = await get('/api/validation');
        if (r.status !== 200) return undefined;
        const rep = (await r.json()) as ValidationReport;
        return rep.counts.scoredStudies === SERIES.length ? rep : undefined;
      },
      400_000,
      'three scored studies in the store',
      1000,
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n--- daemon log (tail) ---\n${daemon.stderr.slice(-4000)}`);
    });
  }, 480_000);

  afterAll(async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  });

  it('imports the labels from the CLI and reports metrics that recompute from the cases', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mlsam-labels-'));
    const csv = join(dir, 'labels.csv');
    await writeFile(
      csv,
      `${['StudyInstanceUID,label', ...studies.map((s) => `${s.study},${s.label}`), `${studies[0]!.study},probable`].join('\n')}\n`,
    );
    const cli = await run(process.execPath, [MLSAM_MAIN, 'validation', 'import', csv, '--user', 'dr.retro'], {
      env: { ...process.env, ...env },
    }).catch((e: { code: number; stdout: string; stderr: string }) => e);
    await rm(dir, { recursive: true, force: true });
    expect((cli as { code?: number }).code).toBe(1); // one bad line
    expect(cli.stdout).toMatch(/^imported 3 label\(s\)/);
    expect(cli.stderr).toMatch(/labels\.csv:5: label "probable" is not one of covid-pattern, other-opacity, normal, not-assessable/);

    const r = (await (await get('/api/validation')).json()) as ValidationReport;
    expect(r.counts).toMatchObject({ scoredStudies: 3, labelledStudies: 3, cases: 3, positives: 1, negatives: 2, labelledNotScored: 0 });
    // Each case carries its scanner's attributes, as the DICOM headers have them.
    for (const s of studies) {
      const c = r.cases.find((x) => x.studyInstanceUid === s.study)!;
      expect(c.label).toBe(s.label);
      expect(c.labelledBy).toBe('dr.retro');
      expect([c.manufacturer, c.kernel, c.kvp]).toEqual([s.attrs.manufacturer, s.attrs.kernel, s.attrs.kvp]);
    }
    // Recomputed from the cases' scores: the confusion table at the operating threshold and the AUC by pair counting.
    const pos = r.cases.filter((c) => c.truth === 1);
    const neg = r.cases.filter((c) => c.truth === 0);
    const t = r.operatingPoints.find((o) => o.name === 'threshold')!;
    expect(t.confusion).toEqual({
      tp: pos.filter((c) => c.score >= c.threshold).length,
      fn: pos.filter((c) => c.score < c.threshold).length,
      fp: neg.filter((c) => c.score >= c.threshold).length,
      tn: neg.filter((c) => c.score < c.threshold).length,
    });
    let wins = 0;
    for (const p of pos) for (const n of neg) wins += p.score > n.score ? 1 : p.score === n.score ? 0.5 : 0;
    expect(r.auc.value).toBeCloseTo(wins / (pos.length * neg.length), 12);
    // The model card's ordering on these series: P001 > cap001 > normal001.
    const score = (name: string) => r.cases.find((c) => c.studyInstanceUid === studies.find((s) => s.name === name)!.study)!.score;
    expect(score('P001')).toBeGreaterThan(score('cap001'));
    expect(score('cap001')).toBeGreaterThan(score('normal001'));
    // Three cases: every subgroup is flagged too small.
    expect(r.subgroups.every((g) => g.groups.every((x) => x.warning))).toBe(true);
    // This report's HTML export, opened from disk in chromium (no server): the ROC and calibration pictures.
    const out = await mkdtemp(join(tmpdir(), 'mlsam-retro-report-'));
    const file = join(out, 'report.html');
    await writeFile(file, await (await get('/api/validation.html')).text());
    const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS, headless: true });
    try {
      const page = await browser.newPage();
      const fetched = await expectReportPictures(page, file);
      expect(await page.locator('#auc').innerText()).toBe(r.auc.value === null ? '—' : r.auc.value.toFixed(3));
      expect(fetched).toEqual([]);
    } finally {
      await browser.close();
      await rm(out, { recursive: true, force: true });
    }
    const ready = (await (await get('/readyz')).json()) as { checks: { database?: { ok: boolean; engine?: string } } };
    expect(ready.checks.database).toMatchObject({ ok: true, engine });
  });

  it('loses no result or label when the node restarts and Redis comes back empty; feedback still moves the report', {
    timeout: 120_000,
  }, async () => {
    const before = (await (await get('/api/validation')).json()) as ValidationReport;
    expect(await daemon.stop('SIGTERM')).toBe(0);
    await dropPrefix(config.redis.url, config.redis.keyPrefix);
    daemon = new DaemonProcess(env, 'serve');
    await daemon.start();
    get = http(daemon.httpPort, AUTH);
    const after = (await (await get('/api/validation')).json()) as ValidationReport;
    expect(after.counts).toEqual(before.counts);
    expect(after.cases).toEqual(before.cases);
    const normal = studies.find((s) => s.name === 'normal001')!;
    const fb = await get(`/api/studies/${normal.study}/feedback`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ label: 'not-assessable', comment: 'motion' }),
    });
    expect(fb.status).toBe(201);
    const moved = (await (await get('/api/validation')).json()) as ValidationReport;
    expect(moved.counts).toMatchObject({ cases: 2, negatives: 1, notAssessable: 1 });
  });
});
