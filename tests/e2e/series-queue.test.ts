import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config/schema.js';
import { writeSyntheticSeries, type SyntheticSeries, type SyntheticSeriesOptions } from '../../src/dicom/testing/synthetic-series.js';
import { ListenerRole } from '../../src/node/listener-role.js';
import { AssociationAudit } from '../../src/stores/audit.js';
import { instancesHash } from '../../src/queue/jobs.js';
import { closeRedis, createRedis } from '../../src/stores/redis.js';
import { SeriesTracker } from '../../src/queue/series-tracker.js';
import { cleanup, logger, sleep, testConfig, waitFor } from '../queue/helpers.js';
import { inferenceJobs, inferenceQueue, storescu, waitForJobs } from './helpers.js';

/**
 * Listener → spool → tracker → inference queue, in process (ListenerRole is what `mlsam listen`
 * runs), with DCMTK storescu as the PACS and the shared Redis under a unique prefix.
 */
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

const QUIET_S = 2;

async function config(tag: string, over: Parameters<typeof testConfig>[1] = {}): Promise<Config> {
  const c = await testConfig(tag, { series: { quietPeriodSeconds: QUIET_S, routing: { minSlices: 10 } }, ...over });
  cleanups.push(() => cleanup(c));
  return c;
}

async function listener(c: Config): Promise<ListenerRole> {
  const role = new ListenerRole({ config: c, logger });
  await role.start();
  cleanups.push(() => role.stop());
  return role;
}

