import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config/schema.js';
import { Keys } from '../../src/stores/keys.js';
import { closeRedis, createRedis } from '../../src/stores/redis.js';
import { SpoolRetention } from '../../src/cleaner/retention.js';
import { cleanup, logger, testConfig, waitFor } from '../queue/helpers.js';
import { plainRedis, spoolSeries, trackSeries, writeDispatch, writeResult, type SeededSeries } from '../admin/helpers.js';

/** Spool retention: deletes inputs and results N days after dispatch, never undispatched work. */
const configs: Config[] = [];
const redis = plainRedis('redis://127.0.0.1:6379');
afterAll(async () => {
  await Promise.all(configs.map(cleanup));
  redis.disconnect();
});

const DAY = 86_400_000;
const resultsDirOf = (c: Config, s: SeededSeries): string => join(c.spool.dir, 'results', s.studyInstanceUid, s.seriesInstanceUid);

async function sweep(c: Config, now: number) {
  const cmd = createRedis(c.redis.url, 'command');
  await waitFor(async () => cmd.status === 'ready', 5_000, 'redis');
  try {
    return await new SpoolRetention({ config: c, logger, redis: cmd, now: () => now }).runOnce();
  } finally {
    await closeRedis(cmd);
  }
}

describe('spool retention', () => {
  it('with destinations: deletes a series sent to every destination more than retentionDays ago, keeps everything else', async () => {
    const c = await testConfig('retention', {
      spool: { retentionDays: 7 },
      destinations: [
        { name: 'pacs', aeTitle: 'PACS', host: '127.0.0.1', port: 1 },
        { name: 'archive', aeTitle: 'ARCH', host: '127.0.0.1', port: 2 },
      ],
    });
    configs.push(c);
    const now = Date.now();
    const old = now - 10 * DAY;
    const mk = async (count = 3): Promise<SeededSeries> => {
      const s = await spoolSeries(c, count);
      await trackSeries(redis, c, s, { status: 'scored', lastReceivedAt: old - DAY });
      return s;
    };
    const sentOld = await mk();
    await writeResult(redis, c, sentOld, 'scored', { finishedAt: old });
    await writeDispatch(redis, c, sentOld, 'pacs', 'sent', old);
    await writeDispatch(redis, c, sentOld, 'archive', 'sent', old + 1000);

    const sentRecently = await mk();
    await writeResult(redis, c, sentRecently, 'scored', { finishedAt: old });
    await writeDispatch(redis, c, sentRecently, 'pacs', 'sent', old);
    await writeDispatch(redis, c, sentRecently, 'archive', 'sent', now - 2 * DAY); // the last send counts

    const oneFailed = await mk();
    await writeResult(redis, c, oneFailed, 'scored', { finishedAt: old });
    await writeDispatch(redis, c, oneFailed, 'pacs', 'sent', old);
    await writeDispatch(redis, c, oneFailed, 'archive', 'failed', old);

    const neverSent = await mk();
    await writeResult(redis, c, neverSent, 'scored', { finishedAt: old });

    const failedScoring = await mk();
    await writeResult(redis, c, failedScoring, 'failed', { finishedAt: old, reason: 'onnx crashed' });

    const grew = await mk();
    await writeResult(redis, c, grew, 'scored', { finishedAt: old });
    await writeDispatch(redis, c, grew, 'pacs', 'sent', old);
    await writeDispatch(redis, c, grew, 'archive', 'sent', old);
    await writeFile(join(grew.seriesDir, '1.2.3.999.dcm'), 'late instance'); // new content: undispatched

    const noResult = await mk();

    const report = await sweep(c, now);
    expect(report.deletedSeries).toEqual([sentOld.seriesInstanceUid]);
    expect(report.kept).toEqual({
      'younger than retentionDays': 1,
      'not sent to every destination': 2,
      failed: 1,
      'content changed after the result': 1,
      'no result': 1,
    });
    expect(existsSync(sentOld.seriesDir)).toBe(false);
    expect(existsSync(resultsDirOf(c, sentOld))).toBe(false);
    expect(existsSync(join(c.spool.dir, sentOld.studyInstanceUid))).toBe(false);
    const k = new Keys(c.redis.keyPrefix);
    expect(
      await redis.exists(k.series(sentOld.seriesInstanceUid), k.result(sentOld.seriesInstanceUid), k.dispatch(sentOld.seriesInstanceUid)),
    ).toBe(0);
    expect(await redis.zscore(k.resultIndex(), sentOld.seriesInstanceUid)).toBeNull();
    for (const s of [sentRecently, oneFailed, neverSent, failedScoring, grew, noResult]) {
      expect(existsSync(s.seriesDir), s.seriesInstanceUid).toBe(true);
    }
    expect(existsSync(resultsDirOf(c, sentRecently))).toBe(true);
    // A second sweep at the same time deletes nothing more.
    expect((await sweep(c, now)).deleted).toBe(0);
    // Nine days later the recently sent one goes too.
    expect((await sweep(c, now + 9 * DAY)).deletedSeries).toEqual([sentRecently.seriesInstanceUid]);
  });

  it('without destinations: a final result (scored or not scored) counts as dispatched at finishedAt; ignored series at settle time', async () => {
    const c = await testConfig('retention-nodest', { spool: { retentionDays: 1 } });
    configs.push(c);
    const now = Date.now();
    const old = now - 3 * DAY;
    const scored = await spoolSeries(c, 3);
    await trackSeries(redis, c, scored, { status: 'scored', lastReceivedAt: old });
    await writeResult(redis, c, scored, 'scored', { finishedAt: old });
    const notScored = await spoolSeries(c, 3);
    await trackSeries(redis, c, notScored, { status: 'not-scored', lastReceivedAt: old });
    await writeResult(redis, c, notScored, 'not-scored', { finishedAt: old, reason: 'not CT' });
    const fresh = await spoolSeries(c, 3);
    await trackSeries(redis, c, fresh, { status: 'scored' });
    await writeResult(redis, c, fresh, 'scored', { finishedAt: now - 60_000 });
    const ignored = await spoolSeries(c, 3);
    await trackSeries(redis, c, ignored, { status: 'ignored', lastReceivedAt: old, ignoreCode: 'modality', reason: 'MR' });
    const receiving = await spoolSeries(c, 3);
    await trackSeries(redis, c, receiving, { status: 'receiving', lastReceivedAt: old });
    await writeResult(redis, c, receiving, 'scored', { finishedAt: old });
    await redis.hset(new Keys(c.redis.keyPrefix).series(receiving.seriesInstanceUid), 'status', 'receiving');

    const report = await sweep(c, now);
    expect(report.deletedSeries.sort()).toEqual([scored, notScored, ignored].map((s) => s.seriesInstanceUid).sort());
    expect(report.kept).toEqual({ 'younger than retentionDays': 1, receiving: 1 });
    expect(existsSync(fresh.seriesDir)).toBe(true);
    expect(existsSync(receiving.seriesDir)).toBe(true);
  });
});
