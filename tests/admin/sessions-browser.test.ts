/**
 * Browser sessions against a real `mlsam admin` (SQLite store in its spool) in Debian's chromium
 * (playwright-core): a radiologist logs in through the login form and answers on the review page
 * with a click (the answer lands in the store under their name and moves the report); the cookie is signed, HttpOnly,
 * SameSite=Lax (not Secure: plain HTTP on loopback); a post from a page of another origin, a plain
 * POST carrying the cookie without the CSRF token, and a page script's fetch without the token are
 * refused with 403 (with the token the same fetch works); a radiologist may not act as an admin; a
 * viewer session gets 403 on feedback; Bull Board's API (its page sends no token) needs a
 * same-origin request; the session survives a restart of the node; logout ends it.
 * Basic auth (no cookie) needs no CSRF token. A first start with an empty password says so on
 * the login page and on every page.
 */
import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config/schema.js';
import { openResultsDb } from '../../src/db/open.js';
import { resultRow } from '../../src/db/result-row.js';
import type { ValidationReport } from '../../src/validation/report.js';
import { fakeRecord } from '../db/helpers.js';
import { MLSAM_MAIN } from '../helpers/process.js';
import { cleanup, testConfig } from '../queue/helpers.js';
import { CHROMIUM_ARGS } from './browser.js';
import { DaemonProcess, envOf, http } from './helpers.js';

function cli(env: Record<string, string>, args: string[], stdin = ''): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [MLSAM_MAIN, ...args], { env: { ...process.env, ...env } }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
    child.stdin?.end(stdin);
  });
}

async function feedbackOf(config: Config, study: string) {
  const db = await openResultsDb(config);
  try {
    return await db.feedbackOf(study);
  } finally {
    await db.conn.close();
  }
}

async function sessionRows(config: Config) {
  const db = await openResultsDb(config);
  try {
    return await db.db.selectFrom('sessions').selectAll().execute();
  } finally {
    await db.conn.close();
  }
}

/** Logs in through the form, starting from a page that needs a login. */
async function logIn(page: Page, base: string, user: string, password: string, from = '/admin/review'): Promise<void> {
  await page.goto(`${base}${from}`);
  expect(new URL(page.url()).pathname).toBe('/login');
  expect(new URL(page.url()).searchParams.get('next')).toBe(from);
  await page.fill('#username', user);
  await page.fill('#password', password);
  await Promise.all([page.waitForURL((u) => `${u.pathname}${u.search}` === from), page.click('#login')]);
}

/** The page's fetch (its own origin, its cookie) of a JSON POST, with or without the page's CSRF token. */
function pagePost(page: Page, path: string, body: unknown, withToken: boolean): Promise<{ status: number; body: string }> {
  return page.evaluate(
    `(async () => {
      const token = document.querySelector('meta[name="csrf-token"]')?.content;
      const headers = { 'content-type': 'application/json' };
      if (${withToken}) headers['x-csrf-token'] = token;
      const r = await fetch(${JSON.stringify(path)}, { method: 'POST', headers, body: ${JSON.stringify(JSON.stringify(body))} });
      return { status: r.status, body: await r.text() };
    })()`,
  );
}

