import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { writeSyntheticSeries } from '../helpers/synthetic-series.js';
import { run } from '../helpers/dcmtk.js';
import { startListenerChild, type ListenerChild } from '../helpers/listener-child.js';
import { CT_IMAGE_STORAGE, RawPeer } from '../helpers/raw-peer.js';

const cleanup: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const c of cleanup.reverse()) await c();
});

async function listenerIn(work: string): Promise<ListenerChild> {
  const l = await startListenerChild({ spoolDir: join(work, 'spool'), logLevel: 'warn' });
  cleanup.push(() => l.kill());
  return l;
}

const mb = (n: number): string => (n / 1048576).toFixed(1);

it('keeps RSS flat while receiving a 600-slice series (listener in a child process)', async () => {
  const work = await mkdtemp(join(tmpdir(), 'mlsam-rss-'));
  cleanup.push(() => rm(work, { recursive: true, force: true }));
  const series = await writeSyntheticSeries({ dir: join(work, 'series'), count: 600 });
  const l = await listenerIn(work);
  const r = await run('storescu', ['+sd', '-aec', 'MLSAM', '127.0.0.1', String(l.port), series.dir], { timeoutMs: 300_000 });
  expect(r.code, r.stderr).toBe(0);
  await new Promise((res) => setTimeout(res, 300));
  await l.stop();
  const stored = await readdir(join(l.spoolDir, series.studyInstanceUid, series.seriesInstanceUid));
  expect(stored).toHaveLength(600);
  const samples = l.samples;
  const last = samples.at(-1)!;
  expect(last.instances).toBe(600);
  // RSS saw-tooths with garbage collection of socket buffers; compare peaks, not single samples:
  // the peak while receiving instances 300-600 must be within 40 MB of the peak during 100-300.
  const peakOf = (from: number, to: number): number =>
    Math.max(...samples.filter((s) => s.instances >= from && s.instances <= to).map((s) => s.rss));
  const early = peakOf(100, 300);
  const late = peakOf(300, 600);
  console.log(
    `peak RSS: instances 100-300 ${mb(early)} MB, 300-600 ${mb(late)} MB, at end ${mb(last.rss)} MB (series ${mb(series.fileBytes * 600)} MB)`,
  );
  expect(late - early).toBeLessThan(40 * 1048576);
  // Nothing close to the series size is ever held.
  expect(Math.max(...samples.map((s) => s.rss))).toBeLessThan(series.fileBytes * 600 * 0.75);
});

it('16 associations each sending 1,000,000 unclosed sequence levels (20 MB) keep memory near the PDU buffers, released afterwards', async () => {
  const work = await mkdtemp(join(tmpdir(), 'mlsam-nest-'));
  cleanup.push(() => rm(work, { recursive: true, force: true }));
  const l = await listenerIn(work);
  await new Promise((res) => setTimeout(res, 500));
  const baseline = l.samples.at(-1)!;
  // (0008,1115) SQ of undefined length, an item of undefined length, again and again: 20 bytes a
  // level, before the Study and Series UIDs (so even the header walk has to go through it).
  const level = Buffer.from('0800151153510000ffffffff' + 'feff00e0ffffffff', 'hex');
  expect(level.length).toBe(20);
  const nested = Buffer.concat(Array<Buffer>(1_000_000).fill(level));
  const t0 = Date.now();
  const statuses = await Promise.all(
    Array.from({ length: 16 }, async (_, i) => {
      const peer = await RawPeer.connect(l.port);
      await peer.associate({ calling: `NEST${i}`, maxPdu: 65536 });
      const status = await peer.store(3, CT_IMAGE_STORAGE, `1.2.826.0.1.3680043.9.7.${i + 1}`, nested, {
        maxValue: 65000,
        timeoutMs: 120_000,
      });
      await peer.release();
      return status;
    }),
  );
  const sentMs = Date.now() - t0;
  expect(statuses).toEqual(Array<number>(16).fill(0xc000));
  await new Promise((res) => setTimeout(res, 1500));
  const peak = Math.max(...l.samples.filter((s) => s.t >= t0).map((s) => s.rss));
  const after = l.samples.at(-1)!;
  console.log(
    `nesting flood (${sentMs} ms): RSS baseline ${mb(baseline.rss)} MB, peak ${mb(peak)} MB, after ${mb(after.rss)} MB; heap ${mb(baseline.heapUsed)} → ${mb(after.heapUsed)} MB`,
  );
  // Before the fix: ~98 MB per association (1.6 GB for 16) that stayed. Now: socket buffers only.
  expect(peak - baseline.rss).toBeLessThan(160 * 1048576);
  expect(after.heapUsed - baseline.heapUsed).toBeLessThan(24 * 1048576);
  await l.stop();
  expect(await readdir(join(l.spoolDir, '.tmp'))).toEqual([]);
});
