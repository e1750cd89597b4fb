/**
 * What a new user tripped over on the dashboard and in the summary chart (issue 26 items 2, 3, 7), in
 * chromium through playwright-core against a real `mlsam admin` and Redis:
 *  - the category shows the band it comes from (a score above the threshold reads "indeterminate (0.35–0.65)");
 *  - slices with too little lung do not dominate the opacity axis (P001's apex slice: 108 mm² of lung, 63.8 %);
 *  - the SR reads as a report (title, sections, numbers), the raw DICOM tree only behind a toggle;
 *  - the inference workers line says what its words are;
 *  - the summary Secondary Capture's subtitle stays inside the image and the threshold label off the curve.
 */
import { join } from 'node:path';
import { Keys } from '../../src/stores/keys.js';
import type { ResultRecord } from '../../src/contracts/result-record.js';
import { seriesListPage } from '../../src/admin/pages.js';
import { chartSvg } from '../../src/results/render.js';
import { seriesBandLine } from '../../src/results/sr.js';
import { howScored } from '../../src/results/common.js';
import type { Config } from '../../src/config/schema.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/dicom-listener.js';
import { cleanup, testConfig } from '../queue/helpers.js';
import { withDashboardPage } from './browser.js';
import { plainRedis, spoolSeries, startAdmin, trackSeries, writeResult, type DaemonProcess, type SeededSeries } from './helpers.js';

let config: Config;
let admin: DaemonProcess;
let s: SeededSeries;
let record: ResultRecord;
const redis = plainRedis('redis://127.0.0.1:6379');
const AUTH: [string, string] = ['admin', 'friction-secret'];
const shot = (name: string): string => join(REPO_ROOT, 'test-artifacts', name);
/** The ineligible apex slice (index 1) reads 63.8 % opaque over a sliver of lung; the eligible ones 0.5–2.4 %. */
const SPIKE = 63.8;

beforeAll(async () => {
  config = await testConfig('admin-friction', { http: { username: AUTH[0], password: AUTH[1] }, destinations: [] });
  s = await spoolSeries(config, 20, { seriesDescription: 'THORAX 1.0 B70f', seriesNumber: 3 });
  await trackSeries(redis, config, s, { status: 'queued' });
  record = await writeResult(redis, config, s, 'scored', { opacity: true, score: 0.533 });
  // As P001 scores: above the threshold, inside the indeterminate band.
  Object.assign(record, { category: 'indeterminate', threshold: 0.5, indeterminateMargin: 0.15 });
  for (const sl of record.slices) {
    if (sl.eligible !== false) sl.opacityPercent = 0.5 + sl.index * 0.1;
  }
  Object.assign(record.slices[1]!, { lungAreaMm2: 108, opacityPercent: SPIKE });
  await redis.set(new Keys(config.redis.keyPrefix).result(s.seriesInstanceUid), JSON.stringify(record));
  ({ admin } = await startAdmin(config, AUTH));
});

afterAll(async () => {
  await admin?.stop();
  if (config) await cleanup(config);
  redis.disconnect();
});

