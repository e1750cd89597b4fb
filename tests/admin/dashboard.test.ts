import { dirname, join } from 'node:path';
import { Queue, Worker } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config/schema.js';
import { INFERENCE_JOB_OPTIONS, INFERENCE_QUEUE, inferenceJobId } from '../../src/queue/jobs.js';
import { REPO_ROOT } from '../helpers/dicom-listener.js';
import { cleanup, testConfig, waitFor } from '../queue/helpers.js';
import { withDashboardPage } from './browser.js';
import {
  plainRedis,
  spoolSeries,
  startAdmin,
  trackSeries,
  writeResult,
  type DaemonProcess,
  type http,
  type SeededSeries,
} from './helpers.js';

/**
 * The dashboard as a PACS admin reads it (a real `mlsam admin`, real Redis, headless chromium),
 * with no destinations configured: series named by study date, description, modality and series
 * number; actions that fit the state; where results stay; the fused model's opacity curve and
 * table (records seeded with the fields the CNN + HU opacity model writes, and without them);
 * live updates over server-sent events (scoring progress without a reload, a reload when a
 * series' state changes); Bull Board offline and with a link back.
 */
let config: Config;
let admin: DaemonProcess;
let get: ReturnType<typeof http>;
const redis = plainRedis('redis://127.0.0.1:6379');
const S: Record<string, SeededSeries> = {};
const AUTH: [string, string] = ['admin', 'dashboard-secret'];
const shot = (name: string): string => join(REPO_ROOT, 'test-artifacts', name);

beforeAll(async () => {
  config = await testConfig('admin-dash', {
    http: { username: AUTH[0], password: AUTH[1] },
    destinations: [],
    series: { quietPeriodSeconds: 30, routing: { minSlices: 3 } },
  });
  S.fused = await spoolSeries(config, 12, {
    seriesDescription: 'THORAX 1.0 B70f',
    seriesNumber: 4,
    patientName: 'DOE^JOHN',
    patientId: 'PID-0815',
  });
  await trackSeries(redis, config, S.fused, { status: 'queued' });
  await writeResult(redis, config, S.fused, 'scored', { opacity: true, finishedAt: Date.now() - 10_000 });
  S.plain = await spoolSeries(config, 5, { seriesDescription: 'LUNG 5mm', seriesNumber: 2 });
  await trackSeries(redis, config, S.plain, { status: 'queued' });
  await writeResult(redis, config, S.plain, 'scored', { finishedAt: Date.now() - 20_000 });
  S.receiving = await spoolSeries(config, 3);
  await trackSeries(redis, config, S.receiving, { status: 'receiving', lastReceivedAt: Date.now() });
  ({ admin, get } = await startAdmin(config, AUTH));
});

afterAll(async () => {
  await admin?.stop();
  if (config) await cleanup(config);
  redis.disconnect();
});

const chartDataOf = (
  page: string,
): { pos: number[]; p: number[]; opacity: (number | null)[] | null; ineligible: number[]; key: number[] } =>
  JSON.parse(/<script type="application\/json" id="chart-data">(.*?)<\/script>/s.exec(page)![1]!);

