import { utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config/schema.js';
import { newUid, writeSyntheticSeries, type SyntheticSeriesOptions } from '../../src/dicom/testing/synthetic-series.js';
import { instancesHash } from '../../src/queue/jobs.js';
import { Reconciler } from '../../src/queue/reconciler.js';
import { closeRedis, createRedis } from '../../src/stores/redis.js';
import { SeriesTracker } from '../../src/queue/series-tracker.js';
import { readInstanceHeader } from '../../src/dicom/spool/reader.js';
import { cleanup, logger, testConfig } from './helpers.js';

const opened: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const close of opened.splice(0).reverse()) await close();
});

async function setup(config: Config): Promise<{ tracker: SeriesTracker; reconciler: Reconciler }> {
  const redis = createRedis(config.redis.url, 'command', logger);
  const tracker = new SeriesTracker({ config, logger, redis }); // no settle worker: the reconciler alone
  const reconciler = new Reconciler({ config, logger, tracker });
  opened.push(async () => {
    await reconciler.stop();
    await tracker.close();
    await closeRedis(redis);
    await cleanup(config);
  });
  return { tracker, reconciler };
}

/** A series written straight into the spool layout, as if received while Redis was away. */
async function spoolSeries(config: Config, count: number, opts: Partial<SyntheticSeriesOptions> = {}, ageMs = 60_000) {
  const study = newUid();
  const series = newUid();
  const sopPrefix = newUid();
  const dir = join(config.spool.dir, study, series);
  const s = await writeSyntheticSeries({
    dir,
    count,
    rows: 16,
    columns: 16,
    studyInstanceUid: study,
    seriesInstanceUid: series,
    sopInstanceUidPrefix: sopPrefix,
    fileName: (i) => `${sopPrefix}.${i + 1}.dcm`,
    ...opts,
  });
  const old = new Date(Date.now() - ageMs);
  for (const inst of s.instances) await utimes(inst.path, old, old);
  await utimes(dir, old, old);
  return s;
}

describe('spool reconciler', () => {
  it('reads the routing attributes of spooled files (explicit and implicit VR)', async () => {
    const config = await testConfig('recon-hdr');
    await setup(config);
    for (const ts of ['1.2.840.10008.1.2.1', '1.2.840.10008.1.2'] as const) {
      const s = await spoolSeries(config, 1, {
        transferSyntaxUid: ts,
        bodyPartExamined: 'lung',
        imageType: ['DERIVED', 'SECONDARY', 'LOCALIZER'],
      });
      const h = await readInstanceHeader(s.instances[0]?.path ?? '');
      expect(h.imageOrientation).toMatch(/^[-0-9.e]+(\\[-0-9.e]+){5}$/);
      expect(h).toMatchObject({
        sopClassUid: '1.2.840.10008.5.1.4.1.1.2',
        sopInstanceUid: s.instances[0]?.sopInstanceUid,
        studyInstanceUid: s.studyInstanceUid,
        seriesInstanceUid: s.seriesInstanceUid,
        modality: 'CT',
        bodyPartExamined: 'LUNG',
        imageType: ['DERIVED', 'SECONDARY', 'LOCALIZER'],
      });
    }
  });

  it('queues spooled series Redis never heard of, once, and records ignored ones', async () => {
    const config = await testConfig('recon', { series: { quietPeriodSeconds: 2, routing: { minSlices: 4 } } });
    const { tracker, reconciler } = await setup(config);
    const chest = await spoolSeries(config, 5);
    const mr = await spoolSeries(config, 5, { modality: 'MR' });
    const fresh = await spoolSeries(config, 5, {}, 0); // still inside its quiet period

    const first = await reconciler.runOnce();
    expect(first).toMatchObject({ scanned: 3, pending: 1, queued: 1, ignored: 1, errors: 0 });
    const jobs = await tracker.inferenceQueue.getJobs(['waiting']);
    expect(jobs).toHaveLength(1);
    expect(jobs[0]?.data).toMatchObject({
      seriesInstanceUid: chest.seriesInstanceUid,
      studyInstanceUid: chest.studyInstanceUid,
      seriesDir: join(config.spool.dir, chest.studyInstanceUid, chest.seriesInstanceUid),
      instanceCount: 5,
      instancesHash: instancesHash(chest.instances.map((i) => i.sopInstanceUid)),
      enqueuedBy: 'reconciler',
    });
    expect(await tracker.getSeries(mr.seriesInstanceUid)).toMatchObject({ status: 'ignored', ignoreCode: 'modality' });
    expect(await tracker.getSeries(fresh.seriesInstanceUid)).toBeUndefined();

    const second = await reconciler.runOnce();
    expect(second).toMatchObject({ scanned: 3, upToDate: 2, queued: 0, ignored: 0 });
    expect(await tracker.inferenceQueue.count()).toBe(1);
  });
});
