/**
 * A worker process (`mlsam work`, the built CLI) killed with SIGKILL in the middle of a job: the
 * job's lock expires, another worker's stalled-job check takes it back, and it completes exactly
 * once (one result, one completion), with every slice scored.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Job } from 'bullmq';
import { afterEach, describe, expect, it } from 'vitest';
import { WorkerRole } from '../../src/node/worker-role.js';
import type { InferenceJobData } from '../../src/queue/jobs.js';
import type { ResultRecord } from '../../src/contracts/result-record.js';
import { MLSAM_MAIN } from '../helpers/process.js';
import { cleanup, logger, sleep, testConfig, waitFor } from '../queue/helpers.js';
import { inferenceQueue } from '../e2e/helpers.js';
import { addJob, p001Files, plainRedis, readRecord, spoolSeries, waitForRecord } from './helpers.js';
import { readDicomHeaderFile } from '../../src/dicom/decode/index.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

describe('inference worker killed mid-job', () => {
  it('leaves the job to another worker, which completes it exactly once', async () => {
    const SLICES = 80;
    const c = await testConfig('wk-kill', {
      series: { routing: { minSlices: 10 } },
      model: { batchSize: 2 },
      worker: { lockDurationSeconds: 2, stalledIntervalSeconds: 1 },
    });
    cleanups.push(() => cleanup(c));
    const q = inferenceQueue(c);
    cleanups.push(() => q.close());
    const redis = plainRedis(c);
    cleanups.push(async () => void redis.disconnect());

    const files = await p001Files(SLICES);
    const h = await readDicomHeaderFile(files[0] as string);
    const ids = { studyInstanceUid: h.studyInstanceUid as string, seriesInstanceUid: h.seriesInstanceUid as string };
    const dir = await spoolSeries(c.spool.dir, files, ids);

    // worker process 1: `mlsam work`, configured like an operator would, through MLSAM_* variables
    let stderr = '';
    const child: ChildProcess = spawn(process.execPath, [MLSAM_MAIN, 'work'], {
      env: {
        ...process.env,
        MLSAM_LOG__LEVEL: 'info',
        MLSAM_REDIS__KEY_PREFIX: c.redis.keyPrefix,
        MLSAM_SPOOL__DIR: c.spool.dir,
        MLSAM_MODEL__BATCH_SIZE: '2',
        MLSAM_SERIES__ROUTING__MIN_SLICES: '10',
        MLSAM_WORKER__LOCK_DURATION_SECONDS: '2',
        MLSAM_WORKER__STALLED_INTERVAL_SECONDS: '1',
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    cleanups.push(async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    await waitFor(
      async () => {
        if (child.exitCode !== null) throw new Error(`mlsam work exited ${child.exitCode}: ${stderr}`);
        return stderr.includes('"inference worker started"');
      },
      30_000,
      'mlsam work to start',
      50,
    );

    const jobId = await addJob(q.queue, dir, ids);
    // kill it once some, not all, slices are scored
    const progress = await waitFor(
      async () => {
        const job = await q.queue.getJob(jobId);
        const p = job?.progress as { done?: number; total?: number } | undefined;
        return p?.done && p.done >= 6 ? p : undefined;
      },
      60_000,
      'progress of the first worker',
      20,
    );
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
    expect(progress.total).toBe(SLICES);
    expect(progress.done).toBeLessThan(SLICES);
    const killedRecord = await readRecord(redis, c, ids.seriesInstanceUid);
    expect(killedRecord?.status).toBe('scoring');
    expect(await (await q.queue.getJob(jobId))?.getState()).toBe('active'); // still locked by the dead worker

    // worker 2, in this process: its stalled-job check takes the job back once the lock expired
    const results: ResultRecord[] = [];
    const role = new WorkerRole({ config: c, logger }, { onResult: async (r) => void results.push(r) });
    await role.start();
    cleanups.push(() => role.stop());
    const rec = await waitForRecord(redis, c, ids.seriesInstanceUid, ['scored', 'failed', 'not-scored'], 120_000);
    expect(rec.status).toBe('scored');
    expect(rec.slices).toHaveLength(SLICES);
    await sleep(3_000); // a few more stalled checks: nothing runs it again

    expect(results).toHaveLength(1);
    const job = (await q.queue.getJob(jobId)) as Job<InferenceJobData>;
    expect(await job.getState()).toBe('completed');
    expect(job.progress).toEqual({ done: SLICES, total: SLICES });
    const counts = await q.queue.getJobCounts('completed', 'failed', 'active', 'waiting', 'delayed');
    expect(counts).toMatchObject({ completed: 1, failed: 0, active: 0, waiting: 0, delayed: 0 });
    expect(job.attemptsMade).toBe(1);
    expect((await readRecord(redis, c, ids.seriesInstanceUid))?.finishedAt).toBe(rec.finishedAt);
  }, 180_000);
});