async function series(count: number, opts: Partial<SyntheticSeriesOptions> = {}): Promise<SyntheticSeries> {
  const dir = await mkdtemp(join(tmpdir(), 'mlsam-send-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return writeSyntheticSeries({ dir, count, rows: 64, columns: 64, ...opts });
}

function queueOf(c: Config) {
  const q = inferenceQueue(c);
  cleanups.push(() => q.close());
  return q.queue;
}

const portOf = (r: ListenerRole): number => r.address?.port ?? 0;

describe('series → inference queue (DCMTK storescu → listener → Redis)', () => {
  it('queues exactly one job per series after the quiet period, none before, and audits the association', async () => {
    const c = await config('e2e-one');
    const role = await listener(c);
    const queue = queueOf(c);
    const s = await series(25);
    const sent = await storescu(
      portOf(role),
      s.instances.map((i) => i.path),
    );
    const sentAt = Date.now();
    expect(sent.successes).toBe(25);
    expect(await inferenceJobs(queue)).toHaveLength(0); // still inside the quiet period

    const [job] = await waitForJobs(queue, 1, 15_000);
    expect(Date.now() - sentAt).toBeGreaterThanOrEqual(QUIET_S * 1000 - 300);
    expect(job?.data).toMatchObject({
      studyInstanceUid: s.studyInstanceUid,
      seriesInstanceUid: s.seriesInstanceUid,
      seriesDir: join(c.spool.dir, s.studyInstanceUid, s.seriesInstanceUid),
      instanceCount: 25,
      instancesHash: instancesHash(s.instances.map((i) => i.sopInstanceUid)),
      callingAeTitle: 'PACS',
      enqueuedBy: 'tracker',
    });
    await sleep(QUIET_S * 1000 + 500);
    expect(await inferenceJobs(queue)).toHaveLength(1);

    const redis = createRedis(c.redis.url, 'command', logger);
    cleanups.push(() => closeRedis(redis));
    const [assoc] = await new AssociationAudit({ config: c, logger, redis }).listAssociations(10);
    expect(assoc).toMatchObject({
      callingAeTitle: 'PACS',
      calledAeTitle: 'MLSAM',
      callingHost: '127.0.0.1',
      instances: 25,
      outcome: 'accepted-released',
    });
    expect(assoc?.bytes).toBeGreaterThan(25 * 64 * 64 * 2);
  });

  it('records series the routing rules reject as ignored with their reason, and queues none of them', async () => {
    const c = await config('e2e-ignore');
    const role = await listener(c);
    const queue = queueOf(c);
    const mr = await series(12, { modality: 'MR' });
    const head = await series(12, { bodyPartExamined: 'HEAD' });
    const scouts = await series(2, { imageType: ['ORIGINAL', 'PRIMARY', 'LOCALIZER'] });
    const few = await series(5);
    for (const s of [mr, head, scouts, few]) {
      expect(
        (
          await storescu(
            portOf(role),
            s.instances.map((i) => i.path),
          )
        ).successes,
      ).toBe(s.instances.length);
    }
    const redis = createRedis(c.redis.url, 'command', logger);
    const tracker = new SeriesTracker({ config: c, logger, redis });
    cleanups.push(async () => {
      await tracker.close();
      await closeRedis(redis);
    });
    const ignored = async (s: SyntheticSeries) =>
      waitFor(
        async () => {
          const st = await tracker.getSeries(s.seriesInstanceUid);
          return st?.status === 'ignored' ? st : undefined;
        },
        15_000,
        'ignored series',
      );
    expect(await ignored(mr)).toMatchObject({ ignoreCode: 'modality', reason: expect.stringContaining('MR'), instanceCount: 12 });
    expect(await ignored(head)).toMatchObject({ ignoreCode: 'body-part', reason: expect.stringContaining('HEAD') });
    expect(await ignored(scouts)).toMatchObject({ ignoreCode: 'only-excluded-image-types', reason: expect.stringContaining('LOCALIZER') });
    expect(await ignored(few)).toMatchObject({ ignoreCode: 'too-few-slices', reason: expect.stringContaining('5 slices') });
    expect(await inferenceJobs(queue)).toHaveLength(0);
  });

  it('gives one job for one series split over two listeners sharing one Redis', async () => {
    const c = await config('e2e-two');
    const a = await listener(c);
    const b = await listener(c); // same Redis prefix and spool, its own tracker and settle worker
    expect(portOf(a)).not.toBe(portOf(b));
    const queue = queueOf(c);
    const s = await series(30);
    const files = s.instances.map((i) => i.path);
    const [ra, rb] = await Promise.all([
      storescu(
        portOf(a),
        files.filter((_, i) => i % 2 === 0),
      ),
      storescu(
        portOf(b),
        files.filter((_, i) => i % 2 === 1),
      ),
    ]);
    expect(ra.successes + rb.successes).toBe(30);
    const jobs = await waitForJobs(queue, 1, 15_000);
    await sleep(QUIET_S * 1000 + 1000);
    expect(await inferenceJobs(queue)).toHaveLength(1);
    expect(jobs[0]?.data).toMatchObject({ instanceCount: 30, instancesHash: instancesHash(s.instances.map((i) => i.sopInstanceUid)) });
  });

  it('reopens a series when an instance arrives after its job was queued: one job per content', async () => {
    const c = await config('e2e-reopen');
    const role = await listener(c);
    const queue = queueOf(c);
    const s = await series(13);
    const first = s.instances.slice(0, 12);
    expect(
      (
        await storescu(
          portOf(role),
          first.map((i) => i.path),
        )
      ).successes,
    ).toBe(12);
    const [job1] = await waitForJobs(queue, 1, 15_000);
    expect(job1?.data.instanceCount).toBe(12);

    // The same instances again (a PACS retry) change nothing …
    expect(
      (
        await storescu(
          portOf(role),
          first.slice(0, 3).map((i) => i.path),
        )
      ).successes,
    ).toBe(3);
    await sleep(QUIET_S * 1000 + 1500);
    expect(await inferenceJobs(queue)).toHaveLength(1);

    // … a late new instance gives a second job with the new content.
    expect((await storescu(portOf(role), [s.instances[12]?.path ?? ''])).successes).toBe(1);
    const jobs = await waitForJobs(queue, 2, 15_000);
    const job2 = jobs.find((j) => j.id !== job1?.id);
    expect(job2?.data).toMatchObject({
      seriesInstanceUid: s.seriesInstanceUid,
      instanceCount: 13,
      instancesHash: instancesHash(s.instances.map((i) => i.sopInstanceUid)),
    });
    expect(job2?.data.instancesHash).not.toBe(job1?.data.instancesHash);
    await sleep(QUIET_S * 1000 + 500);
    expect(await inferenceJobs(queue)).toHaveLength(2);
  });
});
