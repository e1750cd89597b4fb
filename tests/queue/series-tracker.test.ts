import { afterEach, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config/schema.js';
import type { ReceivedInstance } from '../../src/dicom/received-instance.js';
import { instancesHash } from '../../src/queue/jobs.js';
import { closeRedis, createRedis } from '../../src/stores/redis.js';
import { SeriesTracker } from '../../src/queue/series-tracker.js';
import { cleanup, freePort, logger, sleep, testConfig, waitFor } from './helpers.js';

/**
 * The tracker on its own, fed like the listener feeds it (instances need not be on disk here:
 * what Redis knows is the content when the spool has nothing more). The DICOM end-to-end tests
 * in tests/e2e cover the same with real transfers.
 */
const opened: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const close of opened.splice(0).reverse()) await close();
});

async function makeTracker(config: Config): Promise<SeriesTracker> {
  const redis = createRedis(config.redis.url, 'command', logger);
  const workerRedis = createRedis(config.redis.url, 'worker', logger);
  const tracker = new SeriesTracker({ config, logger, redis, workerRedis });
  tracker.startSettleWorker();
  opened.push(async () => {
    await tracker.close();
    await closeRedis(redis);
    await closeRedis(workerRedis);
    await cleanup(config);
  });
  return tracker;
}

let seq = 0;
function series(n: number, over: Partial<ReceivedInstance> = {}): ReceivedInstance[] {
  const study = `1.2.826.0.1.3680043.9.7777.${process.pid}.${++seq}`;
  const ser = `${study}.1`;
  return Array.from({ length: n }, (_, i) => ({
    sopClassUid: '1.2.840.10008.5.1.4.1.1.2',
    sopInstanceUid: `${ser}.${i + 1}`,
    studyInstanceUid: study,
    seriesInstanceUid: ser,
    transferSyntaxUid: '1.2.840.10008.1.2.1',
    modality: 'CT',
    bodyPartExamined: 'CHEST',
    imageType: ['ORIGINAL', 'PRIMARY', 'AXIAL'],
    path: `/nonexistent/${ser}.${i + 1}.dcm`,
    bytes: 1000,
    callingAeTitle: 'PACS',
    callingHost: '127.0.0.1',
    receivedAt: Date.now(),
    isNew: true,
    ...over,
  }));
}

describe('series tracker', () => {
  it('queues one job after the quiet period, debounced by every arrival', async () => {
    const config = await testConfig('tracker', { series: { quietPeriodSeconds: 1, routing: { minSlices: 5 } } });
    const tracker = await makeTracker(config);
    const insts = series(8);
    const t0 = Date.now();
    for (const inst of insts) {
      await tracker.instanceStored({ ...inst, receivedAt: Date.now() });
      await sleep(250); // 8 × 250 ms = 2 s of arrivals, longer than the quiet period
    }
    const lastArrival = Date.now() - 250;
    expect(await tracker.inferenceQueue.getJobCounts()).toMatchObject({ waiting: 0 });
    const [job] = await waitFor(
      async () => {
        const jobs = await tracker.inferenceQueue.getJobs(['waiting']);
        return jobs.length ? jobs : undefined;
      },
      10_000,
      'inference job',
    );
    expect(Date.now() - lastArrival).toBeGreaterThanOrEqual(900);
    expect(Date.now() - t0).toBeGreaterThan(2_500);
    expect(job?.data).toMatchObject({
      seriesInstanceUid: insts[0]?.seriesInstanceUid,
      studyInstanceUid: insts[0]?.studyInstanceUid,
      instanceCount: 8,
      instancesHash: instancesHash(insts.map((i) => i.sopInstanceUid)),
      callingAeTitle: 'PACS',
      enqueuedBy: 'tracker',
    });
    await sleep(1_500);
    expect(await tracker.inferenceQueue.count()).toBe(1);
    const state = await tracker.getSeries(insts[0]?.seriesInstanceUid ?? '');
    expect(state).toMatchObject({
      status: 'queued',
      instanceCount: 8,
      instancesReceived: 8,
      jobId: job?.id,
      queuedHash: job?.data.instancesHash,
      modalities: ['CT'],
      bodyParts: ['CHEST'],
      scorableInstances: 8,
      excludedInstances: 0,
      enqueuedBy: 'tracker',
    });
    expect((await tracker.listSeries(10)).map((x) => x.seriesInstanceUid)).toEqual([insts[0]?.seriesInstanceUid]);
  });

  it('records a series routing rejects as ignored with its reason', async () => {
    const config = await testConfig('tracker-ignore', { series: { quietPeriodSeconds: 0.5 } });
    const tracker = await makeTracker(config);
    const insts = series(3, { imageType: ['ORIGINAL', 'PRIMARY', 'LOCALIZER'] });
    for (const inst of insts) await tracker.instanceStored(inst);
    const uid = insts[0]?.seriesInstanceUid ?? '';
    const state = await waitFor(
      async () => {
        const s = await tracker.getSeries(uid);
        return s?.status === 'ignored' ? s : undefined;
      },
      10_000,
      'ignored series',
    );
    expect(state).toMatchObject({ ignoreCode: 'only-excluded-image-types', instanceCount: 3, excludedInstances: 3 });
    expect(state.reason).toContain('LOCALIZER');
    expect(await tracker.inferenceQueue.count()).toBe(0);
  });

  it('never throws into the listener when Redis is unreachable, and gives up quickly', async () => {
    const config = await testConfig('tracker-down', { redis: { url: `redis://127.0.0.1:${await freePort()}` } });
    const tracker = await makeTracker(config);
    const t0 = Date.now();
    await Promise.all(series(20).map((i) => tracker.instanceStored(i)));
    expect(Date.now() - t0).toBeLessThan(3_500);
  });
});
