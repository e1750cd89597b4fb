/**
 * A spool on a small tmpfs (mounted for the test; skipped with a message where `mount -t tmpfs`
 * is not permitted): a burst of instances stops at the watermark (the usage check counts the
 * bytes written since the file system was last asked), a full disk answers 0xA700, leaves no
 * partial file, and everything acknowledged is whole.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it, type TestContext } from 'vitest';
import { diskUsagePercent } from '../../src/dicom/spool/spool-layout.js';
import { startTestListener } from '../helpers/dicom-listener.js';
import { CT_IMAGE_STORAGE, datasetOfFile, RawPeer } from '../helpers/raw-peer.js';
import { writeSyntheticSeries } from '../helpers/synthetic-series.js';
import { checkSpool } from './spool-check.js';

const exec = promisify(execFile);
const cleanup: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const c of cleanup.reverse()) await c();
});

/** A tmpfs of `mb` MB on a fresh folder; skips the test (with the reason) where it cannot be mounted. */
async function tmpfs(ctx: TestContext, mb: number): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'mlsam-tmpfs-'));
  try {
    await exec('mount', ['-t', 'tmpfs', '-o', `size=${mb}m,mode=0700`, 'tmpfs', dir]);
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    const why = `cannot mount a tmpfs here (${(err as Error).message.split('\n')[0]}): disk-full test skipped`;
    console.warn(why);
    ctx.skip(why);
  }
  cleanup.push(async () => {
    await exec('umount', [dir]).catch(() => exec('umount', ['-l', dir]));
    await rm(dir, { recursive: true, force: true });
  });
  return dir;
}

/** Sends every dataset on one association; the statuses in order. */
async function sendAll(port: number, datasets: Array<{ sopInstanceUid: string; data: Buffer }>): Promise<number[]> {
  const peer = await RawPeer.connect(port);
  await peer.associate({ maxPdu: 65536 });
  const out: number[] = [];
  for (const d of datasets) out.push((await peer.store(3, CT_IMAGE_STORAGE, d.sopInstanceUid, d.data, { maxValue: 65000 })) ?? -1);
  await peer.release();
  return out;
}

describe('spool disk full (tmpfs)', () => {
  let series: Array<{ sopInstanceUid: string; data: Buffer }>;
  let work: string;

  async function data(): Promise<Array<{ sopInstanceUid: string; data: Buffer }>> {
    if (!series) {
      work = await mkdtemp(join(tmpdir(), 'mlsam-diskfull-'));
      cleanup.push(() => rm(work, { recursive: true, force: true }));
      const s = await writeSyntheticSeries({ dir: join(work, 's'), count: 64, rows: 512, columns: 512 });
      series = await Promise.all(s.instances.map((i) => datasetOfFile(i.path)));
    }
    return series;
  }

  it('a burst of 64 instances (32 MB) into a 32 MB spool with the watermark at 50 %: the watermark holds', async (ctx) => {
    const dir = await tmpfs(ctx, 32);
    const datasets = await data();
    const tl = await startTestListener({ spool: { dir, maxDiskUsagePercent: 50 } });
    try {
      // Two associations at once, as fast as the loopback goes.
      const [a, b] = await Promise.all([sendAll(tl.port, datasets.slice(0, 32)), sendAll(tl.port, datasets.slice(32))]);
      const statuses = [...a!, ...b!];
      const usage = diskUsagePercent(dir);
      console.log(
        `watermark burst: ${statuses.filter((s) => s === 0).length} stored, ${statuses.filter((s) => s === 0xa700).length} answered 0xA700; spool at ${usage.toFixed(1)} %`,
      );
      expect(statuses.filter((s) => s === 0).length).toBeGreaterThan(10);
      expect(new Set(statuses)).toEqual(new Set([0, 0xa700]));
      // Within one PDU, a page per file and the directories of the watermark.
      expect(usage).toBeLessThan(52);
      await tl.idle();
      const spool = await checkSpool(dir);
      expect(spool.invalid).toEqual([]);
      expect(spool.temp).toEqual([]);
      const acked = datasets.filter((_, i) => statuses[i] === 0).map((d) => d.sopInstanceUid);
      expect([...spool.files.keys()].sort()).toEqual(acked.sort());
    } finally {
      await tl.stop();
    }
  });

  it('a full disk (watermark 100 %) answers 0xA700, keeps no partial file, and serves again once there is room', async (ctx) => {
    const dir = await tmpfs(ctx, 8);
    const datasets = await data();
    const tl = await startTestListener({ spool: { dir, maxDiskUsagePercent: 100 } });
    try {
      const statuses = await sendAll(tl.port, datasets.slice(0, 24));
      console.log(
        `full disk: ${statuses.filter((s) => s === 0).length} stored, then ${statuses.filter((s) => s === 0xa700).length} answered 0xA700`,
      );
      expect(statuses.filter((s) => s === 0).length).toBeGreaterThan(5);
      expect(statuses.filter((s) => s === 0xa700).length).toBeGreaterThan(5);
      expect(new Set(statuses)).toEqual(new Set([0, 0xa700]));
      await tl.idle();
      const spool = await checkSpool(dir);
      expect(spool.invalid).toEqual([]);
      expect(spool.temp).toEqual([]);
      const acked = datasets
        .slice(0, 24)
        .filter((_, i) => statuses[i] === 0)
        .map((d) => d.sopInstanceUid);
      expect([...spool.files.keys()].sort()).toEqual(acked.sort());
      // Room again: the next instance is stored.
      for (const p of [...spool.files.values()].slice(0, 4)) await unlink(p);
      await new Promise((r) => setTimeout(r, 1100));
      expect(await sendAll(tl.port, datasets.slice(30, 31))).toEqual([0]);
    } finally {
      await tl.stop();
    }
  });
});
