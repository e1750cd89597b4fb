import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config/schema.js';
import { writeSyntheticSeries, type SyntheticSeries } from '../../src/dicom/testing/synthetic-series.js';
import { instancesHash } from '../../src/queue/jobs.js';
import { cleanup, freePort, PrivateRedis, sleep, testConfig, waitFor } from '../queue/helpers.js';
import { countFiles, inferenceJobs, inferenceQueue, ListenProcess, storescu, waitForJobs } from './helpers.js';

/**
 * `mlsam listen` as a real process (dist/cli/main.js; `npm test` builds it first): killed with
 * SIGKILL mid-series, Redis killed mid-series, and a graceful SIGTERM.
 */
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

const envOf = (c: Config, extra: Record<string, string> = {}): Record<string, string> => ({
  MLSAM_REDIS__URL: c.redis.url,
  MLSAM_REDIS__KEY_PREFIX: c.redis.keyPrefix,
  MLSAM_SPOOL__DIR: c.spool.dir,
  MLSAM_SERIES__QUIET_PERIOD_SECONDS: String(c.series.quietPeriodSeconds),
  MLSAM_SERIES__ROUTING__MIN_SLICES: String(c.series.routing.minSlices),
  ...extra,
});

async function setup(tag: string, quietS: number, redisUrl?: string): Promise<Config> {
  const c = await testConfig(tag, {
    series: { quietPeriodSeconds: quietS, routing: { minSlices: 10 } },
    ...(redisUrl ? { redis: { url: redisUrl } } : {}),
  });
  cleanups.push(() => cleanup(c));
  return c;
}

function listen(c: Config, extra: Record<string, string> = {}, command: 'listen' | 'serve' = 'listen'): ListenProcess {
  const p = new ListenProcess(envOf(c, extra), command);
  cleanups.push(async () => void (await p.stop('SIGKILL')));
  return p;
}

async function series(count: number): Promise<SyntheticSeries> {
  const dir = await mkdtemp(join(tmpdir(), 'mlsam-send-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return writeSyntheticSeries({ dir, count, rows: 128, columns: 128 });
}

function queueOf(c: Config) {
  const q = inferenceQueue(c);
  cleanups.push(() => q.close());
  return q.queue;
}

/** On failure, adds the listener's log (and storescu's output) to the error. */
async function explain<T>(p: Promise<T>, proc: ListenProcess, transfer?: Promise<{ output: string }>): Promise<T> {
  try {
    return await p;
  } catch (err) {
    const scu = transfer ? await Promise.race([transfer.then((t) => t.output), sleep(5_000).then(() => '(still running)')]) : '';
    throw new Error(
      `${(err as Error).message}\n--- listener stderr (tail):\n${proc.stderr.slice(-4000)}\n--- storescu:\n${scu.slice(-2000)}`,
    );
  }
}

describe('mlsam listen (process)', () => {
  it('loses nothing when killed with SIGKILL mid-series: after a restart and the rest, exactly one full job', async () => {
    const c = await setup('e2e-kill', 8); // the restart must come within the quiet period
    const queue = queueOf(c);
    const s = await series(40);
    const files = s.instances.map((i) => i.path);
    const seriesDir = join(c.spool.dir, s.studyInstanceUid, s.seriesInstanceUid);
    const proc = listen(c);
    const port = await proc.start();

    // Kill the listener while storescu is in the middle of the series.
    const transfer = storescu(port, files);
    await explain(
      waitFor(async () => (await countFiles(seriesDir)) >= 10 || undefined, 30_000, '10 spooled instances', 5),
      proc,
      transfer,
    );
    expect(await proc.stop('SIGKILL')).toBeNull();
    const partial = await transfer;
    const spooled = await countFiles(seriesDir);
    expect(partial.successes).toBeLessThan(40);
    // Every acknowledged instance is on disk.
    expect(spooled).toBeGreaterThanOrEqual(partial.successes);

    // The PACS retries the whole series against the restarted listener.
    const port2 = await proc.start();
    const rest = await storescu(port2, files);
    expect(rest.successes).toBe(40);
    const [job] = await explain(waitForJobs(queue, 1, 30_000), proc);
    expect(job?.data).toMatchObject({
      seriesInstanceUid: s.seriesInstanceUid,
      instanceCount: 40,
      instancesHash: instancesHash(s.instances.map((i) => i.sopInstanceUid)),
    });
    expect(await countFiles(seriesDir)).toBe(40);
    await sleep(3_000);
    expect(await inferenceJobs(queue)).toHaveLength(1);
    expect(await proc.stop('SIGTERM')).toBe(0);
  });

  it('acknowledges every instance while Redis is down, and the reconciler queues the series once Redis is back', async () => {
    const redis = new PrivateRedis(await freePort());
    await redis.start();
    cleanups.push(() => redis.kill());
    const c = await setup('e2e-redis', 2, redis.url);
    const proc = listen(c, { MLSAM_SERIES__RECONCILE_CRON: '*/2 * * * * *' });
    const port = await proc.start();
    const s = await series(40);
    const files = s.instances.map((i) => i.path);
    const seriesDir = join(c.spool.dir, s.studyInstanceUid, s.seriesInstanceUid);

    // Redis goes away in the middle of the association (and with it every key: no persistence).
    const transfer = storescu(port, files);
    await explain(
      waitFor(async () => (await countFiles(seriesDir)) >= 10 || undefined, 30_000, '10 spooled instances', 5),
      proc,
      transfer,
    );
    await redis.kill();
    const atKill = await countFiles(seriesDir);
    const sent = await transfer;
    expect(atKill).toBeLessThan(40);
    expect(sent.successes).toBe(40);
    expect(await countFiles(seriesDir)).toBe(40);
    await sleep(3_000); // past the quiet period while Redis is still down
    await redis.start();

    const queue = queueOf(c);
    const [job] = await explain(waitForJobs(queue, 1, 30_000), proc);
    expect(job?.data).toMatchObject({
      seriesInstanceUid: s.seriesInstanceUid,
      instanceCount: 40,
      instancesHash: instancesHash(s.instances.map((i) => i.sopInstanceUid)),
      enqueuedBy: 'reconciler',
    });
    await sleep(4_500); // two more reconcile passes
    expect(await inferenceJobs(queue)).toHaveLength(1);
    expect(await proc.stop('SIGTERM')).toBe(0);
  });

  it('`mlsam serve` shuts down gracefully on SIGTERM during a transfer: exit 0, every acknowledged instance spooled', async () => {
    const c = await setup('e2e-term', 2);
    const s = await series(40);
    const seriesDir = join(c.spool.dir, s.studyInstanceUid, s.seriesInstanceUid);
    const proc = listen(c, {}, 'serve');
    const port = await proc.start();
    const transfer = storescu(
      port,
      s.instances.map((i) => i.path),
    );
    await explain(
      waitFor(async () => (await countFiles(seriesDir)) >= 5 || undefined, 30_000, '5 spooled instances', 5),
      proc,
      transfer,
    );
    expect(await proc.stop('SIGTERM')).toBe(0);
    const sent = await transfer;
    expect(sent.successes).toBeGreaterThanOrEqual(5);
    expect(await countFiles(seriesDir)).toBeGreaterThanOrEqual(sent.successes);
    expect(proc.stderr).toContain('"msg":"stopped"');
  });
});
