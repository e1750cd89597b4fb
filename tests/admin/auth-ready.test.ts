import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { mlsam } from '../helpers/process.js';
import { cleanup, freePort, PrivateRedis, testConfig, waitFor } from '../queue/helpers.js';
import { DaemonProcess, envOf, http, plainRedis, spoolSeries, startStorescp, trackSeries, writeResult } from './helpers.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

async function setup(tag: string, over: Parameters<typeof testConfig>[1] = {}): Promise<Config> {
  const c = await testConfig(tag, { http: { username: 'ops', password: 'pa55-word' }, ...over });
  cleanups.push(() => cleanup(c));
  return c;
}

async function start(c: Config, extra: Record<string, string> = {}): Promise<DaemonProcess> {
  const p = new DaemonProcess(envOf(c, extra));
  cleanups.push(() => p.stop('SIGKILL'));
  await p.start();
  return p;
}

describe('admin authentication', () => {
  it('rejects missing and wrong credentials on pages, API, metrics and Bull Board; probes stay open', async () => {
    const c = await setup('admin-auth');
    const p = await start(c);
    const none = http(p.httpPort);
    const wrong = http(p.httpPort, ['ops', 'wrong']);
    const wrongUser = http(p.httpPort, ['admin', 'pa55-word']);
    const right = http(p.httpPort, ['ops', 'pa55-word']);
    for (const path of [
      '/admin',
      '/api/series',
      '/metrics',
      '/admin/queues',
      '/admin/associations',
      '/api/associations',
      '/admin/static/uPlot.iife.min.js',
      '/nope',
    ]) {
      const r = await none(path);
      expect(r.status, `${path} without credentials`).toBe(401);
      expect(r.headers.get('www-authenticate')).toMatch(/^Basic realm="mlsam-node"/);
      expect((await wrong(path)).status, `${path} wrong password`).toBe(401);
      expect((await wrongUser(path)).status, `${path} wrong user`).toBe(401);
    }
    expect((await none('/api/series/1.2.3/force', { method: 'POST' })).status).toBe(401);
    for (const path of ['/admin', '/api/series', '/metrics', '/admin/queues', '/admin/associations']) {
      expect((await right(path)).status, `${path} with credentials`).toBe(200);
    }
    expect((await none('/healthz')).status).toBe(200);
    expect(await (await none('/healthz')).json()).toMatchObject({ ok: true });
    expect((await none('/readyz')).status).toBe(200);
    // A cross-site form post is refused even with the browser's stored credentials.
    const xsite = await right('/admin/series/1.2.3/force', {
      method: 'POST',
      headers: { origin: 'http://evil.example', 'sec-fetch-site': 'cross-site' },
    });
    expect(xsite.status).toBe(403);
  });

  it('shows no PHI unless http.showPhi (default false)', async () => {
    const c = await setup('admin-nophi', { series: { routing: { minSlices: 3 } } });
    const redis = plainRedis(c.redis.url);
    cleanups.push(async () => redis.disconnect());
    const s = await spoolSeries(c, 3, { patientName: 'SECRET^NAME', patientId: 'SECRET-ID' });
    await trackSeries(redis, c, s, { status: 'queued' });
    await writeResult(redis, c, s, 'scored');
    const p = await start(c);
    const get = http(p.httpPort, ['ops', 'pa55-word']);
    const api = await (await get(`/api/series/${s.seriesInstanceUid}`)).text();
    const page = await (await get(`/admin/series/${s.seriesInstanceUid}`)).text();
    expect(api).toContain(s.seriesInstanceUid);
    expect(page).toContain('id="chart-data"');
    for (const body of [api, page, await (await get('/admin')).text(), await (await get('/api/series')).text()]) {
      expect(body).not.toMatch(/SECRET|patientName|Patient name/);
    }
  });

  it('refuses a non-loopback http.host without a password, at config load and at `mlsam admin` start', async () => {
    expect(() => loadConfig({ env: {}, overrides: { http: { host: '0.0.0.0', password: '' } } })).toThrow(
      /http\.password: must be set when http\.host \(0\.0\.0\.0\) is not a loopback address/,
    );
    expect(() => loadConfig({ env: {}, overrides: { http: { host: '127.0.0.1', password: '' } } })).not.toThrow();
    expect(() => loadConfig({ env: {}, overrides: { http: { host: '0.0.0.0', password: 'x' } } })).not.toThrow();
    const c = await setup('admin-bind');
    const viaFlag = await mlsam(['admin', '--http-host', '0.0.0.0', '--http-port', '0'], { ...envOf(c), MLSAM_HTTP__PASSWORD: '' });
    expect(viaFlag.code).toBe(1);
    // the error names where the empty password came from (issue 26: the variable the user set)
    expect(viaFlag.stderr).toContain(
      'http.password (set by MLSAM_HTTP__PASSWORD): must be set when http.host (0.0.0.0) is not a loopback address',
    );
    const viaEnv = await mlsam(['admin'], { ...envOf(c), MLSAM_HTTP__HOST: '192.0.2.1', MLSAM_HTTP__PASSWORD: '' });
    expect(viaEnv.code).toBe(1);
    expect(viaEnv.stderr).toContain('http.password (set by MLSAM_HTTP__PASSWORD): must be set');
  });
});