describe('dashboard in chromium (issue 26)', () => {
  it('list and series page: the category with its band; the opacity axis from the eligible slices only; the SR as a report', async () => {
    await withDashboardPage(AUTH, async ({ page, consoleErrors }) => {
      await page.goto(`http://127.0.0.1:${admin.httpPort}/admin`);
      const row = page.locator(`tr[data-series-uid="${s.seriesInstanceUid}"]`);
      await row.waitFor({ timeout: 10_000 });
      expect((await row.innerText()).replace(/\s+/g, ' ')).toContain('0.533 indeterminate (0.35–0.65)');

      await page.goto(`http://127.0.0.1:${admin.httpPort}/admin/series/${s.seriesInstanceUid}`);
      expect(await page.locator('#score-band').innerText()).toBe('0.5330 — indeterminate (0.35–0.65)');
      expect(await page.locator('#bands').innerText()).toContain('unlikely 0.35 or below, indeterminate 0.35–0.65, likely 0.65 or above');

      const chart = page.locator('#chart[data-ready="1"]');
      await chart.waitFor({ timeout: 10_000 });
      const eligibleMax = Math.max(...record.slices.filter((x) => x.eligible !== false).map((x) => x.opacityPercent ?? 0));
      const axisMax = Number(await chart.getAttribute('data-opacity-max'));
      expect(axisMax).toBeGreaterThanOrEqual(eligibleMax);
      expect(axisMax).toBeLessThan(SPIKE / 4);
      // The opacity curve skips the ineligible slices; they are grey dots of their own series.
      const series = (await page.evaluate(`(() => { const u = document.getElementById('chart').mlsamChart;
        return u.series.map((s, i) => ({ label: s.label, scale: s.scale, data: u.data[i] })); })()`)) as Array<{
        label: string;
        scale?: string;
        data: (number | null)[];
      }>;
      const line = series.find((x) => x.label === 'lung opacity %')!;
      const grey = series.find((x) => x.label === 'opacity, too little lung')!;
      expect(Math.max(...line.data.filter((v): v is number => v !== null))).toBeCloseTo(eligibleMax, 6);
      expect(line.data).not.toContain(SPIKE);
      expect(grey.data).toContain(SPIKE);
      expect(grey.scale).toBe('pct');

      // The SR: a report first (title, sections, numbers); the DICOM content tree only behind its toggle.
      const report = await page.locator('#sr-report').innerText();
      expect(await page.locator('#sr-title').innerText()).toBe('Imaging Measurement Report');
      expect(report).toContain('NOT FOR DIAGNOSTIC USE');
      expect(report).toMatch(/Finding\s+COVID-19/);
      expect(report).toMatch(/Series probability\s+0\.533\b/);
      expect(report).not.toMatch(/CONTAINS|HAS OBS|UIDREF/);
      const raw = page.locator('#sr-raw > ul');
      expect(await raw.isVisible()).toBe(false);
      await page.locator('#sr-raw summary').click();
      expect(await raw.isVisible()).toBe(true);
      expect(await raw.innerText()).toContain('CONTAINS NUM');
      await page.screenshot({ path: shot('admin-series-friction.png'), fullPage: true });
      expect(consoleErrors).toEqual([]);
    });
  });

  it('the inference workers line says provider and host', () => {
    const html = seriesListPage([], {
      limit: 10,
      showPhi: false,
      destinations: [],
      resultsDir: '/x',
      workers: [{ id: 'w1', host: 'vm', pid: 42, provider: 'cpu', model: 'mlsam-mobilenetv2', version: '2.1.0', concurrency: 1 } as never],
    });
    expect(html).toContain('Inference workers (execution provider on host): <span class="nowrap worker">CPU on host <b>vm</b>');
  });
});

describe('the summary Secondary Capture chart in chromium (issue 26 item 7)', () => {
  it('keeps every text inside the image and the threshold label off the curve', async () => {
    const n = 148;
    const rec = { ...record, score: 0.5328, k: 22, fusion: 'cnn+opacity' as const };
    const W = 1024;
    const H = 512;
    const svg = chartSvg(W, H, {
      title: 'mlsam-mobilenetv2 2.1.0: COVID-19 pattern probability per slice',
      subtitle: `Series 3, ${n} slices scored. ${seriesBandLine(rec)}: ${howScored(rec)}.`,
      probabilities: Array.from({ length: n }, (_, i) => 0.5 + 0.45 * Math.sin((i / n) * 6 * Math.PI)), // crosses the threshold everywhere
      positions: Array.from({ length: n }, (_, i) => -52 - 2 * i),
      threshold: 0.5,
      margin: 0.15,
      score: 0.5328,
      category: 'indeterminate',
      keySlices: [88, 82, 84, 95, 87],
      keyLabels: ['#89', '#83', '#85', '#96', '#88'],
    });
    await withDashboardPage(AUTH, async ({ page }) => {
      await page.setViewportSize({ width: W, height: H });
      await page.setContent(`<html><body style="margin:0">${svg}</body></html>`);
      type Box = { cls: string; text: string; x: number; y: number; w: number; h: number };
      const boxes = (await page.evaluate(`[...document.querySelectorAll('text')].map((t) => { const b = t.getBoundingClientRect();
        return { cls: t.getAttribute('class') || '', text: t.textContent, x: b.x, y: b.y, w: b.width, h: b.height }; })`)) as Box[];
      for (const b of boxes) {
        expect(b.x, b.text).toBeGreaterThanOrEqual(0);
        expect(b.x + b.w, b.text).toBeLessThanOrEqual(W);
      }
      const subtitle = boxes.filter((b) => b.cls === 'subtitle');
      expect(subtitle.length).toBeGreaterThan(1); // this one is long: wrapped, not cut
      expect(subtitle.map((b) => b.text).join(' ')).toContain('indeterminate (0.35-0.65)');
      const frame = (await page.evaluate(
        `(() => { const b = document.querySelector('rect.plot-frame').getBoundingClientRect(); return { y: b.y, h: b.height }; })()`,
      )) as { y: number; h: number };
      const thr = boxes.find((b) => b.cls === 'threshold-label')!;
      expect(thr.text).toBe('threshold 0.500');
      expect(thr.y).toBeGreaterThan(frame.y + frame.h); // in the legend, below the plot
      for (const b of subtitle) expect(b.y + b.h).toBeLessThan(frame.y);
      await page.screenshot({ path: shot('results-summary-friction.png') });
    });
  });
});
