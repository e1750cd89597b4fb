/**
 * What the independent black-box test of `mlsam listen` found (issue 13), each against a real
 * listener on loopback with our own PDU builder (tests/helpers/raw-peer.ts) and DCMTK:
 *  - a dataset that cannot be read (cut short, impossible lengths, nested too deep) never gets
 *    Success, leaves nothing in the spool and is named in the audit with its reason;
 *  - a dataset whose SOP Class UID is not the one of its C-STORE gets 0xA900;
 *  - a peer trickling bytes inside a transfer is aborted and its partial file removed;
 *  - PS3.8 state machine points: P-DATA-TF after A-RELEASE-RQ is aborted, and after an
 *    A-ASSOCIATE-RJ the listener waits for the peer's close (ARTIM) instead of closing first.
 */
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../helpers/dcmtk.js';
import { SHARED_DATA, spoolFiles, startTestListener, type TestListener } from '../helpers/dicom-listener.js';
import {
  CT_IMAGE_STORAGE,
  cStoreRq,
  datasetOfFile,
  datasetPdus,
  EXPLICIT_LE,
  JPEG_LOSSLESS_SV1,
  pdu,
  PduType,
  RawPeer,
  releaseRq,
} from '../helpers/raw-peer.js';
import { pdataPdu } from '../../src/dicom/pdu/pdata.js';
import type { AssociationRecord } from '../../src/dicom/received-instance.js';
import { writeSyntheticSeries, newUid } from '../helpers/synthetic-series.js';
import { el, ui } from '../helpers/dataset-bytes.js';

const P001_SLICE = join(SHARED_DATA, 'covid-ct-md', 'P001', '98C14734-ASSH_1.dcm');
const DEEPLY_NESTED = join(SHARED_DATA, 'dicom-samples', 'orthanc-tests', 'odd', '2026-05-06-Deeply-Nested-Sequence.dcm');
/** Presentation contexts of raw-peer's default A-ASSOCIATE-RQ. */
const PC_EXPLICIT = 3;
const PC_JPEG = 7;

/** A small CT header (explicit VR LE) naming the given SOP class. */
function ctHeader(sopClassUid: string, sopInstanceUid: string): Buffer {
  return Buffer.concat([
    el(0x0008, 0x0016, 'UI', ui(sopClassUid)),
    el(0x0008, 0x0018, 'UI', ui(sopInstanceUid)),
    el(0x0008, 0x0060, 'CS', Buffer.from('CT')),
    el(0x0020, 0x000d, 'UI', ui('1.2.826.0.1.3680043.9.7.1')),
    el(0x0020, 0x000e, 'UI', ui('1.2.826.0.1.3680043.9.7.2')),
  ]);
}

