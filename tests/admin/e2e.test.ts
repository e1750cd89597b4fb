import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config/schema.js';
import { writePhantomSeries, type PhantomSeries } from '../../src/demo/phantom.js';
import { REPO_ROOT } from '../helpers/dicom-listener.js';
import { run } from '../helpers/dcmtk.js';
import { storescu } from '../e2e/helpers.js';
import { cleanup, freePort, sleep, testConfig, waitFor } from '../queue/helpers.js';
import { checkDashboard } from './browser.js';
import { DaemonProcess, envOf, http, startStorescp } from './helpers.js';

/**
 * The admin against a running daemon after a real series went through: `mlsam serve` (listener,
 * inference worker, results, dispatch, admin) with a real Redis and a DCMTK storescp as the PACS;
 * a phantom chest CT is sent with storescu, scored by the shipped model, its SR and heatmaps sent
 * to the destination. Then the API, /metrics and a headless chromium look at it.
 */
const AUTH: [string, string] = ['admin', 'e2e-secret'];
const SLICES = 24;
const cleanups: Array<() => Promise<unknown>> = [];
let config: Config;
let daemon: DaemonProcess;
let phantom: PhantomSeries;
let scpDir: string;
let get: ReturnType<typeof http>;

interface Detail {
  status: string;
  sliceCount: number;
  score: number;
  category: string;
  callingAeTitle: string;
  timings: Record<string, number>;
  patient?: { patientName: string; patientId: string };
  result: { status: string; slices: { probability: number }[]; outputs: { kind: string; sopInstanceUid: string }[] };
  dispatch: { destination: string; status: string }[];
  attempts: { outcome: string }[];
}