describe('browser sessions, CSRF and roles (mlsam admin, chromium)', () => {
  let config: Config;
  let env: Record<string, string>;
  let daemon: DaemonProcess;
  let browser: Browser;
  let ray: BrowserContext;
  let rayPage: Page;
  let base = '';
  let attacker: Server;
  let attackerBase = '';

  beforeAll(async () => {
    config = await testConfig('sessions', { http: { username: 'ops', password: 'ops-secret-1' } });
    env = envOf(config);
    const db = await openResultsDb(config);
    await db.saveResult(resultRow(fakeRecord('1.2.70', '1.2.70.1', 0.2, { finishedAt: '2026-12-07T09:00:00.000Z' }), null));
    await db.saveResult(resultRow(fakeRecord('1.2.71', '1.2.71.1', 0.9, { finishedAt: '2026-12-07T09:05:00.000Z' }), null));
    await db.conn.close();
    for (const [name, role, pw] of [
      ['dr.ray', 'radiologist', 'ray-password-1'],
      ['clerk', 'viewer', 'clerk-password-1'],
    ] as const) {
      const r = await cli(env, ['users', 'add', name, '--role', role], `${pw}\n`);
      expect(r.code, r.stderr).toBe(0);
    }
    daemon = new DaemonProcess(env);
    await daemon.start();
    base = `http://127.0.0.1:${daemon.httpPort}`;
    // A page of another origin (another port: same site, so the Lax cookie goes along) that posts to the node.
    attacker = createServer((req, res) => {
      const study = new URL(req.url ?? '/', 'http://x').searchParams.get('study') ?? '';
      res.setHeader('content-type', 'text/html');
      res.end(
        `<!doctype html><form id="f" method="post" action="${base}/admin/review/${study}"><input name="label" value="normal"></form><script>document.getElementById('f').submit()</script>`,
      );
    });
    await new Promise<void>((r) => attacker.listen(0, '127.0.0.1', r));
    const a = attacker.address();
    attackerBase = `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`;
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS, headless: true });
    ray = await browser.newContext();
    rayPage = await ray.newPage();
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await new Promise((r) => attacker?.close(r));
    await daemon?.stop('SIGKILL');
    await cleanup(config);
  });

  it('a radiologist logs in through the form and answers with a click; the answer lands in the store', async () => {
    await rayPage.goto(`${base}/admin/review`);
    expect(new URL(rayPage.url()).pathname).toBe('/login');
    expect(new URL(rayPage.url()).searchParams.get('next')).toBe('/admin/review');
    // Plain HTTP on loopback: said on the page; no first-start banner (a password is set).
    expect(await rayPage.locator('#cookie-note').innerText()).toContain('not marked Secure');
    expect(await rayPage.locator('#first-start').count()).toBe(0);
    await rayPage.fill('#username', 'dr.ray');
    await rayPage.fill('#password', 'wrong-password');
    await rayPage.click('#login');
    expect(await rayPage.locator('#login-message').innerText()).toContain('Wrong user name or password');

    await rayPage.fill('#username', 'dr.ray');
    await rayPage.fill('#password', 'ray-password-1');
    await Promise.all([rayPage.waitForURL(`${base}/admin/review`), rayPage.click('#login')]);
    expect(await rayPage.locator('#who').innerText()).toBe('dr.ray (radiologist)');
    const [cookie, ...others] = await ray.cookies(base);
    expect(others).toEqual([]);
    expect(cookie).toMatchObject({ name: 'mlsam_session', httpOnly: true, sameSite: 'Lax', secure: false, path: '/' });
    expect(cookie!.value).toMatch(/^[\w-]+\.[\w+/=%-]+$/); // id.signature
    expect(cookie!.expires).toBeGreaterThan(Date.now() / 1000 + 11 * 3600); // http.sessions.maxAgeHours 12

    // Every form of the page carries the token.
    expect(await rayPage.locator('#feedback-form input[name=_csrf]').count()).toBe(1);
    expect(await rayPage.locator('h1').innerText()).toContain('1.2.70');
    const ops = http(daemon.httpPort, ['ops', 'ops-secret-1']);
    const before = (await (await ops('/api/validation')).json()) as ValidationReport;
    expect(before.counts).toMatchObject({ cases: 0 });
    await Promise.all([rayPage.waitForURL(/msg=/), rayPage.click('#label-covid-pattern')]);
    expect(await rayPage.locator('#flash').innerText()).toContain('Saved covid-pattern for 1.2.70');
    expect(await feedbackOf(config, '1.2.70')).toEqual([
      expect.objectContaining({ label: 'covid-pattern', user_name: 'dr.ray', source: 'dashboard', agree: 0 }),
    ]);
    // The answer moves the report: one case, a positive the node called unlikely (a false negative).
    const after = (await (await ops('/api/validation')).json()) as ValidationReport;
    expect(after.counts).toMatchObject({ cases: 1, positives: 1, negatives: 0 });
    expect(after.operatingPoints[0]!.confusion).toEqual({ tp: 0, fp: 0, tn: 0, fn: 1 });
    const db = await openResultsDb(config);
    const audit = await db.listAudit();
    await db.conn.close();
    expect(audit.filter((a) => a.action === 'login').map((a) => a.user_name)).toEqual(['dr.ray']);
  });

  it('refuses cross-site posts and posts without the CSRF token (403); the token makes the same request work', async () => {
    // A page of another origin posting a form to the node with the radiologist's cookie.
    const evil = await ray.newPage();
    const answered = evil.waitForResponse((r) => r.url().startsWith(`${base}/admin/review/`));
    await evil.goto(`${attackerBase}/?study=1.2.71`);
    expect((await answered).status()).toBe(403);
    await evil.close();
    expect(await feedbackOf(config, '1.2.71')).toEqual([]);

    // A plain POST carrying the session cookie, no token (no Origin either: the CSRF check alone refuses it).
    const [cookie] = await ray.cookies(base);
    const jar = `${cookie!.name}=${cookie!.value}`;
    const plain = await fetch(`${base}/admin/review/1.2.71`, {
      method: 'POST',
      headers: { cookie: jar, 'content-type': 'application/x-www-form-urlencoded' },
      body: 'label=normal',
      redirect: 'manual',
    });
    expect(plain.status).toBe(403);
    expect(await plain.text()).toMatch(/csrf/i);
    // The page's own script without the token: 403; with it: 201.
    await rayPage.goto(`${base}/admin/review?study=1.2.71`);
    const without = await pagePost(rayPage, '/api/studies/1.2.71/feedback', { label: 'normal' }, false);
    expect(without.status).toBe(403);
    expect(await feedbackOf(config, '1.2.71')).toEqual([]);
    const withToken = await pagePost(rayPage, '/api/studies/1.2.71/feedback', { label: 'covid-pattern', comment: 'page script' }, true);
    expect(withToken.status, withToken.body).toBe(201);
    expect(JSON.parse(withToken.body)).toMatchObject({ user: 'dr.ray', label: 'covid-pattern' });
    // A token of one session is no good in another: the form's token with the cookie is fine, a made-up one is not.
    const token = await rayPage.locator('meta[name="csrf-token"]').getAttribute('content');
    const forged = await fetch(`${base}/admin/review/1.2.71`, {
      method: 'POST',
      headers: { cookie: jar, 'content-type': 'application/x-www-form-urlencoded' },
      body: `label=normal&_csrf=${encodeURIComponent(`${token!.slice(0, -4)}AAAA`)}`,
      redirect: 'manual',
    });
    expect(forged.status).toBe(403);
    const good = await fetch(`${base}/admin/review/1.2.71`, {
      method: 'POST',
      headers: { cookie: jar, 'content-type': 'application/x-www-form-urlencoded' },
      body: `label=normal&_csrf=${encodeURIComponent(token!)}`,
      redirect: 'manual',
    });
    expect(good.status).toBe(303);
    expect((await feedbackOf(config, '1.2.71')).map((f) => f.label).sort()).toEqual(['covid-pattern', 'normal']);

    // A radiologist's session may not act as an admin, token or not.
    const act = await fetch(`${base}/api/retention/run`, { method: 'POST', headers: { cookie: jar, 'x-csrf-token': token! } });
    expect(act.status).toBe(403);
    expect(((await act.json()) as { error: string }).error).toMatch(/dr\.ray \(radiologist\).*needs the admin role/);

    // Basic auth is not a cookie: no token needed (integrations).
    const ops = await http(daemon.httpPort, ['ops', 'ops-secret-1'])('/api/studies/1.2.71/feedback', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"label":"normal","comment":"basic auth"}',
    });
    expect(ops.status).toBe(201);
  });

  it('a viewer session reads but gets 403 on feedback', async () => {
    const ctx = await browser.newContext();
    try {
      const page = await ctx.newPage();
      await logIn(page, base, 'clerk', 'clerk-password-1', '/admin/review?study=1.2.70');
      expect(await page.locator('#who').innerText()).toBe('clerk (viewer)');
      expect(await page.locator('#feedback-form').count()).toBe(0);
      expect(await page.locator('main').innerText()).toContain('answering needs the radiologist or admin role');
      const r = await pagePost(page, '/api/studies/1.2.70/feedback', { label: 'normal' }, true);
      expect(r.status).toBe(403);
      expect(r.body).toMatch(/clerk \(viewer\)/);
      expect((await feedbackOf(config, '1.2.70')).map((f) => f.user_name)).toEqual(['dr.ray']);
    } finally {
      await ctx.close();
    }
  });

  it('the session survives a restart of the node', async () => {
    expect(await daemon.stop('SIGTERM')).toBe(0);
    daemon.stderr = ''; // (its "admin listening" line names the new port)
    await daemon.start();
    const moved = `http://127.0.0.1:${daemon.httpPort}`;
    // (A new port after the restart: the cookie is the host's, whatever the port.)
    await rayPage.goto(`${moved}/admin/review?study=1.2.70`);
    expect(new URL(rayPage.url()).pathname).toBe('/admin/review');
    expect(await rayPage.locator('#who').innerText()).toBe('dr.ray (radiologist)');
    base = moved;
  }, 60_000);

  it('logout ends the session, in the browser and in the store', async () => {
    const [cookie] = await ray.cookies(base);
    const jar = `${cookie!.name}=${cookie!.value}`;
    expect((await sessionRows(config)).filter((s) => s.user_name === 'dr.ray')).toHaveLength(1);
    await rayPage.goto(`${base}/admin`);
    const [out] = await Promise.all([rayPage.waitForResponse((r) => r.url().endsWith('/logout')), rayPage.click('#logout')]);
    expect(out.status(), await out.text().catch(() => '')).toBe(303);
    await rayPage.waitForURL(/\/login\?msg=/);
    expect(await rayPage.locator('#login-message').innerText()).toContain('logged out');
    await rayPage.goto(`${base}/admin/review`);
    expect(new URL(rayPage.url()).pathname).toBe('/login');
    // The old cookie replayed: no session any more.
    const replay = await fetch(`${base}/admin/review`, { headers: { cookie: jar, accept: 'text/html' }, redirect: 'manual' });
    expect(replay.status).toBe(303);
    expect(replay.headers.get('location')).toMatch(/^\/login\?next=/);
    expect((await sessionRows(config)).filter((s) => s.user_name === 'dr.ray')).toEqual([]);
    const db = await openResultsDb(config);
    const audit = await db.listAudit();
    await db.conn.close();
    expect(audit.some((a) => a.action === 'logout' && a.user_name === 'dr.ray')).toBe(true);
  });

  it("an admin session's Bull Board actions need the browser's same-origin request (its page sends no token)", async () => {
    const ctx = await browser.newContext();
    try {
      const page = await ctx.newPage();
      await logIn(page, base, 'ops', 'ops-secret-1', '/admin');
      expect(await page.locator('#who').innerText()).toBe('ops (admin)');
      const clean = '/admin/queues/api/queues/inference/clean/completed';
      // From the page (the browser adds Origin: this origin): done.
      const own = (await page.evaluate(`fetch(${JSON.stringify(clean)}, { method: 'PUT' }).then((r) => r.status)`)) as number;
      expect(own).toBeLessThan(300);
      // The same cookie without the browser's Origin (or with another one): refused.
      const [cookie] = await ctx.cookies(base);
      const jar = `${cookie!.name}=${cookie!.value}`;
      expect((await fetch(`${base}${clean}`, { method: 'PUT', headers: { cookie: jar } })).status).toBe(403);
      expect((await fetch(`${base}${clean}`, { method: 'PUT', headers: { cookie: jar, origin: attackerBase } })).status).toBe(403);
    } finally {
      await ctx.close();
    }
  });

  it('password guessing at one user is stopped after http.sessions.loginAttemptsPerMinute posts (429); other users still log in', async () => {
    const ctx = await browser.newContext();
    try {
      const page = await ctx.newPage();
      await page.goto(`${base}/login`);
      const limit = config.http.sessions.loginAttemptsPerMinute;
      const statuses: number[] = [];
      for (let i = 0; i <= limit; i++) {
        await page.fill('#username', 'dr.guess');
        await page.fill('#password', `wrong-${i}`);
        const [res] = await Promise.all([
          page.waitForResponse((r) => r.url() === `${base}/login` && r.request().method() === 'POST'),
          page.click('#login'),
        ]);
        statuses.push(res.status());
        if (res.status() === 429) {
          expect(Number(res.headers()['retry-after'])).toBeGreaterThan(0);
          expect(await res.text()).toContain('Too many login attempts');
        } else {
          await page.waitForSelector('#login-form');
        }
      }
      expect(statuses).toEqual([...Array(limit).fill(401), 429]);
      // The brake is per user name from an address: the radiologist is not locked out by the guesser.
      await logIn(page, base, 'dr.ray', 'ray-password-1', '/admin/review');
    } finally {
      await ctx.close();
    }
  });

  it('a new password ends the sessions of the user', async () => {
    const ctx = await browser.newContext();
    try {
      const page = await ctx.newPage();
      await logIn(page, base, 'clerk', 'clerk-password-1', '/admin');
      expect((await sessionRows(config)).filter((s) => s.user_name === 'clerk').length).toBeGreaterThan(0);
      expect((await cli(env, ['users', 'passwd', 'clerk'], 'clerk-password-2\n')).code).toBe(0);
      expect((await sessionRows(config)).filter((s) => s.user_name === 'clerk')).toEqual([]);
      await page.goto(`${base}/admin`);
      expect(new URL(page.url()).pathname).toBe('/login');
    } finally {
      await ctx.close();
    }
  });
});

describe('first start: empty password on loopback, clearly marked', () => {
  let config: Config;
  let daemon: DaemonProcess;

  beforeAll(async () => {
    config = await testConfig('sessions-first', { http: { username: 'admin', password: '' } });
    daemon = new DaemonProcess(envOf(config));
    await daemon.start();
  }, 60_000);
  afterAll(async () => {
    await daemon?.stop('SIGKILL');
    await cleanup(config);
  });

  it('the login page and every page say so; the admin logs in with the empty password', async () => {
    const base = `http://127.0.0.1:${daemon.httpPort}`;
    const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS, headless: true });
    try {
      const page = await browser.newPage();
      await page.goto(`${base}/admin`);
      expect(await page.locator('#first-start').innerText()).toMatch(/First-start default: user admin with an empty password/);
      await page.fill('#username', 'admin');
      await Promise.all([page.waitForURL(`${base}/admin`), page.click('#login')]);
      expect(await page.locator('#who').innerText()).toBe('admin (admin)');
      expect(await page.locator('#first-start').innerText()).toMatch(/empty password, accepted only because the node listens on loopback/);
    } finally {
      await browser.close();
    }
  });
});