describe('datasets that cannot be read get no Success', () => {
  let tl: TestListener;
  beforeAll(async () => {
    tl = await startTestListener();
  });
  afterAll(async () => {
    await tl?.stop();
  });

  /** One C-STORE on an association of its own; its status and the association's audit record. */
  async function storeOne(
    pc: number,
    sopInstanceUid: string,
    dataset: Buffer,
  ): Promise<{ status: number | undefined; record: AssociationRecord }> {
    const n = tl.records.length;
    const peer = await RawPeer.connect(tl.port);
    await peer.associate();
    const status = await peer.store(pc, CT_IMAGE_STORAGE, sopInstanceUid, dataset);
    expect(await peer.release()).toBe(true);
    return { status, record: (await tl.waitForRecords(n + 1))[n]! };
  }

  it('a JPEG Lossless CT slice cut to 42 KB (last fragment flagged) gets 0xC000; nothing is spooled; the audit says why', async () => {
    const { data, sopInstanceUid, transferSyntaxUid } = await datasetOfFile(P001_SLICE);
    expect(transferSyntaxUid).toBe(JPEG_LOSSLESS_SV1);
    const peer = await RawPeer.connect(tl.port);
    const a = await peer.associate();
    expect(a.accepted.get(PC_JPEG)).toBe(JPEG_LOSSLESS_SV1);
    const cut = data.subarray(0, 42 * 1024);
    expect(await peer.store(PC_JPEG, CT_IMAGE_STORAGE, sopInstanceUid, cut)).toBe(0xc000);
    // The association stays usable: the whole slice is then stored.
    expect(await peer.store(PC_JPEG, CT_IMAGE_STORAGE, sopInstanceUid, data)).toBe(0x0000);
    expect(await peer.release()).toBe(true);
    const [rec] = await tl.waitForRecords(1);
    expect(rec).toMatchObject({ instances: 1, failed: 1, outcome: 'accepted-released' });
    expect(rec!.failures![0]).toMatchObject({ sopInstanceUid, status: 0xc000 });
    expect(rec!.failures![0]!.reason).toMatch(/dataset cannot be read: dataset ends inside a Pixel Data fragment/);
    const files = await spoolFiles(tl.spoolDir);
    expect(files).toHaveLength(1);
    // What was stored is the whole slice, byte for byte, and DCMTK reads it.
    expect((await readFile(files[0]!)).subarray(-data.length).equals(data)).toBe(true);
    expect((await run('dcmdump', ['-q', files[0]!])).code).toBe(0);
    await tl.idle();
    expect(await readdir(join(tl.spoolDir, '.tmp'))).toEqual([]);
  });

  it('an OW Pixel Data of length 0x7fffffff in a 1.2 KB dataset gets 0xC000', async () => {
    const sop = newUid();
    const ds = Buffer.concat([ctHeader(CT_IMAGE_STORAGE, sop), el(0x7fe0, 0x0010, 'OW', Buffer.alloc(1000, 7), 0x7fffffff)]);
    expect(ds.length).toBeLessThan(1300);
    const before = (await spoolFiles(tl.spoolDir)).length;
    const { status, record } = await storeOne(PC_EXPLICIT, sop, ds);
    expect(status).toBe(0xc000);
    expect(record.failures![0]!.reason).toMatch(/element \(7FE0,0010\): 2147482647 of its bytes missing/);
    expect((await spoolFiles(tl.spoolDir)).length).toBe(before);
  });

  it('orthanc-tests Deeply-Nested-Sequence (a CT header, sequences nested 150,000 deep) gets 0xC000', async () => {
    const { data, sopInstanceUid, transferSyntaxUid } = await datasetOfFile(DEEPLY_NESTED);
    expect(transferSyntaxUid).toBe(EXPLICIT_LE);
    const before = (await spoolFiles(tl.spoolDir)).length;
    const { status, record } = await storeOne(PC_EXPLICIT, sopInstanceUid, data);
    expect(status).toBe(0xc000);
    expect(record.failures![0]!.reason).toMatch(/nested deeper than 32 levels/);
    expect((await spoolFiles(tl.spoolDir)).length).toBe(before);
    await tl.idle();
    expect(await readdir(join(tl.spoolDir, '.tmp'))).toEqual([]);
  });

  it('a dataset whose SOP Class UID differs from the C-STORE (MR in a CT C-STORE) gets 0xA900', async () => {
    const sop = newUid();
    const ds = Buffer.concat([ctHeader('1.2.840.10008.5.1.4.1.1.4', sop), el(0x7fe0, 0x0010, 'OW', Buffer.alloc(64))]);
    const before = (await spoolFiles(tl.spoolDir)).length;
    const peer = await RawPeer.connect(tl.port);
    await peer.associate();
    expect(await peer.store(PC_EXPLICIT, CT_IMAGE_STORAGE, sop, ds)).toBe(0xa900);
    // The same dataset naming CT is stored.
    const ct = Buffer.concat([ctHeader(CT_IMAGE_STORAGE, sop), el(0x7fe0, 0x0010, 'OW', Buffer.alloc(64))]);
    expect(await peer.store(PC_EXPLICIT, CT_IMAGE_STORAGE, sop, ct)).toBe(0x0000);
    expect(await peer.release()).toBe(true);
    const recs = await tl.waitForRecords(4);
    expect(recs[3]!.failures![0]).toMatchObject({ status: 0xa900 });
    expect(recs[3]!.failures![0]!.reason).toMatch(/SOPClassUID in the dataset \(1\.2\.840\.10008\.5\.1\.4\.1\.1\.4\) differs/);
    expect((await spoolFiles(tl.spoolDir)).length).toBe(before + 1);
  });

  it("P-DATA-TF after the peer's A-RELEASE-RQ is answered with A-ABORT and not stored", async () => {
    const sop = newUid();
    const ds = Buffer.concat([ctHeader(CT_IMAGE_STORAGE, sop), el(0x7fe0, 0x0010, 'OW', Buffer.alloc(64))]);
    const before = (await spoolFiles(tl.spoolDir)).length;
    const peer = await RawPeer.connect(tl.port);
    await peer.associate();
    await peer.write(Buffer.concat([releaseRq(), cStoreRq(PC_EXPLICIT, 9, CT_IMAGE_STORAGE, sop), ...datasetPdus(PC_EXPLICIT, ds)]));
    const types: number[] = [];
    for (let p = await peer.next(); p; p = await peer.next()) types.push(p.type);
    expect(types).toContain(PduType.Abort);
    expect(types).not.toContain(PduType.PData);
    expect(await peer.waitClosed()).toBe(true);
    const recs = await tl.waitForRecords(5);
    expect(recs[4]).toMatchObject({ outcome: 'aborted', instances: 0 });
    expect(recs[4]!.reason).toMatch(/P-DATA-TF after A-RELEASE-RQ/);
    expect((await spoolFiles(tl.spoolDir)).length).toBe(before);
  });
});

