/**
 * kill -9 at random instants during transfers: four senders stream instances (uncompressed and
 * JPEG Lossless) into a listener process, which is killed with SIGKILL after a random delay and
 * restarted on the same spool. Every instance answered Success before the kill must be in the
 * spool, byte for byte as sent, and readable by DCMTK; nothing partial is ever under a final name.
 * Rounds: 4 (FUZZ_MODE=long: 25).
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { SHARED_DATA } from '../helpers/dicom-listener.js';
import { startListenerChild, type ListenerChild } from '../helpers/listener-child.js';
import { CT_IMAGE_STORAGE, datasetOfFile, PduType, RawPeer } from '../helpers/raw-peer.js';
import { writeSyntheticSeries } from '../helpers/synthetic-series.js';
import { Rng } from './fuzz-cases.js';
import { checkSpool, spooledDataset } from './spool-check.js';

const ROUNDS = process.env.FUZZ_MODE === 'long' ? 25 : 4;
const P001 = join(SHARED_DATA, 'covid-ct-md', 'P001');

const cleanup: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const c of cleanup.reverse()) await c();
});

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

interface Source {
  pc: number;
  sopInstanceUid: string;
  data: Buffer;
}

/** The same dataset under another SOP Instance UID of the same length (its last 4 digits replaced by `tag`). */
function renamed(s: Source, tag: number): Source {
  const uid = s.sopInstanceUid;
  const at = s.data.indexOf(Buffer.from(uid, 'latin1'));
  expect(at).toBeGreaterThan(0);
  expect(uid.length - uid.lastIndexOf('.')).toBeGreaterThan(5);
  const next = `${uid.slice(0, -4)}${String(tag).padStart(4, '0')}`;
  const data = Buffer.from(s.data);
  data.write(next, at, 'latin1');
  return { ...s, sopInstanceUid: next, data };
}

/** Stores `sources` in order until the connection dies; the SOP Instance UIDs answered Success. */
async function sendUntilKilled(port: number, sources: Source[], acked: Map<string, string>): Promise<void> {
  let peer: RawPeer;
  try {
    peer = await RawPeer.connect(port);
    if ((await peer.associate({ maxPdu: 65536 })).type !== PduType.AssociateAc) return;
  } catch {
    return;
  }
  for (const s of sources) {
    const status = await peer
      .store(s.pc, CT_IMAGE_STORAGE, s.sopInstanceUid, s.data, { maxValue: 16000, timeoutMs: 20_000 })
      .catch(() => undefined);
    if (status === 0) acked.set(s.sopInstanceUid, sha(s.data));
    if (status === undefined || peer.closed) return;
  }
  await peer.release().catch(() => false);
}

it(`kill -9 at random instants during transfers (${ROUNDS} rounds): every acknowledged instance is present, unchanged and readable`, async () => {
  const work = await mkdtemp(join(tmpdir(), 'mlsam-kill9-'));
  cleanup.push(() => rm(work, { recursive: true, force: true }));
  const spoolDir = join(work, 'spool');
  const jpeg: Source[] = (
    await Promise.all(
      (
        await readdir(P001)
      )
        .filter((f) => f.endsWith('.dcm'))
        .slice(0, 40)
        .map((f) => datasetOfFile(join(P001, f))),
    )
  ).map((d) => ({ pc: 7, sopInstanceUid: d.sopInstanceUid, data: d.data }));
  const rng = new Rng(Number(process.env.FUZZ_SEED ?? 99));
  const acked = new Map<string, string>();
  let listener: ListenerChild | undefined;
  cleanup.push(async () => listener?.kill());
  let killedMidTransfer = 0;
  for (let round = 0; round < ROUNDS; round++) {
    listener = await startListenerChild({ spoolDir, env: { MLSAM_DICOM__ARTIM_TIMEOUT_SECONDS: '1' } });
    // New instances each round (a fresh synthetic series; the JPEG slices under new SOP Instance
    // UIDs), four senders in parallel.
    const synthetic = await writeSyntheticSeries({ dir: join(work, `series-${round}`), count: 40, rows: 512, columns: 512 });
    const sources: Source[] = [
      ...(await Promise.all(synthetic.instances.map((i) => datasetOfFile(i.path)))).map((d) => ({
        pc: 3,
        sopInstanceUid: d.sopInstanceUid,
        data: d.data,
      })),
      ...jpeg.map((s, i) => renamed(s, 1000 + round * 100 + i)),
    ];
    const shares = Array.from({ length: 4 }, (_, k) => sources.filter((_, i) => i % 4 === k));
    const before = acked.size;
    const sending = Promise.all(shares.map((s) => sendUntilKilled(listener!.port, s, acked)));
    await new Promise((r) => setTimeout(r, 50 + rng.int(600)));
    const tmpBefore = (await readdir(join(spoolDir, '.tmp')).catch(() => [])).length;
    if (tmpBefore > 0) killedMidTransfer++;
    await listener.kill();
    await sending;
    expect(listener.exited()?.signal).toBe('SIGKILL');
    // Every acknowledged instance so far is in the spool, unchanged.
    const spool = await checkSpool(spoolDir);
    expect(spool.invalid, `round ${round}`).toEqual([]);
    for (const [uid, hash] of acked) {
      const path = spool.files.get(uid);
      expect(path, `round ${round}: ${uid} acknowledged, missing`).toBeDefined();
      expect(sha(await spooledDataset(path!)), `round ${round}: ${uid}`).toBe(hash);
    }
    console.log(
      `kill -9 round ${round}: ${acked.size - before} newly acknowledged, ${spool.files.size} spooled, ${spool.temp.length} temp files left by the kill`,
    );
  }
  expect(acked.size).toBeGreaterThan(0);
  expect(killedMidTransfer).toBeGreaterThan(0);
  // A restarted listener serves on the same spool; its leftovers are only under .tmp.
  listener = await startListenerChild({ spoolDir });
  const peer = await RawPeer.connect(listener.port);
  await peer.associate();
  expect(await peer.store(7, CT_IMAGE_STORAGE, jpeg[0]!.sopInstanceUid, jpeg[0]!.data)).toBe(0);
  expect(await peer.release()).toBe(true);
  await listener.stop();
});