beforeAll(async () => {
  const scpPort = await freePort();
  scpDir = await mkdtemp(join(tmpdir(), 'mlsam-admin-pacs-'));
  cleanups.push(() => rm(scpDir, { recursive: true, force: true }));
  const scp = await startStorescp(scpPort, scpDir, 'PACS');
  cleanups.push(() => scp.stop());
  config = await testConfig('admin-e2e', {
    series: { quietPeriodSeconds: 2, routing: { minSlices: 10 } },
    http: { username: AUTH[0], password: AUTH[1], showPhi: true },
    destinations: [{ name: 'pacs', aeTitle: 'PACS', host: '127.0.0.1', port: scpPort }],
  });
  cleanups.push(() => cleanup(config));
  const dir = await mkdtemp(join(tmpdir(), 'mlsam-admin-phantom-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  phantom = await writePhantomSeries({ dir, slices: SLICES, size: 256, patientName: 'PHANTOM^ADMIN', patientId: 'ADM-0001' });
  daemon = new DaemonProcess(envOf(config, { MLSAM_WORKER__CONCURRENCY: '1', MLSAM_DISPATCH__BACKOFF_SECONDS: '1' }), 'serve');
  cleanups.push(() => daemon.stop('SIGKILL'));
  await daemon.start();
  get = http(daemon.httpPort, AUTH);
  const sent = await storescu(
    daemon.dicomPort,
    phantom.instances.map((i) => i.path),
    'CTSCANNER',
  );
  expect(sent.successes, sent.output).toBe(SLICES);
  await waitFor(
    async () => {
      const r = await get(`/api/series/${phantom.seriesInstanceUid}`);
      if (r.status !== 200) return undefined;
      const d = (await r.json()) as Detail;
      if (d.status === 'failed' || d.status === 'not-scored') throw new Error(`series ${d.status}: ${JSON.stringify(d).slice(0, 2000)}`);
      return d.status === 'sent' ? d : undefined;
    },
    150_000,
    'the series to be scored and sent',
    500,
  ).catch((err: Error) => {
    throw new Error(`${err.message}\n--- daemon log (tail) ---\n${daemon.stderr.slice(-6000)}`);
  });
}, 240_000);

afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

describe('admin after a real series went through `mlsam serve`', () => {
  it('the API shows the series scored and sent, with its slices, score, result objects, dispatch and PHI', async () => {
    const list = (await (await get('/api/series')).json()) as { seriesInstanceUid: string; status: string }[];
    expect(list).toEqual([expect.objectContaining({ seriesInstanceUid: phantom.seriesInstanceUid, status: 'sent' })]);
    const d = (await (await get(`/api/series/${phantom.seriesInstanceUid}`)).json()) as Detail;
    expect(d.callingAeTitle).toBe('CTSCANNER');
    expect(d.sliceCount).toBe(SLICES);
    expect(d.result.slices).toHaveLength(SLICES);
    expect(d.score).toBeGreaterThanOrEqual(0);
    expect(d.score).toBeLessThanOrEqual(1);
    expect(['likely', 'indeterminate', 'unlikely']).toContain(d.category);
    for (const stage of ['waitMs', 'decodeMs', 'inferMs', 'totalMs', 'dispatchMs']) expect(d.timings[stage], stage).toBeGreaterThan(0);
    const kinds = d.result.outputs.map((o) => o.kind);
    expect(kinds).toContain('sr');
    expect(kinds).toContain('heatmap');
    expect(d.dispatch).toEqual([expect.objectContaining({ destination: 'pacs', status: 'sent' })]);
    expect(d.attempts[0]?.outcome).toBe('sent');
    expect(d.patient).toEqual({ patientName: 'PHANTOM ADMIN', patientId: 'ADM-0001' });
    // What the API says was sent is what the PACS holds.
    expect((await readdir(scpDir)).length).toBe(d.result.outputs.length);
  });

  it('the SR reads as text and every heatmap renders as a PNG', async () => {
    const sr = (await (await get(`/api/series/${phantom.seriesInstanceUid}/sr`)).json()) as { text: string; verificationFlag: string };
    expect(sr.verificationFlag).toBe('UNVERIFIED');
    expect(sr.text).toMatch(/NOT FOR DIAGNOSTIC USE/);
    expect(sr.text.split('\n').length).toBeGreaterThan(10);
    const d = (await (await get(`/api/series/${phantom.seriesInstanceUid}`)).json()) as Detail;
    for (const o of d.result.outputs.filter((x) => x.kind === 'heatmap' || x.kind === 'summary')) {
      const r = await get(`/api/series/${phantom.seriesInstanceUid}/images/${o.sopInstanceUid}.png`);
      expect(r.status, o.sopInstanceUid).toBe(200);
      const meta = await sharp(Buffer.from(await r.arrayBuffer())).stats();
      // Colour, not a blank or grey image: the attention map is blended in.
      const [rr, gg, bb] = meta.channels;
      expect(Math.max(rr!.mean, gg!.mean, bb!.mean)).toBeGreaterThan(10);
      expect(Math.abs(rr!.mean - bb!.mean) + Math.abs(rr!.mean - gg!.mean)).toBeGreaterThan(1);
    }
  });

  it('/metrics counts what happened across the roles', async () => {
    await sleep(200);
    const body = await (await get('/metrics')).text();
    expect(body).toContain(`mlsam_instances_received_total{calling_ae="CTSCANNER"} ${SLICES}`);
    expect(body).toMatch(/mlsam_associations_total\{outcome="accepted-released",calling_ae="CTSCANNER"\} 1/);
    expect(body).toMatch(/mlsam_series_completed_total\{model="[^"]+",version="[^"]+"\} 1/);
    expect(body).toMatch(new RegExp(`mlsam_slices_scored_total\\{model="[^"]+",version="[^"]+"\\} ${SLICES}`));
    expect(body).toContain('mlsam_dispatch_successes_total{destination="pacs"} 1');
    expect(body).toContain('mlsam_stage_duration_seconds_count{stage="infer"} 1');
    expect(body).toContain('mlsam_stage_duration_seconds_count{stage="dispatch"} 1');
    expect(body).toMatch(/mlsam_slices_per_second [1-9]/);
    expect(body).toContain('mlsam_queue_jobs{queue="inference",state="completed"} 1');
    expect(body).toContain('mlsam_queue_jobs{queue="dispatch",state="completed"} 1');
    // The execution provider the worker really runs on (CPU here: no CUDA on this machine).
    expect(body).toMatch(/mlsam_worker_info\{worker="[^"]+:\d+",provider="cpu",model="[^"]+",version="[^"]+"\} 1/);
    const workers = (await (await get('/api/workers')).json()) as { provider: string; requestedProviders: string[]; pid: number }[];
    expect(workers).toHaveLength(1);
    expect(workers[0]).toMatchObject({ provider: 'cpu', requestedProviders: ['cpu'], pid: daemon.pid });
  });

  it('the associations page tells a C-ECHO (DCMTK echoscu) from the C-STORE of the series', async () => {
    const echo = await run('echoscu', ['-aet', 'ECHOCHECK', '-aec', 'MLSAM', '127.0.0.1', String(daemon.dicomPort)]);
    expect(echo.code, echo.stderr).toBe(0);
    const list = await waitFor(
      async () => {
        const l = (await (await get('/api/associations')).json()) as { callingAeTitle: string; instances: number; echoes?: number }[];
        return l.some((a) => a.callingAeTitle === 'ECHOCHECK') ? l : undefined;
      },
      10_000,
      'the echo association in the audit',
    );
    expect(list.find((a) => a.callingAeTitle === 'ECHOCHECK')).toMatchObject({ instances: 0, echoes: 1 });
    expect(list.find((a) => a.callingAeTitle === 'CTSCANNER')).toMatchObject({ instances: SLICES, echoes: 0 });
    const page = await (await get('/admin/associations')).text();
    expect(page).toMatch(/<td>ECHOCHECK<\/td>.*?<td class="service">C-ECHO<\/td>/s);
    expect(page).toMatch(new RegExp(`<td>CTSCANNER</td>.*?<td class="service">C-STORE ${SLICES} instances</td>`, 's'));
  });

  it('/readyz passes on the running daemon (Redis, spool, model, the PACS answers C-ECHO)', async () => {
    const r = await http(daemon.httpPort)('/readyz');
    const body = await r.json();
    expect(r.status, JSON.stringify(body)).toBe(200);
  });

  it('chromium: dashboard row → series page with the probability chart and heatmap images (screenshot in test-artifacts/)', async () => {
    const shot = join(REPO_ROOT, 'test-artifacts', 'admin-series-page.png');
    const r = await checkDashboard({
      port: daemon.httpPort,
      credentials: AUTH,
      seriesUid: phantom.seriesInstanceUid,
      screenshot: shot,
      listScreenshot: join(REPO_ROOT, 'test-artifacts', 'admin-series-list.png'),
    });
    expect(r.rowText).toContain('CTSCANNER');
    expect(r.rowText).toContain('sent');
    expect(r.rowText).toContain(`${SLICES} / ${SLICES}`);
    expect(r.chartCanvases).toBeGreaterThan(0);
    expect(r.heatmaps.length).toBeGreaterThan(0);
    for (const h of r.heatmaps) expect(h.width).toBeGreaterThan(100);
    expect(r.srText).toContain('NOT FOR DIAGNOSTIC USE');
    expect(r.consoleErrors).toEqual([]);
  });
});
