/**
 * Every user action through the real HTTP API of a real `mlsam admin` (real Redis, SQLite results
 * store in its spool) lands in the audit table naming the user and the role: series actions (force,
 * re-score, re-send; by the API and by the dashboard's form), the retention pass, the silent-mode
 * switch of a destination, Bull Board's queue operations, feedback. Users are real (`mlsam users
 * add`, an API token from `mlsam users token`); a radiologist's attempt at an admin action is
 * refused and leaves no action row. In silent mode a re-send is held, not queued.
 */
import { execFile } from 'node:child_process';
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config/schema.js';
import { openResultsDb } from '../../src/db/open.js';
import { resultRow } from '../../src/db/result-row.js';
import type { AuditRow } from '../../src/db/tables.js';
import { DISPATCH_QUEUE } from '../../src/queue/jobs.js';
import { MLSAM_MAIN } from '../helpers/process.js';
import { cleanup, freePort, testConfig } from '../queue/helpers.js';
import { fakeRecord } from '../db/helpers.js';
import {
  DaemonProcess,
  envOf,
  http,
  plainRedis,
  spoolSeries,
  trackSeries,
  writeDispatch,
  writeResult,
  type SeededSeries,
} from './helpers.js';

const redisUrl = 'redis://127.0.0.1:6379';
const redis = plainRedis(redisUrl);
let config: Config;
let env: Record<string, string>;
let daemon: DaemonProcess;
let token = '';
let waiting: SeededSeries;
let scored: SeededSeries;

function cli(args: string[], stdin = ''): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [MLSAM_MAIN, ...args], { env: { ...process.env, ...env } }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
    child.stdin?.end(stdin);
  });
}

/** A request as the admin user it.lead (API token). */
function asLead(path: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  headers.set('authorization', `Bearer ${token}`);
  return fetch(`http://127.0.0.1:${daemon.httpPort}${path}`, { ...init, headers, redirect: 'manual' });
}
const json = (body: unknown): RequestInit => ({
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify(body),
});

async function audit(): Promise<AuditRow[]> {
  const db = await openResultsDb(config);
  try {
    return (await db.listAudit(500)).reverse();
  } finally {
    await db.conn.close();
  }
}

const detailOf = (a: AuditRow): Record<string, unknown> => JSON.parse(a.detail ?? '{}') as Record<string, unknown>;

beforeAll(async () => {
  config = await testConfig('action-audit', {
    http: { username: 'ops', password: 'ops-secret-1' },
    destinations: [{ name: 'pacs', aeTitle: 'PACS', host: '127.0.0.1', port: await freePort() }],
    series: { quietPeriodSeconds: 30, routing: { minSlices: 3 } },
  });
  env = envOf(config, { MLSAM_DISPATCH__MODE: 'silent' });
  waiting = await spoolSeries(config, 3);
  await trackSeries(redis, config, waiting, { status: 'receiving', lastReceivedAt: Date.now() - 12_000 });
  scored = await spoolSeries(config, 4);
  await trackSeries(redis, config, scored, { status: 'queued' });
  const rec = await writeResult(redis, config, scored, 'scored');
  await writeDispatch(redis, config, scored, 'pacs', 'failed');
  const db = await openResultsDb(config);
  await db.saveResult(resultRow(fakeRecord(rec.studyInstanceUid, rec.seriesInstanceUid, 0.7), null));
  await db.conn.close();
  expect((await cli(['users', 'add', 'it.lead', '--role', 'admin'], 'lead-password-1\n')).code).toBe(0);
  expect((await cli(['users', 'add', 'dr.ray', '--role', 'radiologist'], 'ray-password-1\n')).code).toBe(0);
  token = (await cli(['users', 'token', 'it.lead', '--label', 'ops-console'])).stdout.trim();
  expect(token).toMatch(/^mlsam_/);
  daemon = new DaemonProcess(env);
  await daemon.start();
}, 120_000);

afterAll(async () => {
  await daemon?.stop('SIGKILL');
  if (config) await cleanup(config);
  redis.disconnect();
});

