import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeSyntheticSeries, type SyntheticSeries } from '../helpers/synthetic-series.js';
import { dumpDataset, run } from '../helpers/dcmtk.js';
import { SHARED_DATA, spoolFiles, startTestListener, type TestListener } from '../helpers/dicom-listener.js';
import { associateRq as buildAssociateRq, IMPLICIT_LE, VERIFICATION } from '../helpers/raw-peer.js';

const P001 = join(SHARED_DATA, 'covid-ct-md', 'P001');
const UNKNOWN_SOP = join(SHARED_DATA, 'dicom-samples', 'orthanc-tests', 'odd', 'UnknownSopClassUid.dcm');

/** A hand-built A-ASSOCIATE-RQ proposing Verification with implicit VR LE. */
function associateRq(called: string, calling: string): Buffer {
  return buildAssociateRq({ called, calling, contexts: [{ id: 1, abstractSyntax: VERIFICATION, transferSyntaxes: [IMPLICIT_LE] }] });
}

/** Closes our side once the listener's A-ABORT arrived (a conforming peer does; the listener waits for it). */
function closeOnAbort(sock: Socket, d: Buffer): void {
  if (d.includes(Buffer.from([0x07, 0x00, 0x00, 0x00, 0x00, 0x04]))) sock.end();
}

