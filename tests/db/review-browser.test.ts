/**
 * The radiologist's page in a real browser (Debian's chromium through playwright-core), SQLite and
 * PostgreSQL: keyboard only (d = disagree, 1 = covid-pattern) answers the first study waiting, the
 * answer lands in the store with the user and moves the report; the page goes on to the next study.
 * The exported HTML report, opened from disk, draws the ROC and calibration pictures.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validationRoutes } from '../../src/admin/validation-routes.js';
import { migrateToLatest, openStore } from '../../src/db/database.js';
import { StoreHandle } from '../../src/db/handle.js';
import { ResultsDb } from '../../src/db/results-db.js';
import { resultRow } from '../../src/db/result-row.js';
import type { ValidationReport } from '../../src/validation/report.js';
import { CHROMIUM_ARGS } from '../admin/browser.js';
import { createTestStore, ENGINES, expectReportPictures, fakeRecord, type TestStore } from './helpers.js';

describe.each(ENGINES)('review page in chromium (%s)', (engine) => {
  let ts: TestStore;
  let app: FastifyInstance;
  let handle: StoreHandle;
  let base = '';

  beforeAll(async () => {
    ts = await createTestStore(engine);
    handle = new StoreHandle(async () => {
      const conn = openStore(ts.url);
      await migrateToLatest(conn);
      return new ResultsDb(conn);
    });
    const db = await handle.get();
    await db.saveResult(resultRow(fakeRecord('1.2.50', '1.2.50.1', 0.2, { finishedAt: '2026-12-07T09:00:00.000Z' }), null));
    await db.saveResult(resultRow(fakeRecord('1.2.51', '1.2.51.1', 0.9, { finishedAt: '2026-12-07T09:05:00.000Z' }), null));
    await db.saveResult(resultRow(fakeRecord('1.2.52', '1.2.52.1', 0.3, { finishedAt: '2026-12-07T09:06:00.000Z' }), null));
    await db.importLabels(
      [
        { line: 2, studyInstanceUid: '1.2.51', label: 'covid-pattern' },
        { line: 3, studyInstanceUid: '1.2.52', label: 'normal' },
      ],
      'importer',
      {},
    );
    app = Fastify();
    await app.register(validationRoutes, { store: handle, identify: () => ({ name: 'dr.kim', role: 'radiologist' }) });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const addr = app.server.address();
    base = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  });
  afterAll(async () => {
    await app?.close();
    await handle?.close();
    await ts?.drop();
  });

  it('answers with the keyboard; the answer lands in the store and moves the report; the HTML export draws its pictures', async () => {
    const before = (await (await fetch(`${base}/api/validation`)).json()) as ValidationReport;
    expect(before.counts).toMatchObject({ cases: 2, positives: 1, negatives: 1 });
    const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS, headless: true });
    try {
      const page = await browser.newPage();
      await page.goto(`${base}/admin/review`);
      // The oldest study without a reference comes first.
      expect(await page.locator('h1').innerText()).toContain('1.2.50');
      expect(await page.locator('#category').innerText()).toBe('unlikely');
      await page.keyboard.press('d');
      expect(await page.locator('input[name=agree][value=no]').isChecked()).toBe(true);
      await Promise.all([page.waitForURL(/msg=/), page.keyboard.press('1')]);
      expect(await page.locator('#flash').innerText()).toContain('Saved covid-pattern for 1.2.50');
      // Nothing else waits: the page says so.
      expect(await page.locator('#review-empty').count()).toBe(1);

      const db = await handle.get();
      const fb = await db.feedbackOf('1.2.50');
      expect(fb).toHaveLength(1);
      expect(fb[0]).toMatchObject({ label: 'covid-pattern', agree: 0, user_name: 'dr.kim', source: 'dashboard' });
      expect((await db.listAudit())[0]).toMatchObject({ action: 'feedback', user_name: 'dr.kim', study_instance_uid: '1.2.50' });
      const after = (await (await fetch(`${base}/api/validation`)).json()) as ValidationReport;
      expect(after.counts).toMatchObject({ cases: 3, positives: 2, negatives: 1 });
      expect(after.operatingPoints[0]!.confusion).toEqual({ tp: 1, fp: 0, tn: 1, fn: 1 });

      // The exported report opens from disk (no server) and shows both pictures.
      const file = join(mkdtempSync(join(tmpdir(), 'mlsam-report-')), 'report.html');
      writeFileSync(file, await (await fetch(`${base}/api/validation.html`)).text());
      const requests = await expectReportPictures(page, file);
      expect(await page.locator('#auc').innerText()).toBe('0.500'); // positives 0.9 and 0.2 against one negative at 0.3
      expect(requests).toEqual([]);
    } finally {
      await browser.close();
    }
  });
});
