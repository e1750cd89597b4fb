/**
 * Silent mode in the dispatch stage, into DCMTK storescp, with the switch in a real SQLite results
 * store (DispatchModes): a job queued while the destination was live does not send when it runs
 * after the switch to silent (held; a release with sendHeld runs it once); a result enqueued while
 * silent gets no job, is withheld by a release without sendHeld, and a re-run of its inference job
 * sends nothing afterwards, while an admin's re-send still sends it once.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../../src/config/schema.js';
import { DispatchModes } from '../../../src/db/dispatch-modes.js';
import { StoreHandle } from '../../../src/db/handle.js';
import { openResultsDb } from '../../../src/db/open.js';
import { dispatchJobId } from '../../../src/queue/jobs.js';
import { closeRedis, createRedis, whenReady } from '../../../src/stores/redis.js';
import type { Redis } from 'ioredis';
import { cleanup, freePort, logger, sleep, testConfig, waitFor } from '../../queue/helpers.js';
import { destination, Harness, makeResultSet, startStorescp, type ResultSet, type Storescp } from './helpers.js';
import { Keys } from '../../../src/stores/keys.js';

const ADMIN = { name: 'it.lead', role: 'admin' };
let work: string;
let config: Config;
let scp: Storescp;
let store: StoreHandle;
let redis: Redis | undefined;
const harnesses: Harness[] = [];

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'mlsam-silent-dispatch-'));
});
afterEach(async () => {
  for (const h of harnesses.splice(0)) await h.close();
  await store?.close();
  if (redis) await closeRedis(redis);
  redis = undefined;
  await scp?.stop();
  if (config) await cleanup(config);
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

async function setUp(): Promise<{ h: Harness; modes: DispatchModes }> {
  scp = await startStorescp(await freePort());
  config = await testConfig('silent-dispatch', {
    destinations: [destination('pacs', scp.port)],
    dispatch: { backoffSeconds: 1, maxBackoffSeconds: 1 },
  });
  store = new StoreHandle(() => openResultsDb(config));
  redis = createRedis(config.redis.url, 'command', logger);
  await whenReady(redis, 5_000);
  const modes = new DispatchModes({ config, logger, redis, store });
  const h = new Harness(config, false, modes);
  harnesses.push(h);
  return { h, modes };
}

/** The record in Redis, as the inference worker leaves it (a release reads the held result's files there). */
async function stored(rs: ResultSet): Promise<ResultSet> {
  await redis!.set(new Keys(config.redis.keyPrefix).result(rs.record.seriesInstanceUid), JSON.stringify(rs.record));
  return rs;
}

describe('silent mode in the dispatch stage', () => {
  it('a job queued while live sends nothing when it runs after the switch to silent; a release with sendHeld sends it once', async () => {
    const { h, modes } = await setUp();
    const rs = await stored(await makeResultSet(join(work, 'a')));
    const [added] = await h.dispatcher.enqueue(rs.record, 'worker');
    expect(added).toMatchObject({ outcome: 'added' });
    await modes.set('silent', ADMIN);
    h.worker.start();
    const job = await h.waitState(added!.jobId, ['completed']);
    expect(job.returnvalue).toMatchObject({ held: true, sentThisAttempt: 0 });
    await sleep(1_000);
    expect(scp.receptions()).toEqual([]);
    expect(await h.dispatcher.store.getState(rs.record.seriesInstanceUid, 'pacs')).toMatchObject({ status: 'held', heldBy: 'admin' });

    await modes.set('live', ADMIN);
    expect(await h.dispatcher.releaseHeld('pacs', true)).toMatchObject({ sent: 1, withheld: 0 });
    await waitFor(
      async () => ((await h.dispatcher.store.getState(rs.record.seriesInstanceUid, 'pacs'))?.status === 'sent' ? true : undefined),
      30_000,
      'sent',
    );
    expect(await h.dispatcher.releaseHeld('pacs', true)).toMatchObject({ sent: 0 });
    await sleep(1_500);
    expect([...scp.receptions()].sort()).toEqual([...rs.sopInstanceUids].sort());
  });

  it('a result enqueued while silent gets no job; withheld at a release, a re-run does not send it; an admin re-send does, once', async () => {
    const { h, modes } = await setUp();
    h.worker.start();
    await modes.set('silent', ADMIN, 'pacs');
    const rs = await stored(await makeResultSet(join(work, 'b')));
    const jobId = dispatchJobId(rs.record.seriesInstanceUid, rs.record.instancesHash, rs.record.model.version, 'pacs');
    expect(await h.dispatcher.enqueue(rs.record, 'worker')).toEqual([{ destination: 'pacs', jobId, outcome: 'held' }]);
    expect(await h.job(jobId)).toBeUndefined();
    await modes.set('live', ADMIN, 'pacs');
    expect(await h.dispatcher.releaseHeld('pacs', false)).toMatchObject({ sent: 0, withheld: 1 });
    expect(await h.dispatcher.enqueue(rs.record, 'worker')).toMatchObject([{ outcome: 'exists' }]);
    await sleep(1_500);
    expect(await h.job(jobId)).toBeUndefined();
    expect(scp.receptions()).toEqual([]);

    expect(await h.dispatcher.enqueue(rs.record, 'admin')).toMatchObject([{ outcome: 'added' }]);
    await h.waitState(jobId, ['completed']);
    await sleep(1_000);
    expect([...scp.receptions()].sort()).toEqual([...rs.sopInstanceUids].sort());
  });
});