describe('/readyz', () => {
  it('fails with a clear body when Redis is stopped, and recovers when it is back', async () => {
    const redis = new PrivateRedis(await freePort());
    await redis.start();
    cleanups.push(() => redis.kill());
    const c = await setup('admin-ready', { redis: { url: redis.url } });
    const p = await start(c);
    const probe = http(p.httpPort);
    const ok = await probe('/readyz');
    const okBody = (await ok.json()) as { ok: boolean; checks: Record<string, { ok: boolean }>; failed: string[] };
    expect(ok.status, JSON.stringify(okBody)).toBe(200);
    expect(okBody).toMatchObject({
      ok: true,
      failed: [],
      checks: { redis: { ok: true }, spool: { ok: true }, model: { ok: true }, destinations: { ok: true } },
    });

    await redis.kill();
    const down = await waitFor(
      async () => {
        const r = await probe('/readyz');
        return r.status === 503 ? r : undefined;
      },
      10_000,
      '/readyz 503',
    );
    const body = (await down.json()) as { ok: boolean; checks: { redis: { ok: boolean; error: string } }; failed: string[] };
    expect(body.ok).toBe(false);
    expect(body.checks.redis.ok).toBe(false);
    expect(body.checks.redis.error).toContain(`redis not reachable at redis://127.0.0.1:${redis.port}`);
    expect(body.failed).toEqual([expect.stringMatching(/^redis: redis not reachable/)]);
    // The process stays up and alive.
    expect((await probe('/healthz')).status).toBe(200);
    // Pages say so instead of hanging.
    const t0 = Date.now();
    const page = await http(p.httpPort, ['ops', 'pa55-word'])('/api/series');
    expect(page.status).toBe(503);
    expect(((await page.json()) as { error: string }).error).toMatch(/^redis unavailable/);
    expect(Date.now() - t0).toBeLessThan(5_000);

    await redis.start();
    await waitFor(async () => (await probe('/readyz')).status === 200 || undefined, 15_000, '/readyz 200 again', 250);
  });

  it('names the destination that does not answer C-ECHO, the spool above its watermark and a missing model', async () => {
    const deadPort = await freePort();
    const c = await setup('admin-ready-2', { destinations: [{ name: 'pacs', aeTitle: 'PACS', host: '127.0.0.1', port: deadPort }] });
    const p = await start(c, { MLSAM_SPOOL__MAX_DISK_USAGE_PERCENT: '1', MLSAM_MODEL__PATH: join(c.spool.dir, 'missing.onnx') });
    const r = await http(p.httpPort)('/readyz');
    expect(r.status).toBe(503);
    const body = (await r.json()) as { checks: Record<string, { ok: boolean; error?: string }>; failed: string[] };
    expect(body.checks.redis?.ok).toBe(true);
    expect(body.checks.destinations?.error).toMatch(/^pacs does not answer C-ECHO \(.*ECONNREFUSED/);
    expect(body.checks.spool?.error).toMatch(/spool disk [\d.]+% used, above the 1% watermark/);
    expect(body.checks.model?.error).toContain('missing.onnx: ENOENT');
    expect(body.failed).toHaveLength(3);
  });

  it('passes when the destination answers C-ECHO (a real SCP: dcmtk storescp)', async () => {
    const port = await freePort();
    const dir = await mkdtemp(join(tmpdir(), 'mlsam-scp-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const scp = await startStorescp(port, dir);
    cleanups.push(() => scp.stop());
    const c = await setup('admin-ready-3', { destinations: [{ name: 'pacs', aeTitle: 'PACS', host: '127.0.0.1', port }] });
    const p = await start(c);
    const r = await http(p.httpPort)('/readyz');
    const body = (await r.json()) as { checks: { destinations: { ok: boolean; results: Record<string, { ok: boolean }> } } };
    expect(r.status, JSON.stringify(body)).toBe(200);
    expect(body.checks.destinations.results.pacs?.ok).toBe(true);
    const dests = (await (await http(p.httpPort, ['ops', 'pa55-word'])('/api/destinations')).json()) as {
      name: string;
      lastEcho: { ok: boolean };
    }[];
    expect(dests).toEqual([expect.objectContaining({ name: 'pacs', lastEcho: expect.objectContaining({ ok: true }) })]);
  });
});