describe('DICOM listener (DCMTK peers)', () => {
  let tl: TestListener;
  let work: string;
  let series: SyntheticSeries;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'mlsam-dicom-test-'));
    series = await writeSyntheticSeries({ dir: join(work, 'ct'), count: 12 });
    tl = await startTestListener({ dicom: { aeTitle: 'MLSAM' } });
  });

  afterAll(async () => {
    await tl?.stop();
    await rm(work, { recursive: true, force: true });
  });

  it('answers C-ECHO and announces the configured max PDU', async () => {
    const r = await run('echoscu', ['-d', '-aec', 'MLSAM', '127.0.0.1', String(tl.port)]);
    expect(r.code, r.stderr).toBe(0);
    // Two lines: the proposal (their value unknown: 0), then the acceptance with ours.
    expect(r.stdout + r.stderr).toMatch(new RegExp(`Their Max PDU Receive Size:\\s+${tl.config.dicom.maxPduLength}\\b`));
  });

  it('stores an uncompressed synthetic series durably with the dataset unchanged', async () => {
    const before = tl.instances.length;
    const r = await run('storescu', ['+sd', '-aec', 'MLSAM', '-aet', 'PACS1', '127.0.0.1', String(tl.port), series.dir]);
    expect(r.code, r.stderr).toBe(0);
    const got = tl.instances.slice(before);
    expect(got).toHaveLength(12);
    const seriesDir = join(tl.spoolDir, series.studyInstanceUid, series.seriesInstanceUid);
    const files = (await readdir(seriesDir)).sort();
    expect(files).toEqual(series.instances.map((i) => `${i.sopInstanceUid}.dcm`).sort());
    const first = got.find((i) => i.sopInstanceUid === series.instances[0]!.sopInstanceUid)!;
    expect(first).toMatchObject({
      studyInstanceUid: series.studyInstanceUid,
      seriesInstanceUid: series.seriesInstanceUid,
      sopClassUid: '1.2.840.10008.5.1.4.1.1.2',
      transferSyntaxUid: '1.2.840.10008.1.2.1',
      modality: 'CT',
      bodyPartExamined: 'CHEST',
      imageType: ['ORIGINAL', 'PRIMARY', 'AXIAL'],
      callingAeTitle: 'PACS1',
      callingHost: '127.0.0.1',
      isNew: true,
      path: join(seriesDir, `${first.sopInstanceUid}.dcm`),
    });
    // The spooled dataset equals the one sent; the file meta names the source AE.
    for (const inst of series.instances.slice(0, 3)) {
      const spooled = join(seriesDir, `${inst.sopInstanceUid}.dcm`);
      expect(await dumpDataset(spooled)).toBe(await dumpDataset(inst.path));
      const meta = await run('dcmdump', ['-M', '+P', '0002,0016', '+P', '0002,0010', spooled]);
      expect(meta.stdout).toContain('[PACS1]');
    }
    // Byte for byte: the dataset part of the spooled file is the dataset part of the sent file.
    const sent = await readFile(series.instances[0]!.path);
    const spooled = await readFile(join(seriesDir, `${series.instances[0]!.sopInstanceUid}.dcm`));
    const ds = (b: Buffer): Buffer => b.subarray(132 + 12 + b.readUInt32LE(140));
    expect(ds(spooled).equals(ds(sent))).toBe(true);
    expect(first.bytes).toBe(ds(sent).length);
    await tl.idle();
    const tmp = await readdir(join(tl.spoolDir, '.tmp'));
    expect(tmp).toEqual([]);
    const recs = await tl.waitForRecords(2);
    expect(recs.at(-1)).toMatchObject({ callingAeTitle: 'PACS1', calledAeTitle: 'MLSAM', instances: 12, outcome: 'accepted-released' });
  });

  it('reads header fields from implicit VR little endian datasets too', async () => {
    const dir = join(work, 'implicit');
    const s = await writeSyntheticSeries({
      dir,
      count: 2,
      rows: 64,
      columns: 64,
      bodyPartExamined: 'LUNG',
      imageType: ['DERIVED', 'SECONDARY', 'LOCALIZER'],
    });
    const before = tl.instances.length;
    const r = await run('storescu', ['+sd', '-xi', '-aec', 'MLSAM', '127.0.0.1', String(tl.port), dir]);
    expect(r.code, r.stderr).toBe(0);
    const got = tl.instances.slice(before);
    expect(got).toHaveLength(2);
    expect(got[0]).toMatchObject({
      transferSyntaxUid: '1.2.840.10008.1.2',
      seriesInstanceUid: s.seriesInstanceUid,
      bodyPartExamined: 'LUNG',
      imageType: ['DERIVED', 'SECONDARY', 'LOCALIZER'],
    });
    const sent = s.instances.find((i) => i.sopInstanceUid === got[0]!.sopInstanceUid)!.path;
    expect(await dumpDataset(got[0]!.path, { ignoreEncoding: true })).toBe(await dumpDataset(sent, { ignoreEncoding: true }));
  });

  it('keeps JPEG Lossless as sent (storescu -xs, covid-ct-md P001)', async () => {
    const before = tl.instances.length;
    const r = await run('storescu', ['+sd', '-xs', '-aec', 'MLSAM', '127.0.0.1', String(tl.port), P001]);
    expect(r.code, r.stderr).toBe(0);
    const sentFiles = (await readdir(P001)).filter((f) => f.endsWith('.dcm'));
    const got = tl.instances.slice(before);
    expect(got).toHaveLength(sentFiles.length);
    expect(new Set(got.map((i) => i.transferSyntaxUid))).toEqual(new Set(['1.2.840.10008.1.2.4.70']));
    for (const f of sentFiles.slice(0, 3)) {
      const sent = join(P001, f);
      const sop = (await run('dcmdump', ['-M', '+P', '0008,0018', sent])).stdout.match(/\[([0-9.]+)\]/)![1]!;
      const inst = got.find((i) => i.sopInstanceUid === sop)!;
      expect(inst.modality).toBe('CT');
      // storescu re-encodes undefined-length sequences with explicit lengths on the wire: compare values.
      expect(await dumpDataset(inst.path, { ignoreEncoding: true })).toBe(await dumpDataset(sent, { ignoreEncoding: true }));
      const meta = await run('dcmdump', ['+P', '0002,0010', inst.path]);
      expect(meta.stdout).toContain('JPEGLossless:Non-hierarchical-1stOrderPrediction');
    }
  });

  it('stores a duplicate SOP Instance UID once and still answers Success', async () => {
    const file = series.instances[0]!.path;
    const spooled = join(tl.spoolDir, series.studyInstanceUid, series.seriesInstanceUid, `${series.instances[0]!.sopInstanceUid}.dcm`);
    const st1 = await stat(spooled);
    const before = tl.instances.length;
    const r = await run('storescu', ['-aec', 'MLSAM', '127.0.0.1', String(tl.port), file]);
    expect(r.code, r.stderr).toBe(0);
    expect(tl.instances.slice(before)).toMatchObject([{ sopInstanceUid: series.instances[0]!.sopInstanceUid, isNew: false }]);
    const st2 = await stat(spooled);
    expect(st2.ino).toBe(st1.ino);
    expect(st2.mtimeMs).toBe(st1.mtimeMs);
    await tl.idle();
    expect(await readdir(join(tl.spoolDir, '.tmp'))).toEqual([]);
  });

  it('rejects unsupported SOP classes and transfer syntaxes per presentation context', async () => {
    const before = (await spoolFiles(tl.spoolDir)).length;
    const unknown = await run('storescu', ['-aec', 'MLSAM', '127.0.0.1', String(tl.port), UNKNOWN_SOP]);
    expect(unknown.code).not.toBe(0);
    const mrDir = join(work, 'mr');
    await writeSyntheticSeries({ dir: mrDir, count: 1, rows: 32, columns: 32, modality: 'MR', sopClassUid: '1.2.840.10008.5.1.4.1.1.4' });
    // dicom.acceptUnscoredSopClasses (default true): a standard storage class the node does not score is stored.
    const mr = await run('storescu', ['+sd', '-aec', 'MLSAM', '127.0.0.1', String(tl.port), mrDir]);
    expect(mr.code, mr.stderr).toBe(0);
    expect(await spoolFiles(tl.spoolDir)).toHaveLength(before + 1);
    await tl.idle();
    await new Promise((r) => setTimeout(r, 300));
    expect(tl.records.find((r) => r.unscored === 1)).toMatchObject({ instances: 1, unscored: 1 });
    // With acceptUnscoredSopClasses false it is refused per presentation context.
    const strict = await startTestListener({ dicom: { aeTitle: 'MLSAM', acceptUnscoredSopClasses: false } });
    try {
      const refused = await run('storescu', ['+sd', '-aec', 'MLSAM', '127.0.0.1', String(strict.port), mrDir]);
      expect(refused.code).not.toBe(0);
      expect(refused.stderr + refused.stdout).toMatch(/presentation context|No presentation context|SOP Class/i);
      expect(await spoolFiles(strict.spoolDir)).toHaveLength(0);
    } finally {
      await strict.stop();
    }
    // CT proposed with explicit VR big endian only (a storescu profile) is not accepted.
    const big = join(work, 'big.dcm');
    const conv = await run('dcmconv', ['+tb', series.instances[1]!.path, big]);
    expect(conv.code, conv.stderr).toBe(0);
    const cfg = join(work, 'big-endian.cfg');
    await writeFile(
      cfg,
      [
        '[[TransferSyntaxes]]',
        '[BigOnly]',
        'TransferSyntax1 = BigEndianExplicit',
        '[[PresentationContexts]]',
        '[CtBig]',
        'PresentationContext1 = CTImageStorage\\BigOnly',
        '[[Profiles]]',
        '[BigProfile]',
        'PresentationContexts = CtBig',
        '',
      ].join('\n'),
    );
    const be = await run('storescu', ['-v', '-xf', cfg, 'BigProfile', '-aec', 'MLSAM', '127.0.0.1', String(tl.port), big]);
    expect(be.code).not.toBe(0);
    expect(be.stderr + be.stdout).toMatch(/Transfer Syntaxes Not Supported|no acceptable presentation context|No presentation context/i);
    // The association itself stays usable for what is supported: echo works.
    expect((await run('echoscu', ['-aec', 'MLSAM', '127.0.0.1', String(tl.port)])).code).toBe(0);
    expect((await spoolFiles(tl.spoolDir)).length).toBe(before + 1); // the MR instance only
  });

  it('aborts an association that sends a malformed PDU and keeps serving others', async () => {
    const sock = createConnection({ host: '127.0.0.1', port: tl.port });
    const closed = new Promise<Buffer>((resolve) => {
      const got: Buffer[] = [];
      sock.on('data', (d) => {
        got.push(d);
        closeOnAbort(sock, Buffer.concat(got));
      });
      sock.on('close', () => resolve(Buffer.concat(got)));
      sock.on('error', () => undefined);
    });
    await new Promise<void>((r) => sock.once('connect', () => r()));
    const storing = run('storescu', ['+sd', '-aec', 'MLSAM', '127.0.0.1', String(tl.port), series.dir]);
    sock.write(Buffer.from(`GET / HTTP/1.1\r\nHost: x\r\n\r\n${'x'.repeat(5000)}`));
    const reply = await closed;
    // An A-ABORT (type 7) came back before the close.
    expect(reply[0]).toBe(0x07);
    const r = await storing;
    expect(r.code, r.stderr).toBe(0);
    const until = Date.now() + 10_000;
    while (!tl.records.some((x) => x.outcome === 'aborted' && x.callingAeTitle === '') && Date.now() < until)
      await new Promise((res) => setTimeout(res, 20));
    const aborted = tl.records.find((x) => x.outcome === 'aborted' && x.callingAeTitle === '');
    expect(aborted?.reason).toMatch(/malformed PDU: unknown PDU type 0x47/);
  });

  it('aborts an oversized P-DATA PDU', async () => {
    const sock = createConnection({ host: '127.0.0.1', port: tl.port });
    const chunks: Buffer[] = [];
    const closed = new Promise<void>((resolve) => {
      sock.on('data', (d) => {
        chunks.push(d);
        closeOnAbort(sock, Buffer.concat(chunks));
      });
      sock.on('close', () => resolve());
      sock.on('error', () => undefined);
    });
    await new Promise<void>((r) => sock.once('connect', () => r()));
    sock.write(associateRq('MLSAM', 'RAWSCU'));
    await new Promise((r) => setTimeout(r, 200));
    expect(chunks[0]?.[0]).toBe(0x02); // A-ASSOCIATE-AC
    const huge = Buffer.alloc(6);
    huge[0] = 0x04;
    huge.writeUInt32BE(0x7fffffff, 2);
    sock.write(huge);
    await closed;
    const last = Buffer.concat(chunks);
    expect(last.includes(Buffer.from([0x07, 0x00, 0x00, 0x00, 0x00, 0x04]))).toBe(true);
  });
});

