import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config/schema.js';
import { resultKey, type ResultRecord } from '../../src/contracts/result-record.js';
import { SeriesTracker } from '../../src/queue/series-tracker.js';
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

  it('one result per study: keeps the series not chosen until the chosen one is dispatched, or its job failed', async () => {
    const c = await testConfig('retention-study', {
      spool: { retentionDays: 1 },
      series: { routing: { minSlices: 2 }, selection: { minCoverageMm: 0 } },
      destinations: [{ name: 'pacs', aeTitle: 'PACS', host: '127.0.0.1', port: 1 }],
    });
    configs.push(c);
    const k = new Keys(c.redis.keyPrefix);
    // Two studies of two axial series each in the spool, settled as studies by the real tracker: the
    // lower SeriesNumber is chosen (equal by every other rule), the other is its fallback candidate.
    const cmd = createRedis(c.redis.url, 'command');
    await waitFor(async () => cmd.status === 'ready', 5_000, 'redis');
    const tracker = new SeriesTracker({ config: c, logger, redis: cmd });
    const study = async () => {
      const chosen = await spoolSeries(c, 4, { seriesNumber: 2 });
      const other = await spoolSeries(c, 4, { seriesNumber: 3, studyInstanceUid: chosen.studyInstanceUid });
      for (const s of [chosen, other]) await tracker.adoptSpooledSeries(s.studyInstanceUid, s.seriesInstanceUid, s.seriesDir, Date.now());
      const settled = await tracker.settleStudy(chosen.studyInstanceUid, 'reconciler', { force: true });
      if (settled.outcome !== 'settled') throw new Error(`study not settled: ${settled.outcome}`);
      expect(settled.chosen).toBe(chosen.seriesInstanceUid);
      expect(await redis.hget(k.series(other.seriesInstanceUid), 'status')).toBe('ignored');
      return { chosen, other, settled };
    };
    const sent = await study();
    const failed = await study();
    await tracker.close();
    await closeRedis(cmd);
    const t0 = Date.now();
    const later = t0 + 10 * DAY;

    // The chosen series' job has not run yet (e.g. a worker backlog): ten days on, nothing goes.
    let report = await sweep(c, later);
    expect(report.deleted).toBe(0);
    expect(report.kept).toEqual({ 'no result': 2, "the study's chosen series is not dispatched yet": 2 });

    // The study results, as the worker records them (job id and study context of the study's job).
    const studyResult = async (x: Awaited<ReturnType<typeof study>>, status: ResultRecord['status'], at: number) => {
      const rec = await writeResult(redis, c, x.chosen, status, {
        finishedAt: at,
        ...(status === 'failed' ? { reason: 'onnx crashed' } : {}),
      });
      const settled = x.settled as Extract<typeof x.settled, { outcome: 'settled' }>;
      const studyRec: ResultRecord = { ...rec, jobId: settled.jobId!, study: { contentHash: settled.contentHash, roles: [] } };
      await redis.set(k.result(x.chosen.seriesInstanceUid), JSON.stringify(studyRec));
      return studyRec;
    };
    const sentRec = await studyResult(sent, 'scored', later);
    await studyResult(failed, 'failed', later);
    // Scored but not sent yet: the other series still waits; the failed study's other series counts from the failure.
    report = await sweep(c, later + DAY / 2);
    expect(report.deleted).toBe(0);
    expect(report.kept).toEqual({
      'not sent to every destination': 1,
      "the study's chosen series is not dispatched yet": 1,
      failed: 1,
      'younger than retentionDays': 1,
    });

    // Sent: both series of that study go retentionDays after the send, not before.
    await writeDispatch(redis, c, { ...sent.chosen, instancesHash: resultKey(sentRec), record: sentRec }, 'pacs', 'sent', later + DAY);
    report = await sweep(c, later + 1.5 * DAY);
    expect(report.deletedSeries).toEqual([failed.other.seriesInstanceUid]);
    expect(report.kept).toEqual({ 'younger than retentionDays': 2, failed: 1 });
    report = await sweep(c, later + 2.5 * DAY);
    expect(report.deletedSeries.sort()).toEqual([sent.chosen.seriesInstanceUid, sent.other.seriesInstanceUid].sort());
    for (const s of [sent.chosen, sent.other, failed.other]) expect(existsSync(s.seriesDir), s.seriesInstanceUid).toBe(false);
    // The failed job's series stays for an admin to retry; the study's state goes with its last series only.
    expect(existsSync(failed.chosen.seriesDir)).toBe(true);
    expect(await redis.exists(k.study(sent.chosen.studyInstanceUid))).toBe(0);
    expect(await redis.exists(k.study(failed.chosen.studyInstanceUid))).toBe(1);
  });
});
