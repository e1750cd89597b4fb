/**
 * Silent mode as an admin meets it in the browser, against a real `mlsam admin` (SQLite store in its
 * spool, `dispatch.mode: "silent"`) in Debian's chromium: after a login through the form every page
 * carries the SILENT MODE banner; the admin releases the destination with the page's form (which
 * carries the session's CSRF token), the banner goes, the API reports the destination live and the
 * audit table names the admin; switching it back to silent brings the banner back. A radiologist
 * sees the page without the forms and gets 403 when posting the switch anyway.
 */
import { execFile } from 'node:child_process';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config/schema.js';
import { openResultsDb } from '../../src/db/open.js';
import { MLSAM_MAIN } from '../helpers/process.js';
import { cleanup, testConfig } from '../queue/helpers.js';
import { CHROMIUM_ARGS } from './browser.js';
import { DaemonProcess, envOf, http } from './helpers.js';

function cli(env: Record<string, string>, args: string[], stdin = ''): Promise<number> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [MLSAM_MAIN, ...args], { env: { ...process.env, ...env } }, (err) =>
      resolve(err ? ((err as { code?: number }).code ?? 1) : 0),
    );
    child.stdin?.end(stdin);
  });
}

async function logIn(page: Page, base: string, user: string, password: string, from: string): Promise<void> {
  await page.goto(`${base}${from}`);
  expect(new URL(page.url()).pathname).toBe('/login');
  await page.fill('#username', user);
  await page.fill('#password', password);
  await Promise.all([page.waitForURL((u) => u.pathname === from), page.click('#login')]);
}

describe('silent mode in the browser (mlsam admin, chromium)', () => {
  let config: Config;
  let env: Record<string, string>;
  let daemon: DaemonProcess;
  let browser: Browser;
  let base = '';

  beforeAll(async () => {
    config = await testConfig('dispatch-browser', {
      http: { username: 'ops', password: 'ops-secret-1' },
      // Nothing listens there: silent mode must not even try.
      destinations: [{ name: 'pacs', aeTitle: 'PACS', host: '127.0.0.1', port: 9 }],
    });
    env = envOf(config, { MLSAM_DISPATCH__MODE: 'silent' });
    expect(await cli(env, ['users', 'add', 'dr.ray', '--role', 'radiologist'], 'ray-password-1\n')).toBe(0);
    daemon = new DaemonProcess(env);
    await daemon.start();
    base = `http://127.0.0.1:${daemon.httpPort}`;
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS, headless: true });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await daemon?.stop('SIGKILL');
    await cleanup(config);
  });

  it('the admin releases the destination with the form, the banner goes, the API and the audit agree; silent again brings it back', async () => {
    const ctx = await browser.newContext();
    try {
      const page = await ctx.newPage();
      await logIn(page, base, 'ops', 'ops-secret-1', '/admin/dispatch');
      for (const path of ['/admin/dispatch', '/admin', '/admin/studies', '/admin/review', '/admin/validation']) {
        await page.goto(`${base}${path}`);
        expect(await page.locator('#silent-banner').innerText(), path).toContain('SILENT MODE — results are not sent to pacs');
      }
      await page.goto(`${base}/admin/dispatch`);
      const row = page.locator('tr[data-target="pacs"]');
      expect(await row.locator('.badge').innerText()).toBe('silent');
      await Promise.all([page.waitForURL((u) => u.searchParams.get('ok') === '1'), row.locator('button', { hasText: 'Release' }).click()]);
      expect(await page.locator('.flash.ok').innerText()).toContain('Released pacs');
      expect(await page.locator('#silent-banner').count()).toBe(0);
      expect(await row.locator('.badge').innerText()).toBe('live');
      expect(await row.innerText()).toContain('ops');

      const api = http(daemon.httpPort, ['ops', 'ops-secret-1']);
      const mode = (await (await api('/api/dispatch/mode')).json()) as { silent: string[]; targets: { name: string; mode: string }[] };
      expect(mode.silent).toEqual([]);
      expect(mode.targets.find((t) => t.name === 'pacs')?.mode).toBe('live');

      await Promise.all([page.waitForURL((u) => u.searchParams.get('ok') === '1'), row.locator('button', { hasText: 'silent' }).click()]);
      expect(await page.locator('#silent-banner').innerText()).toContain('SILENT MODE — results are not sent to pacs');
      await page.goto(`${base}/admin/studies`);
      expect(await page.locator('#silent-banner').count()).toBe(1);

      const db = await openResultsDb(config);
      try {
        const audit = (await db.listAudit()).filter((a) => a.user_name === 'ops' && /release|silence/.test(a.action));
        expect(audit.map((a) => a.action).sort()).toEqual(
          expect.arrayContaining([expect.stringMatching(/release/), expect.stringMatching(/silence/)]),
        );
        expect(audit.every((a) => (a.detail ?? '').includes('dashboard'))).toBe(true);
      } finally {
        await db.conn.close();
      }
    } finally {
      await ctx.close();
    }
  });

  it('a radiologist sees the page without the switch and gets 403 when posting it anyway', async () => {
    const ctx = await browser.newContext();
    try {
      const page = await ctx.newPage();
      await logIn(page, base, 'dr.ray', 'ray-password-1', '/admin/dispatch');
      expect(await page.locator('main').innerText()).toContain('Only an admin switches the dispatch mode');
      expect(await page.locator('form[action="/admin/dispatch/release"]').count()).toBe(0);
      const status = await page.evaluate<number>(
        `(async () => {
          const token = document.querySelector('meta[name="csrf-token"]')?.content ?? '';
          const r = await fetch('/api/dispatch/release', {
            method: 'POST',
            headers: { 'content-type': 'application/json', 'x-csrf-token': token },
            body: JSON.stringify({ destination: 'pacs' }),
          });
          return r.status;
        })()`,
      );
      expect(status).toBe(403);
      const api = http(daemon.httpPort, ['ops', 'ops-secret-1']);
      const mode = (await (await api('/api/dispatch/mode')).json()) as { silent: string[] };
      expect(mode.silent).toEqual(['pacs']);
    } finally {
      await ctx.close();
    }
  });
});