describe('user actions in the audit table', () => {
  it('series actions by API and dashboard, retention, the silent-mode switch and Bull Board operations name the user and role', async () => {
    const force = await asLead(`/api/series/${waiting.seriesInstanceUid}/force`, { method: 'POST' });
    expect(force.status).toBe(200);
    expect((await asLead(`/api/series/${scored.seriesInstanceUid}/rescore`, { method: 'POST' })).status).toBe(200);
    // Silent (dispatch.mode from the environment): the re-send is held, nothing is queued.
    const resend = await asLead(`/api/series/${scored.seriesInstanceUid}/resend`, { method: 'POST' });
    expect(await resend.json()).toMatchObject({ ok: true, held: ['pacs'] });
    const dq = new Queue(DISPATCH_QUEUE, { connection: { url: redisUrl }, prefix: config.redis.keyPrefix });
    try {
      expect(await dq.getJobCounts('waiting', 'delayed', 'active')).toMatchObject({ waiting: 0, delayed: 0, active: 0 });
    } finally {
      await dq.close();
    }
    const form = await asLead(`/admin/series/${scored.seriesInstanceUid}/resend`, { method: 'POST' });
    expect(form.status).toBe(303);
    expect((await asLead('/api/retention/run', { method: 'POST' })).status).toBe(200);
    expect((await asLead('/api/dispatch/release', json({ destination: 'pacs' }))).status).toBe(200);
    expect((await asLead('/api/dispatch/silence', json({ destination: 'pacs' }))).status).toBe(200);
    // The dashboard's control: the page shows the admin the forms; the form switches back to silent.
    expect(await (await asLead('/admin/dispatch')).text()).toContain('action="/admin/dispatch/release"');
    const silenceForm = await asLead('/admin/dispatch/silence', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'destination=pacs',
    });
    expect(silenceForm.status).toBe(303);
    expect(silenceForm.headers.get('location')).toMatch(/^\/admin\/dispatch\?ok=1&msg=Silent/);
    expect((await asLead('/api/dispatch/release', json({ destination: 'nowhere' }))).status).toBe(404);
    expect((await asLead('/api/dispatch/release', json({ sendHeld: 'yes' }))).status).toBe(400);
    expect((await asLead('/admin/queues/api/queues/inference/pause', { method: 'PUT' })).status).toBe(200);
    expect((await asLead('/admin/queues/api/queues/inference/resume', { method: 'PUT' })).status).toBe(200);

    const ray = http(daemon.httpPort, ['dr.ray', 'ray-password-1']);
    expect((await ray('/api/dispatch/release', json({}))).status).toBe(403);
    const rayPage = await (await ray('/admin/dispatch')).text();
    expect(rayPage).toContain('Only an admin switches the dispatch mode.');
    expect(rayPage).not.toContain('action="/admin/dispatch/release"');
    expect((await ray(`/api/series/${scored.seriesInstanceUid}/resend`, { method: 'POST' })).status).toBe(403);
    const fb = await ray(`/api/studies/${scored.studyInstanceUid}/feedback`, json({ label: 'normal' }));
    expect(fb.status).toBe(201);

    const rows = (await audit()).filter((a) => !a.action.startsWith('user-') && a.action !== 'token-add');
    const seen = rows.map((a) => {
      const d = detailOf(a);
      return [a.action, a.user_name, d.role, d.via ?? d.source ?? null, a.series_instance_uid];
    });
    expect(seen).toEqual([
      ['force', 'it.lead', 'admin', 'api', waiting.seriesInstanceUid],
      ['rescore', 'it.lead', 'admin', 'api', scored.seriesInstanceUid],
      ['resend', 'it.lead', 'admin', 'api', scored.seriesInstanceUid],
      ['resend', 'it.lead', 'admin', 'dashboard', scored.seriesInstanceUid],
      ['retention-run', 'it.lead', 'admin', 'api', null],
      ['dispatch-release', 'it.lead', 'admin', 'api', null],
      ['dispatch-silence', 'it.lead', 'admin', 'api', null],
      ['dispatch-silence', 'it.lead', 'admin', 'dashboard', null],
      ['queue-job', 'it.lead', 'admin', 'bull-board', null],
      ['queue-job', 'it.lead', 'admin', 'bull-board', null],
      ['feedback', 'dr.ray', 'radiologist', 'api', null],
    ]);
    // What each entry says beyond who: the outcome, the targets, the operation.
    const by = (action: string) => rows.filter((a) => a.action === action).map(detailOf);
    expect(by('resend')[0]).toMatchObject({ ok: true, held: ['pacs'] });
    expect(by('dispatch-release')[0]).toMatchObject({ scope: 'target', targets: ['pacs'], sendHeld: false });
    expect(by('queue-job').map((d) => d.path)).toEqual([
      '/admin/queues/api/queues/inference/pause',
      '/admin/queues/api/queues/inference/resume',
    ]);
    expect(rows.find((a) => a.action === 'resend')?.study_instance_uid).toBe(scored.studyInstanceUid);
  });
});