describe('dashboard pages (mlsam admin, no destinations)', () => {
  it('names every series by study date, description, modality and series number, without PHI unless http.showPhi', async () => {
    const list = (await (await get('/api/series')).json()) as {
      seriesInstanceUid: string;
      info: Record<string, string>;
      patient?: unknown;
    }[];
    const fused = list.find((x) => x.seriesInstanceUid === S.fused!.seriesInstanceUid)!;
    expect(fused.info).toEqual({
      studyDate: '20260101',
      seriesDescription: 'THORAX 1.0 B70f',
      modality: 'CT',
      seriesNumber: '4',
      bodyPartExamined: 'CHEST',
    });
    expect(fused.patient).toBeUndefined();
    const page = await (await get('/admin')).text();
    const row = new RegExp(`<tr data-series-uid="${S.fused!.seriesInstanceUid.replace(/\./g, '\\.')}".*?</tr>`, 's').exec(page)![0];
    for (const cell of ['2026-01-01', 'THORAX 1.0 B70f', '>CT<', '>4<', '12 <span class="muted">/ 12</span>']) expect(row).toContain(cell);
    expect(page).toContain('<th>Study date</th><th>Description</th><th>Modality</th><th>Series #</th>');
    expect(page).not.toContain('DOE');
    expect(page).not.toContain('PID-0815');
  });

  it('says that results stay in the spool, and where, when no destination is configured', async () => {
    const list = await (await get('/admin')).text();
    expect(list).toContain(
      'No destinations are configured: results (SR, KOS, SEG, Secondary Captures, presentation states) stay in the spool',
    );
    expect(list).toContain(join(config.spool.dir, 'results'));
    const page = await (await get(`/admin/series/${S.fused!.seriesInstanceUid}`)).text();
    expect(page).not.toContain('Nothing sent yet');
    const dir = dirname(S.fused!.record!.outputs![0]!.path);
    expect(page).toMatch(
      new RegExp(
        `No destinations are configured: the results stay in the spool, in <span class="mono">${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}</span> \\(3 files\\)`,
      ),
    );
  });

  it('offers only the actions that fit: no "Force completion" once scored, no "Re-send" without destinations', async () => {
    const scored = await (await get(`/admin/series/${S.fused!.seriesInstanceUid}`)).text();
    expect(scored).not.toContain('Force completion');
    expect(scored).toContain(`action="/admin/series/${S.fused!.seriesInstanceUid}/rescore"`);
    expect(scored).not.toContain('/resend"');
    const receiving = await (await get(`/admin/series/${S.receiving!.seriesInstanceUid}`)).text();
    expect(receiving).toContain('Force completion');
    expect(receiving).not.toContain('/rescore"');
  });

  it('explains that the stage times overlap', async () => {
    for (const path of ['/admin', `/admin/series/${S.plain!.seriesInstanceUid}`]) {
      expect(await (await get(path)).text()).toContain(
        'Stage times overlap: read, decode, lungs (segmentation and opacity) and preprocess run in worker threads while ONNX Runtime infers the previous batch',
      );
    }
  });

  it('shows the opacity curve, ineligible slices, the opacity table and the fusion when the record has them; renders without them', async () => {
    const page = await (await get(`/admin/series/${S.fused!.seriesInstanceUid}`)).text();
    const d = chartDataOf(page);
    const rec = S.fused!.record!;
    expect(d.opacity).toEqual(rec.slices.map((s) => s.opacityPercent));
    expect(d.ineligible).toEqual([1, 2, 12]);
    expect(d.pos).toEqual(rec.slices.map((s) => s.position));
    expect(page).toContain('id="opacity"');
    expect(page).toContain('<tr><td>both</td><td>4200</td><td>630.0</td><td>15.0 %</td><td>2.0 %</td></tr>');
    expect(page).toContain('<tr><td>right</td><td>2300</td><td>440.0</td><td>19.1 %</td><td>2.8 %</td></tr>');
    expect(page).toContain('<tr><td>left</td><td>1900</td><td>190.0</td><td>10.0 %</td><td>1.0 %</td></tr>');
    expect(page).toMatch(/<span class="muted" id="fusion">fusion cnn\+opacity, CNN alone 0\.740<\/span>/);
    expect(page).toContain('3 slice(s) with too little lung to count');
    expect(page).toContain('Measured on 5 mm slices, ground-glass opening 2.7 mm.');
    // the automated pattern description with its rule, criteria and features (never a diagnosis)
    expect(page).toContain(
      '<p id="pattern"><b>typical COVID-19 appearance</b> <span class="muted">rule rsna-distribution-v1</span>: bilateral (the less involved lung holds 30 %); peripheral (78 % in the outer third, lung 48 %); ground glass 87 %</p>',
    );
    expect(page).toContain('<tr><td>outer third (periphery)</td><td>78 %</td><td>48 %</td></tr>');
    expect(page).toContain('<tr><td>upper / middle / lower zone</td><td>10 % / 30 % / 60 %</td><td>30 % / 45 % / 25 %</td></tr>');
    expect(page).toContain('not a diagnosis');
    const plain = await (await get(`/admin/series/${S.plain!.seriesInstanceUid}`)).text();
    const p = chartDataOf(plain);
    expect(p.opacity).toBeNull();
    expect(p.ineligible).toEqual([]);
    expect(plain).not.toContain('id="opacity"');
    expect(plain).not.toContain('id="fusion"');
    expect(plain).not.toContain('id="pattern"');
  });

  it('streams the series rows as server-sent events', async () => {
    const ac = new AbortController();
    const res = await get('/admin/live?limit=50', { signal: ac.signal });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const reader = res.body!.getReader();
    let text = '';
    while (!/event: html\ndata: .*\n\n/.test(text)) {
      const { value, done } = await reader.read();
      if (done) break;
      text += Buffer.from(value).toString();
    }
    ac.abort();
    const data = JSON.parse(/event: html\ndata: (.*)\n/.exec(text)![1]!) as { id: string; html: string };
    expect(data.id).toBe('series-rows');
    expect(data.html).toContain(`data-series-uid="${S.fused!.seriesInstanceUid}"`);
  });
});