describe('ARTIM after A-ASSOCIATE-RJ (PS3.8 9.2, Sta13)', () => {
  it('the listener waits for the peer to close; it closes itself only when ARTIM expires', async () => {
    const tl = await startTestListener({ dicom: { artimTimeoutSeconds: 2 } });
    try {
      // A conforming peer closes as soon as it has read the A-ASSOCIATE-RJ.
      const polite = await RawPeer.connect(tl.port);
      const r = await polite.associate({ called: 'NOT-US' });
      expect(r.type).toBe(PduType.AssociateRj);
      expect(r.reject).toEqual({ result: 1, source: 1, reason: 7 });
      expect(await polite.waitClosed(1000)).toBe(true);
      await tl.idle(1500);
      // One that stays: the listener does not close first, and closes once ARTIM expired.
      const stubborn = await RawPeer.connect(tl.port, { closeOnAbort: false });
      const t0 = Date.now();
      expect((await stubborn.associate({ called: 'NOT-US' })).type).toBe(PduType.AssociateRj);
      expect(await stubborn.waitClosed(1000)).toBe(false);
      expect(tl.listener.connections).toBe(1);
      expect(await stubborn.waitClosed(10_000)).toBe(true);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(1900);
      const recs = await tl.waitForRecords(2);
      expect(recs.map((x) => x.outcome)).toEqual(['rejected:called-ae-title-not-recognized', 'rejected:called-ae-title-not-recognized']);
      // DCMTK sees a clean rejection.
      const echo = await run('echoscu', ['-aec', 'NOT-US', '127.0.0.1', String(tl.port)]);
      expect(echo.stdout + echo.stderr).toMatch(/Association Rejected/i);
      expect(echo.stdout + echo.stderr).not.toMatch(/abort/i);
    } finally {
      await tl.stop();
    }
  });
});

