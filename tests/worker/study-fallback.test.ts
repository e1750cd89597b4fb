/**
 * One result per study, in the inference worker: when the chosen series cannot be scored (here: 5
 * decodable slices, fewer than routing.minSlices — as when the lung segmentation finds no lungs),
 * the next candidate of the study is scored instead, in one job of its own; the first series keeps
 * a 'not scored' record without result objects; the study's result names both series with their
 * roles. A study whose last candidate fails gets one 'not scored' record saying why for every series.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config/schema.js';
import { newUid } from '../../src/dicom/testing/synthetic-series.js';
import { WorkerRole } from '../../src/node/worker-role.js';
import { writeResultObjects } from '../../src/results/index.js';
import { INFERENCE_JOB_OPTIONS, instancesHash, studyInferenceJobId, type InferenceJobData } from '../../src/queue/jobs.js';
import { Keys } from '../../src/stores/keys.js';
import { cleanup, logger, testConfig } from '../queue/helpers.js';
import { inferenceQueue } from '../e2e/helpers.js';
import { p001Files, plainRedis, retagSeries, sopUids, spoolSeries, waitForRecord } from './helpers.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

describe('study fallback', () => {
  it('scores the next candidate when the chosen series cannot be scored', async () => {
    const c: Config = await testConfig('study-fallback', {
      series: { quietPeriodSeconds: 1, routing: { minSlices: 10 } },
      model: { batchSize: 8 },
      worker: { concurrency: 1 },
    });
    cleanups.push(() => cleanup(c));
    const spool = await mkdtemp(join(tmpdir(), 'mlsam-fallback-'));
    cleanups.push(() => rm(spool, { recursive: true, force: true }));
    const studyUid = newUid();
    const bad = { studyInstanceUid: studyUid, seriesInstanceUid: newUid() };
    const good = { studyInstanceUid: studyUid, seriesInstanceUid: newUid() };
    const badDir = await spoolSeries(spool, await p001Files(5), bad);
    const goodDir = await spoolSeries(spool, await p001Files(12, 60), good);
    await retagSeries(badDir, bad);
    await retagSeries(goodDir, good);
    const [badSops, goodSops] = [await sopUids(badDir), await sopUids(goodDir)];
    const contentHash = instancesHash([
      `${bad.seriesInstanceUid}:${instancesHash(badSops)}`,
      `${good.seriesInstanceUid}:${instancesHash(goodSops)}`,
    ]);
    const now = new Date().toISOString();
    const data: InferenceJobData = {
      ...bad,
      seriesDir: badDir,
      instanceCount: badSops.length,
      instancesHash: instancesHash(badSops),
      callingAeTitle: 'PACS',
      firstReceivedAt: now,
      lastReceivedAt: now,
      enqueuedBy: 'tracker',
      study: {
        contentHash,
        roles: [
          {
            seriesInstanceUid: bad.seriesInstanceUid,
            seriesNumber: '2',
            seriesDescription: 'thin',
            role: 'chosen',
            reason: 'axial chest stack',
          },
          {
            seriesInstanceUid: good.seriesInstanceUid,
            seriesNumber: '3',
            seriesDescription: 'thick',
            role: 'candidate',
            reason: 'candidate not chosen: thinner slices preferred',
          },
        ],
        fallback: [
          {
            seriesInstanceUid: good.seriesInstanceUid,
            seriesDir: goodDir,
            instanceCount: goodSops.length,
            instancesHash: instancesHash(goodSops),
          },
        ],
      },
    };
    // The results stage, as the worker role wires it (no destinations: nothing dispatched).
    const results: Array<{ series: string; status: string }> = [];
    const w = new WorkerRole(
      { config: c, logger },
      {
        onResult: async (record, _job, metadata) => {
          results.push({ series: record.seriesInstanceUid, status: record.status });
          return writeResultObjects(record, { config: c, logger, metadata });
        },
      },
    );
    await w.start();
    cleanups.push(() => w.stop());
    const q = inferenceQueue(c);
    cleanups.push(() => q.close());
    const jobId = studyInferenceJobId(studyUid, contentHash);
    await q.queue.add('score', data, { ...INFERENCE_JOB_OPTIONS, jobId });

    const scored = await waitForRecord(plainRedis(c), c, good.seriesInstanceUid, ['scored', 'not-scored', 'failed'], 180_000);
    expect(scored.status).toBe('scored');
    expect(scored.jobId).toBe(`${jobId}-next-${good.seriesInstanceUid}`);
    expect(scored.outputs?.filter((o) => o.kind === 'sr')).toHaveLength(1);
    const roles = Object.fromEntries(scored.study!.roles.map((r) => [r.seriesNumber, r]));
    expect(roles['3']).toMatchObject({ role: 'chosen' });
    expect(roles['2']).toMatchObject({ role: 'candidate' });
    expect(roles['2']!.reason).toMatch(/chosen first, but not scored: too few (axial|decodable) slices \(5 < 10\)/);
    const first = await waitForRecord(plainRedis(c), c, bad.seriesInstanceUid, ['not-scored'], 10_000);
    expect(first.outputs ?? []).toHaveLength(0);
    // The results stage ran once, for the series scored: no "not scored" SR for the first one.
    expect(results).toEqual([{ series: good.seriesInstanceUid, status: 'scored' }]);
    const redis = plainRedis(c);
    cleanups.push(async () => void redis.disconnect());
    const keys = new Keys(c.redis.keyPrefix);
    expect(await redis.hget(keys.series(good.seriesInstanceUid), 'role')).toBe('chosen');
    expect(await redis.hget(keys.series(bad.seriesInstanceUid), 'role')).toBe('candidate');
  }, 240_000);
});
