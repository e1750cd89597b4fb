/**
 * Silent mode against a real PACS (Debian's Orthanc, loopback) and a real `mlsam serve` (real
 * Redis, SQLite results store in its spool): with `dispatch.mode: "silent"` a scored series is in
 * the result store and the durable store, shown with the SILENT MODE banner on every page, and
 * Orthanc holds nothing; an admin (a real user with an API token) releases with sendHeld and the
 * result objects arrive once (a second release adds nothing, the node's send log has one send);
 * the admin's switch back to silent survives a restart with a config file that now says "live",
 * and a release without sendHeld sends nothing of what was held. Every switch is in the audit table
 * with the user and role.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ResultRecord, DispatchState, DispatchAttempt } from '../../src/contracts/result-record.js';
import { openResultsDb } from '../../src/db/open.js';
import { loadConfig } from '../../src/config/load.js';
import { freePort } from '../../src/demo/child-process.js';
import { startOrthanc, type Orthanc } from '../../src/demo/orthanc.js';
import { writePhantomSeries } from '../../src/demo/phantom.js';
import { dropRedisPrefix, MlsamProcess } from '../../src/demo/processes.js';
import { Keys } from '../../src/stores/keys.js';
import { run } from '../helpers/dcmtk.js';
import { MLSAM_MAIN } from '../helpers/process.js';
import { sleep, uniquePrefix, waitFor } from '../queue/helpers.js';

const REDIS_URL = 'redis://127.0.0.1:6379';
const ADMIN: [string, string] = ['ops', 'ops-secret-1'];

let work: string;
let orthanc: Orthanc;
let node: MlsamProcess | undefined;
let nodeConfig: Record<string, unknown>;
let dicomPort: number;
let httpPort: number;
let prefix: string;
let redis: Redis;
let keys: Keys;
let token = '';
let starts = 0;

async function startNode(mode: 'live' | 'silent'): Promise<void> {
  nodeConfig = { ...nodeConfig, dispatch: { mode, backoffSeconds: 1, maxBackoffSeconds: 5 } };
  node = await MlsamProcess.start({ command: 'serve', workDir: work, config: nodeConfig, name: `serve-${++starts}` });
  await node.waitListening(60_000);
  httpPort = await node.waitForLog((r) => (r.msg === 'admin listening' && typeof r.port === 'number' ? r.port : undefined), 60_000);
}

function cli(args: string[], stdin = ''): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const env = { ...process.env, MLSAM_CONFIG: node!.configPath, MLSAM_LOG__LEVEL: 'warn' };
    const child = execFile(process.execPath, [MLSAM_MAIN, ...args], { env }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
    child.stdin?.end(stdin);
  });
}

/** The API as the admin user `it.lead` (API token). */
async function api(path: string, body?: unknown): Promise<{ status: number; json: unknown }> {
  const r = await fetch(`http://127.0.0.1:${httpPort}${path}`, {
    method: body === undefined ? 'GET' : 'POST',
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: r.status, json: await r.json() };
}

async function page(path: string): Promise<string> {
  const r = await fetch(`http://127.0.0.1:${httpPort}${path}`, {
    headers: { authorization: `Basic ${Buffer.from(ADMIN.join(':')).toString('base64')}` },
  });
  return r.text();
}

async function sendSeries(seed: number): Promise<{ study: string; series: string }> {
  const ph = await writePhantomSeries({ dir: join(work, `phantom-${seed}`), slices: 30, size: 256, seed });
  const r = await run('storescu', [
    '-aet',
    'MODALITY',
    '-aec',
    'MLSAM',
    '127.0.0.1',
    String(dicomPort),
    ...ph.instances.map((i) => i.path),
  ]);
  expect(r.code, r.stderr).toBe(0);
  return { study: ph.studyInstanceUid, series: ph.seriesInstanceUid };
}

async function record(series: string): Promise<ResultRecord | undefined> {
  const j = await redis.get(keys.result(series));
  return j ? (JSON.parse(j) as ResultRecord) : undefined;
}

async function pacsState(series: string): Promise<DispatchState | undefined> {
  const j = await redis.hget(keys.dispatch(series), 'pacs');
  return j ? (JSON.parse(j) as DispatchState) : undefined;
}

const orthancInstances = async (): Promise<string[]> => orthanc.get<string[]>('/instances');

/** Waits until the series' result is written and its dispatch to the PACS is held. */
async function waitHeld(series: string): Promise<ResultRecord> {
  return waitFor(
    async () => {
      if (!node?.running) throw new Error(`mlsam serve exited:\n${node?.log().slice(-3000)}`);
      const rec = await record(series);
      return rec?.outputs?.length && (await pacsState(series))?.status === 'held' ? rec : undefined;
    },
    300_000,
    `the result of ${series}, held`,
    500,
  );
}

async function auditRows(): Promise<Array<{ user_name: string; action: string; detail: string | null }>> {
  const cfg = loadConfig({ env: { MLSAM_CONFIG: node!.configPath } });
  const db = await openResultsDb(cfg);
  try {
    return await db.listAudit();
  } finally {
    await db.conn.close();
  }
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'mlsam-silent-'));
  prefix = uniquePrefix('e2e-silent');
  redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 2 });
  keys = new Keys(prefix);
  dicomPort = await freePort();
  orthanc = await startOrthanc({ modalities: { mlsam: { aeTitle: 'MLSAM', port: dicomPort } } });
  nodeConfig = {
    dicom: { aeTitle: 'MLSAM', host: '127.0.0.1', port: dicomPort },
    redis: { url: REDIS_URL, keyPrefix: prefix },
    spool: { dir: join(work, 'spool') },
    series: { quietPeriodSeconds: 2 },
    destinations: [{ name: 'pacs', aeTitle: 'ORTHANC', host: '127.0.0.1', port: orthanc.dicomPort }],
    http: { host: '127.0.0.1', port: 0, username: ADMIN[0], password: ADMIN[1] },
    results: { presentationStates: false, segmentation: false },
    log: { level: 'info' },
  };
  await startNode('silent');
  expect((await cli(['users', 'add', 'it.lead', '--role', 'admin'], 'lead-password-1\n')).code).toBe(0);
  token = (await cli(['users', 'token', 'it.lead', '--label', 'go-live'])).stdout.trim();
  expect(token).toMatch(/^mlsam_/);
}, 180_000);

