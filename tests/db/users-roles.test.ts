/**
 * Local users and roles against a real `mlsam admin` (SQLite store in its spool): users made with
 * `mlsam users add` (password on standard input, stored as a bcrypt hash), an API token from
 * `mlsam users token`. A viewer reads but may not give feedback or act (403); a radiologist gives
 * feedback (with their name in the audit table) but may not act; the configured basic-auth admin
 * still does everything; a wrong password or token gets 401; `mlsam users remove` locks the user out.
 */
import { execFile } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config/schema.js';
import { openResultsDb, storeUrl } from '../../src/db/open.js';
import { resultRow } from '../../src/db/result-row.js';
import { DaemonProcess, envOf, http } from '../admin/helpers.js';
import { MLSAM_MAIN } from '../helpers/process.js';
import { cleanup, testConfig } from '../queue/helpers.js';
import { fakeRecord } from './helpers.js';

function cli(env: Record<string, string>, args: string[], stdin = ''): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [MLSAM_MAIN, ...args], { env: { ...process.env, ...env } }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
    child.stdin?.end(stdin);
  });
}

describe('users and roles', () => {
  let config: Config;
  let env: Record<string, string>;
  let daemon: DaemonProcess;
  let token = '';

  beforeAll(async () => {
    config = await testConfig('users', { http: { username: 'ops', password: 'ops-secret-1' } });
    env = envOf(config);
    const db = await openResultsDb(config);
    await db.saveResult(resultRow(fakeRecord('1.2.60', '1.2.60.1', 0.7), null));
    await db.conn.close();
    expect((await cli(env, ['users', 'add', 'dr.ray', '--role', 'radiologist'], 'ray-password-1\n')).stdout).toMatch(
      /user dr\.ray added \(radiologist\)/,
    );
    expect((await cli(env, ['users', 'add', 'clerk', '--role', 'viewer'], 'clerk-password-1\n')).code).toBe(0);
    const short = await cli(env, ['users', 'add', 'weak', '--role', 'viewer'], 'short\n');
    expect(short.code).toBe(1);
    expect(short.stderr).toMatch(/at least 10 characters/);
    const badRole = await cli(env, ['users', 'add', 'x', '--role', 'superuser'], 'long-enough-pw\n');
    expect(badRole.stderr).toMatch(/role "superuser" is not one of admin, radiologist, viewer/);
    token = (await cli(env, ['users', 'token', 'dr.ray', '--label', 'ris'])).stdout.trim();
    expect(token).toMatch(/^mlsam_[A-Za-z0-9_-]{43}$/);
    daemon = new DaemonProcess(env);
    await daemon.start();
  }, 120_000);

  afterAll(async () => {
    await daemon?.stop('SIGKILL');
    await cleanup(config);
  });

  it('stores bcrypt hashes, not passwords', async () => {
    const db = await openResultsDb(config);
    const rows = await db.db.selectFrom('users').selectAll().orderBy('name').execute();
    await db.conn.close();
    expect(rows.map((r) => [r.name, r.role])).toEqual([
      ['clerk', 'viewer'],
      ['dr.ray', 'radiologist'],
    ]);
    for (const r of rows) expect(r.password_hash).toMatch(/^\$2[aby]\$11\$/);
    expect(storeUrl(config)).toContain(config.spool.dir);
  });

  it('a viewer reads but may not answer or act', async () => {
    const viewer = http(daemon.httpPort, ['clerk', 'clerk-password-1']);
    expect((await viewer('/api/validation')).status).toBe(200);
    expect((await viewer('/admin/review')).status).toBe(200);
    const fb = await viewer('/api/studies/1.2.60/feedback', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"label":"normal"}',
    });
    expect(fb.status).toBe(403);
    expect(((await fb.json()) as { error: string }).error).toMatch(/clerk \(viewer\)/);
    expect((await viewer('/api/retention/run', { method: 'POST' })).status).toBe(403);
  });

  it('a radiologist answers (named in the audit table) but may not act; by password or API token', async () => {
    const ray = http(daemon.httpPort, ['dr.ray', 'ray-password-1']);
    const fb = await ray('/api/studies/1.2.60/feedback', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"label":"covid-pattern"}',
    });
    expect(fb.status).toBe(201);
    expect(await fb.json()).toMatchObject({ user: 'dr.ray', agree: true });
    expect((await ray('/api/series/1.2.60.1/rescore', { method: 'POST' })).status).toBe(403);
    const byToken = await fetch(`http://127.0.0.1:${daemon.httpPort}/api/studies/1.2.60/feedback`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: '{"label":"other-opacity","comment":"via RIS"}',
    });
    expect(byToken.status).toBe(201);
    const bad = await fetch(`http://127.0.0.1:${daemon.httpPort}/api/validation`, {
      headers: { authorization: `Bearer mlsam_${'x'.repeat(43)}` },
    });
    expect(bad.status).toBe(401);
    expect((await http(daemon.httpPort, ['dr.ray', 'wrong-password'])('/api/validation')).status).toBe(401);
    const db = await openResultsDb(config);
    const audit = await db.listAudit();
    await db.conn.close();
    expect(audit.filter((a) => a.action === 'feedback').map((a) => a.user_name)).toEqual(['dr.ray', 'dr.ray']);
    expect(audit.filter((a) => a.action.startsWith('user-') || a.action === 'token-add').length).toBe(3);
  });

  it('the configured admin still does everything; a removed user is locked out', async () => {
    const ops = http(daemon.httpPort, ['ops', 'ops-secret-1']);
    expect((await ops('/api/retention/run', { method: 'POST' })).status).toBe(200);
    expect((await cli(env, ['users', 'remove', 'dr.ray'])).code).toBe(0);
    expect((await http(daemon.httpPort, ['dr.ray', 'ray-password-1'])('/api/validation')).status).toBe(401);
    expect(
      (await fetch(`http://127.0.0.1:${daemon.httpPort}/api/validation`, { headers: { authorization: `Bearer ${token}` } })).status,
    ).toBe(401);
  });
});
