/**
 * Resource exhaustion against a listener in its own process: 200 connections that never say a
 * word, 64 associations storing at once (against a limit of 16), and slow peers trickling
 * bytes mid-transfer, all at the same time. The listener must refuse what is over its limit
 * (transient A-ASSOCIATE-RJ), drop the silent and the slow, store every accepted instance, keep
 * serving DCMTK, and give every descriptor and temp file back afterwards.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { run } from '../helpers/dcmtk.js';
import { startListenerChild } from '../helpers/listener-child.js';
import { cStoreRq, CT_IMAGE_STORAGE, datasetOfFile, PduType, RawPeer } from '../helpers/raw-peer.js';
import { writeSyntheticSeries } from '../helpers/synthetic-series.js';
import { pdataPdu } from '../../src/dicom/pdu/pdata.js';
import { checkSpool } from './spool-check.js';

const cleanup: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const c of cleanup.reverse()) await c();
});

it('200 silent connections, 64 parallel associations and 8 slow peers at once: limits hold, the silent and slow are dropped, nothing leaks', async () => {
  const work = await mkdtemp(join(tmpdir(), 'mlsam-exhaust-'));
  cleanup.push(() => rm(work, { recursive: true, force: true }));
  const series = await writeSyntheticSeries({ dir: join(work, 'series'), count: 8, rows: 64, columns: 64 });
  const datasets = await Promise.all(series.instances.map((i) => datasetOfFile(i.path)));
  const l = await startListenerChild({
    spoolDir: join(work, 'spool'),
    env: {
      MLSAM_DICOM__MAX_ASSOCIATIONS: '16',
      MLSAM_DICOM__ASSOCIATION_TIMEOUT_SECONDS: '3',
      MLSAM_DICOM__IDLE_TIMEOUT_SECONDS: '5',
      MLSAM_DICOM__PROGRESS_TIMEOUT_SECONDS: '2',
      MLSAM_DICOM__MIN_TRANSFER_BYTES_PER_SECOND: '1000',
      MLSAM_DICOM__ARTIM_TIMEOUT_SECONDS: '2',
    },
  });
  cleanup.push(() => l.kill());
  await new Promise((r) => setTimeout(r, 300));
  const baseline = { fds: l.fds(), rss: l.rss() };
  let peakRss = baseline.rss;
  let peakFds = baseline.fds;
  const sampler = setInterval(() => {
    peakRss = Math.max(peakRss, l.rss());
    peakFds = Math.max(peakFds, l.fds());
  }, 100);
  cleanup.push(async () => clearInterval(sampler));

  // 200 connections that send nothing: the listener closes each after the association timeout.
  const silent: Array<Promise<number>> = [];
  const t0 = Date.now();
  for (let i = 0; i < 200; i++) {
    silent.push(
      new Promise<number>((resolve) => {
        const s: Socket = connect({ host: '127.0.0.1', port: l.port });
        s.on('error', () => undefined);
        s.on('data', () => undefined);
        s.on('close', () => resolve(Date.now() - t0));
      }),
    );
  }
  // 8 slow peers: a C-STORE, then a byte every 150 ms inside its dataset.
  const slow = Array.from({ length: 8 }, async (_, i) => {
    for (let attempt = 0; attempt < 50; attempt++) {
      const peer = await RawPeer.connect(l.port);
      const a = await peer.associate({ calling: `SLOW${i}` });
      if (a.type !== PduType.AssociateAc) {
        await peer.waitClosed();
        await new Promise((r) => setTimeout(r, 200));
        continue;
      }
      const ds = datasets[i % datasets.length]!;
      const body = pdataPdu(3, 0x02, ds.data);
      await peer.write(Buffer.concat([cStoreRq(3, 1, CT_IMAGE_STORAGE, ds.sopInstanceUid), body.subarray(0, 200)]));
      const start = Date.now();
      for (let p = 200; p < body.length && !peer.closed && Date.now() - start < 60_000; p++) {
        await peer.write(body.subarray(p, p + 1));
        await new Promise((r) => setTimeout(r, 150));
      }
      return { dropped: peer.closed, ms: Date.now() - start, aborted: peer.pdus.some((x) => x.type === PduType.Abort) };
    }
    return { dropped: false, ms: -1, aborted: false };
  });
  // 64 associations at once, each storing the series (retrying while the listener is full).
  const acked = new Set<string>();
  let rejectedTransient = 0;
  const storers = Array.from({ length: 64 }, async (_, i) => {
    for (let attempt = 0; attempt < 200; attempt++) {
      const peer = await RawPeer.connect(l.port);
      const a = await peer.associate({ calling: `PAR${i}` });
      if (a.type === PduType.AssociateRj) {
        expect(a.reject).toEqual({ result: 2, source: 3, reason: 2 });
        rejectedTransient++;
        expect(await peer.waitClosed(5000)).toBe(true);
        await new Promise((r) => setTimeout(r, 20 + (i % 10) * 10));
        continue;
      }
      expect(a.type).toBe(PduType.AssociateAc);
      // Every association sends the same 8 instances: they race each other into the spool and
      // are stored once; every C-STORE is answered Success.
      for (const ds of datasets) {
        expect(await peer.store(3, CT_IMAGE_STORAGE, ds.sopInstanceUid, ds.data), `PAR${i} ${ds.sopInstanceUid}`).toBe(0);
        acked.add(ds.sopInstanceUid);
      }
      expect(await peer.release()).toBe(true);
      return true;
    }
    return false;
  });
  const stored = await Promise.all(storers);
  expect(stored.every(Boolean)).toBe(true);
  expect(rejectedTransient).toBeGreaterThan(0);
  // DCMTK gets through once the parallel senders are done (the silent ones do not count against the limit).
  const dcmtk = await run('storescu', ['+sd', '-aec', 'MLSAM', '-aet', 'DCMTK', '127.0.0.1', String(l.port), series.dir]);
  expect(dcmtk.code, dcmtk.stderr).toBe(0);
  const slowResults = await Promise.all(slow);
  for (const s of slowResults) {
    expect(s.dropped).toBe(true);
    expect(s.aborted).toBe(true);
    expect(s.ms).toBeLessThan(30_000);
  }
  const silentClosed = await Promise.all(silent);
  expect(Math.max(...silentClosed)).toBeLessThan(30_000);
  // Everything is given back.
  const until = Date.now() + 20_000;
  while (l.fds() > baseline.fds + 1 && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
  clearInterval(sampler);
  const mb = (n: number): string => (n / 1048576).toFixed(1);
  console.log(
    `exhaustion: ${rejectedTransient} transient rejections; fds ${baseline.fds} → peak ${peakFds} → ${l.fds()}; RSS ${mb(baseline.rss)} → peak ${mb(peakRss)} MB`,
  );
  expect(l.fds()).toBeLessThanOrEqual(baseline.fds + 1);
  expect(peakFds).toBeGreaterThan(baseline.fds + 200);
  expect(peakRss - baseline.rss).toBeLessThan(250 * 1048576);
  expect(l.exited()).toBeUndefined();
  await l.stop();
  const spool = await checkSpool(l.spoolDir);
  expect(spool.invalid).toEqual([]);
  expect(spool.temp).toEqual([]);
  for (const uid of acked) expect(spool.files.has(uid), uid).toBe(true);
  expect(spool.files.size).toBe(datasets.length);
});