describe('dashboard in chromium', () => {
  it('series page: probability and opacity curves on a mm axis, ineligible slices marked (screenshot admin-series-opacity.png)', async () => {
    await withDashboardPage(AUTH, async ({ page, consoleErrors }) => {
      await page.goto(`http://127.0.0.1:${admin.httpPort}/admin/series/${S.fused!.seriesInstanceUid}`);
      const chart = page.locator('#chart[data-ready="1"]');
      await chart.waitFor({ timeout: 10_000 });
      expect(await chart.getAttribute('data-x')).toBe('mm');
      // The legend names every series; the axes are drawn on the canvas (their labels are in src/admin/static/series-chart.js).
      const legend = (await chart.locator('.u-legend').textContent()) ?? '';
      for (const label of ['position', 'probability', 'key slices', 'too little lung', 'threshold', 'lung opacity %'])
        expect(legend).toContain(label);
      expect(await chart.locator('canvas').count()).toBeGreaterThan(0);
      // Hovering the plot: the x value is a position in mm, with the slice number beside it.
      const box = (await chart.locator('.u-over').boundingBox())!;
      await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
      await waitFor(
        async () => /-?\d+\.\d mm \(slice \d+\)/.test((await chart.locator('.u-legend .u-series').first().textContent()) ?? ''),
        5_000,
        'the legend at the cursor',
      );
      await page.screenshot({ path: shot('admin-series-opacity.png'), fullPage: true });
      expect(consoleErrors).toEqual([]);
    });
  });

  it('shows scoring progress live, without reloading; the series page reloads once the series is scored', async () => {
    const s = await spoolSeries(config, 4, { seriesDescription: 'LIVE' });
    await trackSeries(redis, config, s, { status: 'queued' });
    const jobId = inferenceJobId(s.seriesInstanceUid, s.instancesHash);
    const connection = { host: '127.0.0.1', port: 6379 };
    const queue = new Queue(INFERENCE_QUEUE, { connection, prefix: config.redis.keyPrefix });
    let release: () => void = () => undefined;
    const hold = new Promise<void>((r) => (release = r));
    let step: (p: { done: number; total: number }) => Promise<void> = async () => undefined;
    let started: () => void = () => undefined;
    const running = new Promise<void>((r) => (started = r));
    const worker = new Worker(
      INFERENCE_QUEUE,
      async (job) => {
        if (job.id !== jobId) return;
        step = (p) => job.updateProgress(p);
        await job.updateProgress({ done: 1, total: 4 });
        started();
        await hold;
        // What the inference worker leaves behind: the scored record.
        await writeResult(redis, config, s, 'scored', { opacity: true });
      },
      { connection: { ...connection, maxRetriesPerRequest: null }, prefix: config.redis.keyPrefix },
    );
    try {
      await queue.add(
        'score',
        {
          studyInstanceUid: s.studyInstanceUid,
          seriesInstanceUid: s.seriesInstanceUid,
          seriesDir: s.seriesDir,
          instanceCount: 4,
          instancesHash: s.instancesHash,
          callingAeTitle: 'PACS',
          firstReceivedAt: new Date().toISOString(),
          lastReceivedAt: new Date().toISOString(),
          enqueuedBy: 'tracker',
        },
        { ...INFERENCE_JOB_OPTIONS, jobId },
      );
      await running;
      await withDashboardPage(AUTH, async ({ page, consoleErrors }) => {
        await page.goto(`http://127.0.0.1:${admin.httpPort}/admin`);
        const row = page.locator(`tr[data-series-uid="${s.seriesInstanceUid}"]`);
        await row.waitFor({ timeout: 10_000 });
        await page.evaluate('window.__sameDocument = true');
        await waitFor(async () => (await row.innerText()).includes('scoring 25%'), 10_000, 'scoring 25%');
        await step({ done: 3, total: 4 });
        await waitFor(async () => (await row.innerText()).includes('scoring 75%'), 10_000, 'scoring 75% without a reload');
        expect(await page.evaluate('window.__sameDocument === true')).toBe(true);
        await page.screenshot({ path: shot('admin-series-list-live.png'), fullPage: true });

        await page.goto(`http://127.0.0.1:${admin.httpPort}/admin/series/${s.seriesInstanceUid}`);
        expect(await page.locator('#series-status').innerText()).toContain('scoring');
        expect(await page.locator('#chart').count()).toBe(0);
        await page.evaluate('window.__sameDocument = true');
        release();
        await page.locator('#chart[data-ready="1"]').waitFor({ timeout: 15_000 });
        expect(await page.evaluate('window.__sameDocument === true')).toBe(false);
        expect(await page.locator('#series-status').innerText()).toContain('scored');
        expect(consoleErrors).toEqual([]);
      });
    } finally {
      release();
      await worker.close();
      await queue.close();
    }
  });

  it('Bull Board loads nothing from outside this host and links back to the series dashboard', async () => {
    await withDashboardPage(AUTH, async ({ page, requests }) => {
      await page.goto(`http://127.0.0.1:${admin.httpPort}/admin/queues`);
      const back = page.locator('#mlsam-back');
      await back.waitFor({ timeout: 10_000 });
      await page.waitForLoadState('networkidle');
      await page.screenshot({ path: shot('admin-queues.png') });
      const foreign = requests.filter((u) => !u.startsWith(`http://127.0.0.1:${admin.httpPort}/`) && !u.startsWith('data:'));
      expect(foreign).toEqual([]);
      expect(requests.some((u) => u.includes('/admin/queues/static/'))).toBe(true);
      await back.click();
      await page.waitForURL(`http://127.0.0.1:${admin.httpPort}/admin`);
    });
  });
});