describe('association policy', () => {
  it('rejects an unknown calling AE and a wrong called AE, and audits both', async () => {
    const tl = await startTestListener({ dicom: { aeTitle: 'MLSAM', allowedCallers: [{ aeTitle: 'GOODSCU', host: '127.0.0.1' }] } });
    try {
      const bad = await run('echoscu', ['-aet', 'BADSCU', '-aec', 'MLSAM', '127.0.0.1', String(tl.port)]);
      expect(bad.code).not.toBe(0);
      expect(bad.stderr + bad.stdout).toMatch(/Calling AE Title Not Recognized/i);
      const wrongCalled = await run('echoscu', ['-aet', 'GOODSCU', '-aec', 'OTHER', '127.0.0.1', String(tl.port)]);
      expect(wrongCalled.code).not.toBe(0);
      expect(wrongCalled.stderr + wrongCalled.stdout).toMatch(/Called AE Title Not Recognized/i);
      const good = await run('echoscu', ['-aet', 'GOODSCU', '-aec', 'MLSAM', '127.0.0.1', String(tl.port)]);
      expect(good.code, good.stderr).toBe(0);
      const recs = await tl.waitForRecords(3);
      expect(recs.map((r) => r.outcome).sort()).toEqual([
        'accepted-released',
        'rejected:called-ae-title-not-recognized',
        'rejected:calling-ae-title-not-recognized',
      ]);
      expect(recs.find((r) => r.callingAeTitle === 'BADSCU')).toMatchObject({ callingHost: '127.0.0.1', instances: 0 });
    } finally {
      await tl.stop();
    }
  });

  it('caps concurrent associations and aborts idle ones', async () => {
    const tl = await startTestListener({ dicom: { maxAssociations: 1, idleTimeoutSeconds: 1.5 } });
    try {
      const sock = createConnection({ host: '127.0.0.1', port: tl.port });
      const chunks: Buffer[] = [];
      const closedAt = new Promise<number>((resolve) => {
        sock.on('data', (d) => {
          chunks.push(d);
          closeOnAbort(sock, Buffer.concat(chunks));
        });
        sock.on('close', () => resolve(Date.now()));
        sock.on('error', () => undefined);
      });
      await new Promise<void>((r) => sock.once('connect', () => r()));
      sock.write(associateRq('MLSAM', 'HOLDER'));
      const t0 = Date.now();
      await new Promise((r) => setTimeout(r, 200));
      expect(chunks[0]?.[0]).toBe(0x02);
      expect(tl.listener.activeAssociations).toBe(1);
      const second = await run('echoscu', ['-aec', 'MLSAM', '127.0.0.1', String(tl.port)]);
      expect(second.code).not.toBe(0);
      expect(second.stderr + second.stdout).toMatch(/Local Limit Exceeded|Transient/i);
      // The idle association is aborted after about idleTimeoutSeconds.
      const closed = await closedAt;
      expect(closed - t0).toBeLessThan(5000);
      expect(Buffer.concat(chunks).includes(Buffer.from([0x07, 0x00]))).toBe(true);
      await new Promise((r) => setTimeout(r, 100));
      expect(tl.listener.activeAssociations).toBe(0);
      const third = await run('echoscu', ['-aec', 'MLSAM', '127.0.0.1', String(tl.port)]);
      expect(third.code, third.stderr).toBe(0);
      const recs = await tl.waitForRecords(3);
      expect(recs.map((r) => r.outcome)).toContain('rejected:local-limit-exceeded');
      expect(recs.find((r) => r.callingAeTitle === 'HOLDER')?.outcome).toBe('aborted');
    } finally {
      await tl.stop();
    }
  });

  it('answers 0xA700 when the spool disk is above the watermark and stores nothing', async () => {
    const tl = await startTestListener({ spool: { maxDiskUsagePercent: 1 } });
    const work = await mkdtemp(join(tmpdir(), 'mlsam-wm-'));
    try {
      const s = await writeSyntheticSeries({ dir: work, count: 1, rows: 32, columns: 32 });
      const r = await run('storescu', ['-v', '-aec', 'MLSAM', '127.0.0.1', String(tl.port), s.instances[0]!.path]);
      expect(r.code).not.toBe(0);
      expect(r.stderr + r.stdout).toMatch(/a700|Out ?of ?Resources/i);
      expect(await spoolFiles(tl.spoolDir)).toEqual([]);
      await tl.idle();
      expect(await readdir(join(tl.spoolDir, '.tmp'))).toEqual([]);
      expect(tl.instances).toEqual([]);
    } finally {
      await tl.stop();
      await rm(work, { recursive: true, force: true });
    }
  });
});