afterAll(async () => {
  await node?.stop();
  await orthanc?.stop();
  redis?.disconnect();
  if (prefix) await dropRedisPrefix(REDIS_URL, prefix);
  if (work) await rm(work, { recursive: true, force: true });
});

describe('silent mode with Orthanc as the PACS', () => {
  let first: { study: string; series: string };
  let firstRecord: ResultRecord;

  it('scores and stores a series but sends nothing to Orthanc; every page says SILENT MODE', async () => {
    first = await sendSeries(1);
    firstRecord = await waitHeld(first.series);
    expect(['scored', 'not-scored']).toContain(firstRecord.status);
    // Give a stray dispatch job every chance to run: nothing may arrive.
    await sleep(3_000);
    expect(await orthancInstances()).toEqual([]);
    expect(await redis.llen(keys.dispatchLog(first.series))).toBe(0);
    const rows = await (async () => {
      const db = await openResultsDb(loadConfig({ env: { MLSAM_CONFIG: node!.configPath } }));
      try {
        return await db.latestResults(first.study);
      } finally {
        await db.conn.close();
      }
    })();
    expect(rows.map((r) => r.series_instance_uid)).toEqual([first.series]);

    const mode = (await api('/api/dispatch/mode')).json as {
      silent: string[];
      held: Record<string, number>;
      targets: Array<{ source: string }>;
    };
    expect(mode.silent).toEqual(['pacs']);
    expect(mode.held).toEqual({ pacs: 1 });
    expect(mode.targets[0]?.source).toBe('global config');
    for (const p of [
      '/admin',
      `/admin/series/${first.series}`,
      '/admin/studies',
      '/admin/targets',
      '/admin/review',
      '/admin/validation',
      '/admin/dispatch',
      '/admin/queues',
      '/admin/nowhere',
    ]) {
      expect(await page(p), p).toContain('SILENT MODE — results are not sent to pacs');
    }
    expect(await page(`/admin/series/${first.series}`)).toContain('held (silent mode)');
  });

  it('a release with sendHeld sends the held result once; a second release sends nothing more', async () => {
    const r = await api('/api/dispatch/release', { sendHeld: true });
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ targets: ['pacs'], released: [{ target: 'pacs', sent: 1, withheld: 0 }] });
    const n = firstRecord.outputs!.length;
    await waitFor(async () => ((await orthancInstances()).length >= n ? true : undefined), 120_000, 'the released results in Orthanc', 500);
    expect(await page('/admin')).not.toContain('SILENT MODE');
    const again = await api('/api/dispatch/release', { sendHeld: true });
    expect(again.json).toMatchObject({ released: [{ target: 'pacs', sent: 0, withheld: 0 }] });
    await sleep(4_000);
    const instances = await orthancInstances();
    expect(instances).toHaveLength(n);
    const uids = new Set(await Promise.all(instances.map(async (id) => String((await orthanc.instanceTags(id)).SOPInstanceUID))));
    expect(uids).toEqual(new Set(firstRecord.outputs!.map((o) => o.sopInstanceUid)));
    // The node's own send log: one attempt, sent, all files.
    const log = (await redis.lrange(keys.dispatchLog(first.series), 0, -1)).map((j) => JSON.parse(j) as DispatchAttempt);
    expect(log.map((a) => [a.outcome, a.sent])).toEqual([['sent', n]]);
    expect((await pacsState(first.series))?.status).toBe('sent');
  });

  it("the admin's switch back to silent survives a restart (over a config file that says live); a release without sendHeld sends nothing held", async () => {
    const s = await api('/api/dispatch/silence', {});
    expect(s).toMatchObject({ status: 200, json: { targets: ['pacs'] } });
    await node!.stop();
    await startNode('live');
    const mode = (await api('/api/dispatch/mode')).json as { silent: string[]; targets: Array<{ source: string; changedBy?: string }> };
    expect(mode.silent).toEqual(['pacs']);
    expect(mode.targets[0]).toMatchObject({ source: 'setting', changedBy: 'it.lead' });
    const before = (await orthancInstances()).length;
    const second = await sendSeries(2);
    await waitHeld(second.series);
    await sleep(3_000);
    expect((await orthancInstances()).length).toBe(before);
    expect(await page('/admin')).toContain('SILENT MODE — results are not sent to pacs');

    const r = await api('/api/dispatch/release', {});
    expect(r.json).toMatchObject({ released: [{ target: 'pacs', sent: 0, withheld: 1 }] });
    await sleep(4_000);
    expect((await orthancInstances()).length).toBe(before);
    expect((await pacsState(second.series))?.status).toBe('withheld');

    const audit = (await auditRows()).filter((a) => a.action.startsWith('dispatch-'));
    expect(audit.map((a) => [a.action, a.user_name, (JSON.parse(a.detail ?? '{}') as { role?: string }).role])).toEqual([
      ['dispatch-release', 'it.lead', 'admin'],
      ['dispatch-silence', 'it.lead', 'admin'],
      ['dispatch-release', 'it.lead', 'admin'],
      ['dispatch-release', 'it.lead', 'admin'],
    ]);
  });
});