describe('slow peers are dropped (progress deadline)', () => {
  const dicom = { progressTimeoutSeconds: 1, minTransferBytesPerSecond: 2000, idleTimeoutSeconds: 60, artimTimeoutSeconds: 2 };
  let tl: TestListener;
  let work: string;
  beforeAll(async () => {
    tl = await startTestListener({ dicom });
    work = await mkdtemp(join(tmpdir(), 'mlsam-slow-'));
  });
  afterAll(async () => {
    await tl?.stop();
    await rm(work, { recursive: true, force: true });
  });

  /** Sends `bytes` one at a time, `gapMs` apart, until the listener closes or `maxMs` passed. */
  async function trickle(peer: RawPeer, bytes: Buffer, gapMs: number, maxMs: number): Promise<number> {
    const t0 = Date.now();
    for (let i = 0; i < bytes.length && !peer.closed && Date.now() - t0 < maxMs; i++) {
      await peer.write(bytes.subarray(i, i + 1));
      await new Promise((r) => setTimeout(r, gapMs));
    }
    return Date.now() - t0;
  }

  it('a peer trickling a byte every 100 ms inside a P-DATA-TF, after declaring a 2 GB Pixel Data, is aborted and its temp file removed', async () => {
    const sop = newUid();
    const start = Buffer.concat([ctHeader(CT_IMAGE_STORAGE, sop), el(0x7fe0, 0x0010, 'OW', Buffer.alloc(0), 2_000_000_000)]);
    const peer = await RawPeer.connect(tl.port);
    await peer.associate();
    // The command, then one P-DATA-TF PDU announcing 16000 bytes, of which the header part goes at once.
    const body = pdataPdu(PC_EXPLICIT, 0, Buffer.concat([start, Buffer.alloc(16000 - start.length)]));
    await peer.write(Buffer.concat([cStoreRq(PC_EXPLICIT, 1, CT_IMAGE_STORAGE, sop), body.subarray(0, 12 + start.length)]));
    const until = Date.now() + 5000;
    while ((await readdir(join(tl.spoolDir, '.tmp'))).length === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    expect((await readdir(join(tl.spoolDir, '.tmp'))).length).toBe(1);
    const ms = await trickle(peer, body.subarray(12 + start.length), 100, 30_000);
    expect(peer.closed).toBe(true);
    expect(ms).toBeLessThan(30_000);
    expect(peer.pdus.some((p) => p.type === PduType.Abort)).toBe(true);
    const recs = await tl.waitForRecords(1);
    expect(recs[0]).toMatchObject({ outcome: 'aborted' });
    expect(recs[0]!.reason).toMatch(/too slow/);
    await tl.idle();
    expect(await readdir(join(tl.spoolDir, '.tmp'))).toEqual([]);
    expect(await spoolFiles(tl.spoolDir)).toEqual([]);
  });

  it('a peer sending whole PDUs of one dataset byte each is aborted too (the idle timeout never fires for it)', async () => {
    const sop = newUid();
    const start = Buffer.concat([ctHeader(CT_IMAGE_STORAGE, sop), el(0x7fe0, 0x0010, 'OW', Buffer.alloc(0), 2_000_000_000)]);
    const peer = await RawPeer.connect(tl.port);
    await peer.associate();
    await peer.write(Buffer.concat([cStoreRq(PC_EXPLICIT, 1, CT_IMAGE_STORAGE, sop), pdataPdu(PC_EXPLICIT, 0, start)]));
    const t0 = Date.now();
    while (!peer.closed && Date.now() - t0 < 30_000) {
      await peer.write(pdataPdu(PC_EXPLICIT, 0, Buffer.alloc(1)));
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(peer.closed).toBe(true);
    const recs = await tl.waitForRecords(2);
    expect(recs[1]!.reason).toMatch(/too slow/);
    await tl.idle();
    expect(await readdir(join(tl.spoolDir, '.tmp'))).toEqual([]);
  });

  it('under the same deadline, DCMTK stores a series, and an association idle between instances is not dropped', async () => {
    const s = await writeSyntheticSeries({ dir: join(work, 'series'), count: 10 });
    const r = await run('storescu', ['+sd', '-aec', 'MLSAM', '127.0.0.1', String(tl.port), s.dir]);
    expect(r.code, r.stderr).toBe(0);
    const peer = await RawPeer.connect(tl.port);
    await peer.associate();
    const { data } = await datasetOfFile(s.instances[0]!.path);
    expect(await peer.store(PC_EXPLICIT, CT_IMAGE_STORAGE, s.instances[0]!.sopInstanceUid, data)).toBe(0);
    await new Promise((res) => setTimeout(res, 2500));
    expect(peer.closed).toBe(false);
    const second = await datasetOfFile(s.instances[1]!.path);
    expect(await peer.store(PC_EXPLICIT, CT_IMAGE_STORAGE, second.sopInstanceUid, second.data)).toBe(0);
    expect(await peer.release()).toBe(true);
  });
});

it('a PDU type the requestor never sends (A-ASSOCIATE-AC) aborts the association', async () => {
  const tl = await startTestListener();
  try {
    const peer = await RawPeer.connect(tl.port);
    await peer.associate();
    await peer.write(pdu(PduType.AssociateAc, Buffer.alloc(68)));
    expect((await peer.next())?.type).toBe(PduType.Abort);
    expect(await peer.waitClosed()).toBe(true);
    const [rec] = await tl.waitForRecords(1);
    expect(rec!.reason).toMatch(/A-ASSOCIATE-AC from the requestor/);
  } finally {
    await tl.stop();
  }
});