describe('transfers that end badly', () => {
  it('a sender killed mid-series leaves no temp files; stored instances stay; the listener keeps serving', async () => {
    const tl = await startTestListener();
    const work = await mkdtemp(join(tmpdir(), 'mlsam-kill-'));
    try {
      const s = await writeSyntheticSeries({ dir: work, count: 60 });
      const { spawn } = await import('node:child_process');
      const child = spawn('storescu', ['+sd', '-aec', 'MLSAM', '127.0.0.1', String(tl.port), work], {
        env: { ...process.env, TCP_NODELAY: '1' },
        stdio: 'ignore',
      });
      const until = Date.now() + 30_000;
      while (tl.instances.length < 5 && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
      child.kill('SIGKILL');
      const recs = await tl.waitForRecords(1);
      expect(recs[0]!.outcome).toBe('aborted');
      const stored = tl.instances.length;
      expect(stored).toBeGreaterThanOrEqual(5);
      expect(stored).toBeLessThan(60);
      await tl.idle();
      expect(await readdir(join(tl.spoolDir, '.tmp'))).toEqual([]);
      const files = await readdir(join(tl.spoolDir, s.studyInstanceUid, s.seriesInstanceUid));
      expect(files.length).toBe(recs[0]!.instances);
      // Re-sending the whole series completes it; what was stored before is kept as it was.
      const r = await run('storescu', ['+sd', '-aec', 'MLSAM', '127.0.0.1', String(tl.port), work]);
      expect(r.code, r.stderr).toBe(0);
      expect(await readdir(join(tl.spoolDir, s.studyInstanceUid, s.seriesInstanceUid))).toHaveLength(60);
      expect(tl.instances.filter((i) => !i.isNew)).toHaveLength(files.length);
    } finally {
      await tl.stop();
      await rm(work, { recursive: true, force: true });
    }
  });

  it('serves concurrent associations, and stop() aborts one in progress and settles', async () => {
    const tl = await startTestListener();
    const work = await mkdtemp(join(tmpdir(), 'mlsam-conc-'));
    try {
      const a = await writeSyntheticSeries({ dir: join(work, 'a'), count: 20 });
      const b = await writeSyntheticSeries({ dir: join(work, 'b'), count: 20 });
      const [ra, rb] = await Promise.all([
        run('storescu', ['+sd', '-aec', 'MLSAM', '-aet', 'A', '127.0.0.1', String(tl.port), a.dir]),
        run('storescu', ['+sd', '-aec', 'MLSAM', '-aet', 'B', '127.0.0.1', String(tl.port), b.dir]),
      ]);
      expect(ra.code, ra.stderr).toBe(0);
      expect(rb.code, rb.stderr).toBe(0);
      expect(tl.instances).toHaveLength(40);
      const big = await writeSyntheticSeries({ dir: join(work, 'c'), count: 200 });
      const sending = run('storescu', ['+sd', '-aec', 'MLSAM', '127.0.0.1', String(tl.port), big.dir]);
      const until = Date.now() + 30_000;
      while (tl.instances.length < 45 && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
      await tl.listener.stop({ graceMs: 0 });
      const r = await sending;
      expect(r.code).not.toBe(0);
      expect(tl.listener.activeAssociations).toBe(0);
      const left = await readdir(join(tl.spoolDir, '.tmp'));
      if (left.length) console.log('LEFT', await Promise.all(left.map(async (f) => (await stat(join(tl.spoolDir, '.tmp', f))).size)));
      expect(left).toEqual([]);
      expect(tl.records.at(-1)?.outcome).toBe('aborted');
    } finally {
      await tl.stop();
      await rm(work, { recursive: true, force: true });
    }
  });
});
