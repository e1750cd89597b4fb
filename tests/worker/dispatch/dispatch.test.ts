/**
 * Dispatch into DCMTK storescp: one job per (result, destination), per-instance status, retries
 * with capped exponential backoff, parked failures an admin can retry, C-ECHO of destinations.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { dispatchJobId } from '../../../src/queue/jobs.js';
import { Keys } from '../../../src/stores/keys.js';
import { dispatchBackoffMs, DISPATCH_JOB_NAME } from '../../../src/worker/dispatch/dispatcher.js';
import { readDestinationEchoes } from '../../../src/stores/destination-echoes.js';
import { DispatchRole } from '../../../src/node/dispatch-role.js';
import { DISPATCH_LOG_CAP } from '../../../src/stores/dispatch-state.js';
import { cleanup, freePort, logger, testConfig, waitFor } from '../../queue/helpers.js';
import { destination, Harness, makeResultSet, makeScoredResultSet, startStorescp, type Storescp } from './helpers.js';
import { startScriptedScp } from './scripted-scp.js';

let work: string;
const toStop: Array<{ stop(): Promise<void> }> = [];
const harnesses: Harness[] = [];
const configs: Array<Parameters<typeof cleanup>[0]> = [];

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'mlsam-dispatch-'));
});
afterEach(async () => {
  for (const h of harnesses.splice(0)) await h.close();
  for (const s of toStop.splice(0)) await s.stop();
  for (const c of configs.splice(0)) await cleanup(c);
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

async function scp(port?: number): Promise<Storescp> {
  const s = await startStorescp(port ?? (await freePort()));
  toStop.push(s);
  return s;
}

function counts(uids: string[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const u of uids) m.set(u, (m.get(u) ?? 0) + 1);
  return m;
}

describe('dispatch backoff', () => {
  it('doubles from backoffSeconds and stops at maxBackoffSeconds', () => {
    const d = { attempts: 10, backoffSeconds: 15, maxBackoffSeconds: 900, timeoutSeconds: 30, echoCron: '* * * * *' };
    expect([1, 2, 3, 4, 5, 6, 7, 8, 9].map((n) => dispatchBackoffMs(n, d) / 1000)).toEqual([15, 30, 60, 120, 240, 480, 900, 900, 900]);
  });
});

describe('dispatch state in Redis', () => {
  it("keeps the latest requested dispatch: an older job's tries do not overwrite a newer job's state; the log is capped", async () => {
    const config = await testConfig('dispatch', { destinations: [] });
    configs.push(config);
    const h = new Harness(config, false);
    harnesses.push(h);
    const store = h.dispatcher.store;
    const base = { destination: 'pacs', attempts: 0, instancesSent: 0, warnings: 0 };
    await store.setState('1.2.3', { ...base, instancesHash: 'old', status: 'pending', jobId: 'job-old' });
    expect(await store.updateState('1.2.3', { ...base, instancesHash: 'old', status: 'sending', jobId: 'job-old', attempts: 1 })).toBe(
      true,
    );
    await store.setState('1.2.3', { ...base, instancesHash: 'new', status: 'pending', jobId: 'job-new' });
    expect(await store.updateState('1.2.3', { ...base, instancesHash: 'old', status: 'failed', jobId: 'job-old', attempts: 2 })).toBe(
      false,
    );
    expect(await store.getState('1.2.3', 'pacs')).toMatchObject({ jobId: 'job-new', status: 'pending' });
    expect(await store.updateState('1.2.3', { ...base, instancesHash: 'new', status: 'sent', jobId: 'job-new', attempts: 1 })).toBe(true);
    expect(await store.getState('1.2.3', 'pacs')).toMatchObject({ jobId: 'job-new', status: 'sent' });
    for (let i = 1; i <= DISPATCH_LOG_CAP + 5; i++) {
      await store.logAttempt('1.2.3', {
        destination: 'pacs',
        instancesHash: 'new',
        attempt: i,
        at: new Date().toISOString(),
        ms: 1,
        outcome: 'failed',
        sent: 0,
        warnings: 0,
        failed: 1,
      });
    }
    const log = await store.attempts('1.2.3');
    expect(log).toHaveLength(DISPATCH_LOG_CAP);
    expect(log[0]!.attempt).toBe(DISPATCH_LOG_CAP + 5);
  });
});

describe('dispatch to DCMTK storescp (and a scripted SCP for per-instance statuses)', () => {
  it('sends every result file once, records state and attempt; a second enqueue is the same job; an admin re-send sends all again', async () => {
    const s = await scp();
    const config = await testConfig('dispatch', { destinations: [destination('pacs', s.port)] });
    configs.push(config);
    const h = new Harness(config);
    harnesses.push(h);
    const set = await makeScoredResultSet(config);
    const series = set.record.seriesInstanceUid;
    const jobId = dispatchJobId(series, set.record.instancesHash, '1.0.0', 'pacs');

    const [first] = await h.dispatcher.enqueue(set.record, 'worker');
    const [second] = await h.dispatcher.enqueue(set.record, 'worker');
    expect(first).toMatchObject({ destination: 'pacs', jobId, outcome: 'added' });
    expect(second).toMatchObject({ jobId, outcome: 'exists' });
    expect(await h.dispatcher.queue.getJobCounts('waiting', 'active', 'completed', 'delayed', 'failed')).toSatisfy(
      (c: Record<string, number>) => Object.values(c).reduce((a, b) => a + b, 0) === 1,
    );

    const job = await h.waitState(jobId, ['completed']);
    expect(job.name).toBe(DISPATCH_JOB_NAME);
    // SR, Key Object Selection, two heatmaps, two presentation states, summary
    const n = set.files.length;
    expect(n).toBe(7);
    expect(job.returnvalue).toMatchObject({ destination: 'pacs', delivered: n, warnings: 0, sentThisAttempt: n, attempt: 1 });
    const got = counts(s.receptions());
    expect([...got.keys()].sort()).toEqual([...set.sopInstanceUids].sort());
    expect([...got.values()].every((n) => n === 1)).toBe(true);

    const state = await h.dispatcher.store.getState(series, 'pacs');
    expect(state).toMatchObject({
      status: 'sent',
      attempts: 1,
      instancesSent: n,
      warnings: 0,
      jobId,
      instancesHash: set.record.instancesHash,
    });
    expect(state?.sentAt).toBeTruthy();
    const log = await h.dispatcher.store.attempts(series);
    expect(log).toHaveLength(1);
    expect(log[0]).toMatchObject({ destination: 'pacs', attempt: 1, outcome: 'sent', sent: n, failed: 0 });
    // The result record itself is not touched by the dispatcher.
    expect(await (await h.ready()).exists(new Keys(config.redis.keyPrefix).result(series))).toBe(0);

    // The inference worker enqueueing the same result again sends nothing.
    expect((await h.dispatcher.enqueue(set.record, 'worker'))[0]!.outcome).toBe('exists');
    await new Promise((r) => setTimeout(r, 500));
    expect(s.receptions()).toHaveLength(n);

    // An admin re-send retries the completed job in place: every file goes again.
    const [again] = await h.dispatcher.enqueue(set.record, 'admin');
    expect(again).toMatchObject({ jobId, outcome: 'retried', previousState: 'completed' });
    await waitFor(
      async () => s.receptions().length >= 2 * n && (await (await h.job(jobId))?.getState()) === 'completed',
      20_000,
      'the re-send',
    );
    expect([...counts(s.receptions()).values()]).toEqual(Array(n).fill(2));
    expect((await h.dispatcher.store.attempts(series)).map((a) => a.outcome)).toEqual(['sent', 'sent']);
  });

  it('a destination down for a while receives the results exactly once when it comes up, after backoff retries', async () => {
    const port = await freePort();
    const config = await testConfig('dispatch', {
      destinations: [destination('late', port)],
      dispatch: { attempts: 10, backoffSeconds: 0.4, maxBackoffSeconds: 0.8, timeoutSeconds: 3 },
    });
    configs.push(config);
    const h = new Harness(config);
    harnesses.push(h);
    const set = await makeResultSet(join(work, 'b'), 3);
    const series = set.record.seriesInstanceUid;
    const [r] = await h.dispatcher.enqueue(set.record, 'worker');

    // Three failed tries while nothing listens.
    await waitFor(async () => (await h.dispatcher.store.attempts(series)).length >= 3 || undefined, 20_000, '3 failed attempts');
    const down = await h.dispatcher.store.getState(series, 'late');
    expect(down).toMatchObject({ status: 'pending', instancesSent: 0 });
    expect(down?.lastError).toMatch(/not stored/);
    const s = await scp(port);
    const job = await h.waitState(r!.jobId, ['completed'], 20_000);

    const got = counts(s.receptions());
    expect([...got.keys()].sort()).toEqual([...set.sopInstanceUids].sort());
    expect([...got.values()].every((n) => n === 1)).toBe(true);
    const log = (await h.dispatcher.store.attempts(series)).reverse();
    expect(log.length).toBeGreaterThanOrEqual(4);
    expect(log.slice(0, -1).every((a) => a.outcome === 'failed' && a.sent === 0 && a.failed === 3)).toBe(true);
    expect(log.at(-1)).toMatchObject({ outcome: 'sent', sent: 3, attempt: log.length });
    expect(log.map((a) => a.attempt)).toEqual(log.map((_, i) => i + 1));
    // Gaps between tries follow the capped exponential backoff (0.4 s, 0.8 s, 0.8 s…), never shorter.
    const at = log.map((a) => Date.parse(a.at));
    for (let i = 1; i < at.length; i++) {
      expect(at[i]! - at[i - 1]!).toBeGreaterThanOrEqual(dispatchBackoffMs(i, config.dispatch) - 50);
    }
    expect(job.attemptsMade).toBe(log.length);
    expect(await h.dispatcher.store.getState(series, 'late')).toMatchObject({ status: 'sent', attempts: log.length, instancesSent: 3 });
  });

  it('checks each instance status: a warning counts as delivered, a refused instance fails the attempt and is resent alone until stored', async () => {
    const peer = await startScriptedScp();
    toStop.push(peer);
    const config = await testConfig('dispatch', {
      destinations: [destination('pacs', peer.port, 'SCRIPTED')],
      dispatch: { attempts: 5, backoffSeconds: 0.2, maxBackoffSeconds: 0.4, timeoutSeconds: 3 },
    });
    configs.push(config);
    const h = new Harness(config);
    harnesses.push(h);
    const set = await makeResultSet(join(work, 'g'), 4);
    const series = set.record.seriesInstanceUid;
    const [warned, , refused] = set.sopInstanceUids;
    peer.script(warned!, [0xb007]); // Coercion of data elements: a warning
    peer.script(refused!, [0xa700, 0xc000]); // Out of resources, then cannot understand, then Success
    const [r] = await h.dispatcher.enqueue(set.record, 'worker');
    const job = await h.waitState(r!.jobId, ['completed'], 20_000);

    expect(job.attemptsMade).toBe(3);
    expect(job.returnvalue).toMatchObject({ delivered: 4, warnings: 1, sentThisAttempt: 1, attempt: 3 });
    const byUid = new Map<string, number[]>();
    for (const x of peer.receptions) byUid.set(x.sopInstanceUid, [...(byUid.get(x.sopInstanceUid) ?? []), x.status]);
    expect(byUid.get(refused!)).toEqual([0xa700, 0xc000, 0]);
    expect(byUid.get(warned!)).toEqual([0xb007]);
    for (const uid of set.sopInstanceUids.filter((u) => u !== refused && u !== warned)) expect(byUid.get(uid)).toEqual([0]);

    const log = (await h.dispatcher.store.attempts(series)).reverse();
    expect(log.map((a) => [a.attempt, a.outcome, a.sent, a.warnings, a.failed])).toEqual([
      [1, 'failed', 3, 1, 1],
      [2, 'failed', 0, 0, 1],
      [3, 'sent', 1, 0, 0],
    ]);
    expect(log[0]!.error).toMatch(/^1 of 4 instance\(s\) not stored: status 0xa700/);
    expect(log[1]!.error).toMatch(/^1 of 1 instance\(s\) not stored: status 0xc000/);
    expect(await h.dispatcher.store.getState(series, 'pacs')).toMatchObject({ status: 'sent', attempts: 3, instancesSent: 4, warnings: 1 });
  });

  it('parks the job as failed after the last attempt; a dashboard retry and an admin re-send both deliver', async () => {
    const [portA, portB] = [await freePort(), await freePort()];
    const config = await testConfig('dispatch', {
      destinations: [destination('a', portA), destination('b', portB)],
      dispatch: { attempts: 2, backoffSeconds: 0.2, maxBackoffSeconds: 0.2, timeoutSeconds: 3 },
    });
    configs.push(config);
    const h = new Harness(config);
    harnesses.push(h);
    const set = await makeResultSet(join(work, 'c'), 2);
    const series = set.record.seriesInstanceUid;
    const added = await h.dispatcher.enqueue(set.record, 'worker');
    expect(added.map((a) => [a.destination, a.outcome])).toEqual([
      ['a', 'added'],
      ['b', 'added'],
    ]);
    const [jobA, jobB] = await Promise.all(added.map((a) => h.waitState(a.jobId, ['failed'], 20_000)));
    for (const [job, name] of [
      [jobA!, 'a'],
      [jobB!, 'b'],
    ] as const) {
      expect(job.attemptsMade).toBe(2);
      expect(job.failedReason).toMatch(/2 of 2 instance\(s\) not stored/);
      expect(await h.dispatcher.store.getState(series, name)).toMatchObject({ status: 'failed', attempts: 2, instancesSent: 0 });
    }
    expect((await h.dispatcher.queue.getFailed()).map((j) => j.id).sort()).toEqual(added.map((a) => a.jobId).sort());
    const undelivered = await h.dispatcher.listUndispatched();
    expect(undelivered).toHaveLength(0); // no result record in Redis: nothing the listing can show
    const sA = await scp(portA);
    const sB = await scp(portB);

    // Bull Board's retry: job.retry('failed') (attempts not reset: one more try).
    await jobA!.retry('failed');
    // The admin API's re-send: attempts reset.
    const re = await h.dispatcher.enqueue(set.record, 'admin', { destinations: ['b'] });
    expect(re).toEqual([{ destination: 'b', jobId: added[1]!.jobId, outcome: 'retried', previousState: 'failed' }]);
    await Promise.all(added.map((a) => h.waitState(a.jobId, ['completed'], 20_000)));
    for (const s of [sA, sB]) expect(s.receptions().sort()).toEqual([...set.sopInstanceUids].sort());
    expect(await h.dispatcher.store.getState(series, 'a')).toMatchObject({ status: 'sent', attempts: 3 });
    expect(await h.dispatcher.store.getState(series, 'b')).toMatchObject({ status: 'sent', attempts: 1 });
  });

  it('fails at once, without retries, for a destination that is not configured or result files missing from the spool', async () => {
    const s = await scp();
    const config = await testConfig('dispatch', { destinations: [destination('pacs', s.port)] });
    configs.push(config);
    const h = new Harness(config);
    harnesses.push(h);
    const set = await makeResultSet(join(work, 'd'), 2);
    const base = {
      studyInstanceUid: set.record.studyInstanceUid,
      seriesInstanceUid: set.record.seriesInstanceUid,
      instancesHash: set.record.instancesHash,
      enqueuedBy: 'worker' as const,
    };
    const opts = { attempts: 5, backoff: { type: 'dispatch-capped-exponential', delay: 100 } };
    await h.dispatcher.queue.add('send', { ...base, destination: 'gone', files: set.files }, { ...opts, jobId: 'j-gone' });
    await h.dispatcher.queue.add(
      'send',
      { ...base, destination: 'pacs', files: [...set.files, join(work, 'd', 'nope.dcm')] },
      { ...opts, jobId: 'j-missing' },
    );
    const gone = await h.waitState('j-gone', ['failed']);
    const missing = await h.waitState('j-missing', ['failed']);
    expect(gone.attemptsMade).toBe(1);
    expect(gone.failedReason).toBe('destination "gone" is not configured');
    expect(missing.attemptsMade).toBe(1);
    expect(missing.failedReason).toMatch(/1 result file\(s\) missing from the spool \(first: nope\.dcm\)/);
    expect(s.receptions()).toHaveLength(0);
  });

  it('with no destinations: nothing is queued and the result is listed as undispatched; with one, what is not sent is listed', async () => {
    const config = await testConfig('dispatch', { destinations: [] });
    configs.push(config);
    const h = new Harness(config, false);
    harnesses.push(h);
    const set = await makeResultSet(join(work, 'e'), 2);
    const keys = new Keys(config.redis.keyPrefix);
    await (await h.ready()).set(keys.result(set.record.seriesInstanceUid), JSON.stringify(set.record));
    await h.redis.zadd(keys.resultIndex(), Date.now(), set.record.seriesInstanceUid);
    expect(await h.dispatcher.enqueue(set.record, 'worker')).toEqual([]);
    expect(await h.dispatcher.queue.count()).toBe(0);
    expect(await h.dispatcher.listUndispatched()).toEqual([
      expect.objectContaining({
        seriesInstanceUid: set.record.seriesInstanceUid,
        reason: 'no-destinations',
        files: set.files,
        modelVersion: '1.0.0',
      }),
    ]);

    // Same Redis data, two destinations now: one gets it, the other is down.
    const s = await scp();
    const config2 = {
      ...config,
      destinations: [destination('up', s.port), destination('down', await freePort())],
      dispatch: { ...config.dispatch, attempts: 1 },
    };
    const h2 = new Harness(config2);
    harnesses.push(h2);
    const listedBefore = await h2.dispatcher.listUndispatched();
    expect(listedBefore[0]?.destinations.map((d) => [d.name, d.status])).toEqual([
      ['up', 'not-queued'],
      ['down', 'not-queued'],
    ]);
    const added = await h2.dispatcher.resend(set.record.seriesInstanceUid);
    await h2.waitState(added[0]!.jobId, ['completed']);
    await h2.waitState(added[1]!.jobId, ['failed']);
    const listed = await h2.dispatcher.listUndispatched();
    expect(listed).toHaveLength(1);
    expect(listed[0]!.reason).toBe('not-sent');
    expect(listed[0]!.destinations).toEqual([
      expect.objectContaining({ name: 'down', status: 'failed', attempts: 1, jobId: added[1]!.jobId }),
    ]);
  });
});

describe('DispatchRole: C-ECHO of destinations and the worker', () => {
  it('echoes every destination at start-up, on demand and on the cron schedule, and sends what was enqueued before it started', async () => {
    const s = await scp();
    const downPort = await freePort();
    const config = await testConfig('dispatch', {
      destinations: [destination('up', s.port), destination('down', downPort)],
      dispatch: { echoCron: '*/2 * * * * *', timeoutSeconds: 3 },
    });
    configs.push(config);
    const role = new DispatchRole({ config, logger });
    toStop.push(role);
    // The results stage may enqueue before the role has started (the inference worker starts first).
    const set = await makeResultSet(join(work, 'f'), 2);
    const [added] = await role.enqueue(set.record, 'worker', { destinations: ['up'] });
    expect(added!.outcome).toBe('added');
    await role.start();
    const startup = await role.startupEcho!;
    expect(startup.map((e) => [e.destination, e.ok])).toEqual([
      ['up', true],
      ['down', false],
    ]);
    expect(startup[0]).toMatchObject({ status: 0, aeTitle: 'STORESCP', host: '127.0.0.1', port: s.port });
    expect(startup[1]!.error).toBeTruthy();

    const h = new Harness(config, false);
    harnesses.push(h);
    const stored = await readDestinationEchoes(h.redis, config);
    expect(stored).toEqual(startup);

    const onDemand = await role.echo(['up']);
    expect(onDemand).toHaveLength(1);
    expect(onDemand[0]!.ok).toBe(true);
    expect(Date.parse(onDemand[0]!.at)).toBeGreaterThan(Date.parse(startup[0]!.at));
    await expect(role.echo(['nope'])).rejects.toThrow(/unknown destination/);

    // The cron (every 2 s here) refreshes the stored results without being asked.
    const t = Date.parse(onDemand[0]!.at);
    await waitFor(
      async () => {
        const e = await readDestinationEchoes(h.redis, config);
        return e.length === 2 && e.every((x) => Date.parse(x.at) > t) ? e : undefined;
      },
      10_000,
      'a cron echo round',
    );

    // The role's worker took the job enqueued before start().
    await h.waitState(added!.jobId, ['completed']);
    expect(s.receptions().sort()).toEqual([...set.sopInstanceUids].sort());
  });
});
