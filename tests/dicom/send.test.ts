import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collectFiles } from '../../src/dicom/scu/client.js';
import { ExplicitToImplicit } from '../../src/dicom/scu/explicit-to-implicit.js';
import { readPart10Info, type Part10Info } from '../../src/dicom/scu/part10-info.js';
import { MAX_PRESENTATION_CONTEXTS, planAssociations, proposedPairs } from '../../src/dicom/scu/store-scu.js';
import { dumpDataset, run } from '../helpers/dcmtk.js';
import { freePort, mlsam } from '../helpers/process.js';
import { REPO_ROOT, SHARED_DATA, startTestListener, type TestListener } from '../helpers/dicom-listener.js';

const P001 = join(SHARED_DATA, 'covid-ct-md', 'P001');
const SAMPLES = join(SHARED_DATA, 'dicom-samples');
const JPEG_LOSSLESS_SV1 = '1.2.840.10008.1.2.4.70';

async function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ host: '127.0.0.1', port }, () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`nothing listens on ${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface Storescp {
  port: number;
  dir: string;
  proc: ChildProcess;
  clear(): Promise<void>;
  stop(): Promise<void>;
}

/** DCMTK storescp on a free port, writing what it receives bit for bit (+B) into a temp folder. */
async function startStorescp(extra: string[]): Promise<Storescp> {
  const dir = await mkdtemp(join(tmpdir(), 'mlsam-storescp-'));
  const port = await freePort();
  const proc = spawn('storescp', ['-od', dir, '+B', ...extra, String(port)], {
    env: { ...process.env, TCP_NODELAY: '1' },
    stdio: 'ignore',
  });
  await waitForPort(port);
  return {
    port,
    dir,
    proc,
    async clear() {
      for (const f of await readdir(dir)) await rm(join(dir, f), { force: true });
    },
    async stop() {
      if (proc.exitCode === null && proc.pid) {
        const exited = new Promise((r) => proc.once('exit', r));
        process.kill(proc.pid, 'SIGTERM');
        await exited;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** SOP Instance UID → dataset bytes (everything after the file meta) of the files under `dir`. */
async function datasets(paths: string[]): Promise<Map<string, { bytes: Buffer; ts: string }>> {
  const out = new Map<string, { bytes: Buffer; ts: string }>();
  for (const p of paths) {
    const info = await readPart10Info(p);
    out.set(info.sopInstanceUid, { bytes: (await readFile(p)).subarray(info.datasetOffset), ts: info.transferSyntaxUid });
  }
  return out;
}

describe('mlsam send: datasets byte for byte, streamed from disk', () => {
  let scp: Storescp;
  let sources: Map<string, { bytes: Buffer; ts: string }>;
  beforeAll(async () => {
    scp = await startStorescp(['+xa']);
    sources = await datasets(await collectFiles([P001]));
  });
  afterAll(async () => {
    await scp?.stop();
  });

  it('stores all 148 JPEG Lossless files of P001 in DCMTK storescp, each dataset identical to the source', async () => {
    expect(sources.size).toBe(148);
    const r = await mlsam(['send', '--port', String(scp.port), '--aet', 'STORESCP', P001]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/sent 148, failed 0 of 148/);
    const received = await datasets((await readdir(scp.dir)).map((f) => join(scp.dir, f)));
    expect(received.size).toBe(148);
    for (const [uid, src] of sources) {
      const got = received.get(uid);
      expect(got, uid).toBeDefined();
      expect(got!.ts).toBe(JPEG_LOSSLESS_SV1);
      expect(got!.bytes.equals(src.bytes), `dataset of ${uid} differs`).toBe(true);
    }
  });

  it('measures files/s against storescu -xs to the same storescp (reported, not asserted)', async () => {
    await scp.clear();
    const t0 = Date.now();
    const ref = await run('storescu', ['-xs', '-aec', 'STORESCP', '+sd', '+r', '127.0.0.1', String(scp.port), P001]);
    const refMs = Date.now() - t0;
    expect(ref.code, ref.stderr).toBe(0);
    const refFiles = await readdir(scp.dir);
    expect(refFiles.length).toBe(148);
    const refIdentical = [...(await datasets(refFiles.map((f) => join(scp.dir, f))))].filter(([uid, d]) =>
      sources.get(uid)?.bytes.equals(d.bytes),
    ).length;
    await scp.clear();
    const ours = await mlsam(['send', '--port', String(scp.port), '--aet', 'STORESCP', P001]);
    expect(ours.code, ours.stderr).toBe(0);
    const inProcessS = Number(/in ([\d.]+) s/.exec(ours.stdout)?.[1]);
    const line =
      `send benchmark P001 (148 files, JPEG Lossless) to storescp +B: ` +
      `storescu -xs ${refMs} ms process (${((148 * 1000) / refMs).toFixed(0)} files/s, ${refIdentical}/148 datasets byte-identical); ` +
      `mlsam send ${ours.ms} ms process (${((148 * 1000) / ours.ms).toFixed(0)} files/s), ` +
      `${(inProcessS * 1000).toFixed(0)} ms scan+transfer (${(148 / inProcessS).toFixed(0)} files/s), 148/148 byte-identical`;
    process.stderr.write(`${line}\n`);
  });

  it('re-encodes Explicit VR LE to Implicit VR LE (values unchanged) only when the peer refuses it, never compressed data', async () => {
    const implicitOnly = await startStorescp(['+xi']);
    try {
      const explicitFiles = [
        join(SAMPLES, 'pydicom-data', '693_UNCI.dcm'),
        join(SAMPLES, 'pydicom-data', 'eCT_Supplemental.dcm'), // nested sequences
        join(SAMPLES, 'orthanc-tests', 'odd', 'SignedCT.dcm'),
      ];
      const j2k = join(SAMPLES, 'pydicom-data', '693_J2KR.dcm');
      const r = await mlsam(['send', '--port', String(implicitOnly.port), '--aet', 'STORESCP', ...explicitFiles, j2k]);
      expect(r.code).not.toBe(0);
      expect(r.stdout).toMatch(/sent 3, failed 1 of 4/);
      expect(r.stdout).toMatch(/3 re-encoded to Implicit VR Little Endian/);
      expect(r.stderr).toMatch(
        /693_J2KR\.dcm: peer accepted no presentation context for SOP class 1\.2\.840\.10008\.5\.1\.4\.1\.1\.2 in transfer syntax 1\.2\.840\.10008\.1\.2\.4\.90/,
      );
      const stored = new Map<string, string>();
      for (const f of await readdir(implicitOnly.dir)) {
        const p = join(implicitOnly.dir, f);
        const info = await readPart10Info(p);
        expect(info.transferSyntaxUid).toBe('1.2.840.10008.1.2');
        stored.set(info.sopInstanceUid, p);
      }
      expect(stored.size).toBe(3);
      for (const src of explicitFiles) {
        const got = stored.get((await readPart10Info(src)).sopInstanceUid);
        expect(got, src).toBeDefined();
        // Same elements and values; only the encoding differs (implicit VR leaves US/SS and
        // OB/OW ambiguous to the reader, dcmdump shows "xs" / "ox" there).
        const vrs = (d: string): string => d.replace(/^(\s*\([0-9a-f]{4},[0-9a-f]{4}\)) (US|SS|xs|OB|OW|ox|lt) /gm, '$1 ?? ');
        const a = vrs(await dumpDataset(got!, { ignoreEncoding: true }));
        const b = vrs(await dumpDataset(src, { ignoreEncoding: true }));
        expect(a === b, `${src}: values differ after re-encoding`).toBe(true);
      }
    } finally {
      await implicitOnly.stop();
    }
  });
});

describe('mlsam send to our own listener', () => {
  let tl: TestListener;
  beforeAll(async () => {
    tl = await startTestListener();
  });
  afterAll(async () => {
    await tl?.stop();
  });

  it('stores P001 unchanged; a file of an unsupported SOP class and a non-DICOM file fail with reasons', async () => {
    const unknownClass = join(SAMPLES, 'orthanc-tests', 'odd', 'UnknownSopClassUid.dcm');
    const notDicom = join(REPO_ROOT, 'package.json');
    const r = await mlsam(['send', '--port', String(tl.port), '--calling-aet', 'SENDER', P001, unknownClass, notDicom]);
    expect(r.code).not.toBe(0);
    expect(r.stdout).toMatch(/sent 148, failed 2 of 150/);
    expect(r.stderr).toMatch(
      /UnknownSopClassUid\.dcm: peer accepted no presentation context for SOP class 1\.2\.276\.0\.19\.55\.1\.5\.1\.1\.1/,
    );
    expect(r.stderr).toMatch(/package\.json: not a readable DICOM file/);
    expect(tl.instances.length).toBe(148);
    const sources = await datasets(await collectFiles([P001]));
    for (const inst of tl.instances) {
      expect(inst.callingAeTitle).toBe('SENDER');
      expect(inst.transferSyntaxUid).toBe(JPEG_LOSSLESS_SV1);
      const info = await readPart10Info(inst.path);
      const spooled = (await readFile(inst.path)).subarray(info.datasetOffset);
      expect(spooled.equals(sources.get(info.sopInstanceUid)!.bytes), info.sopInstanceUid).toBe(true);
    }
    // One association for the whole run.
    const records = await tl.waitForRecords(1);
    expect(records.length).toBe(1);
  });
});

describe('send building blocks', () => {
  it('re-encodes explicit to implicit VR the same whatever the chunking', async () => {
    for (const f of ['pydicom-data/eCT_Supplemental.dcm', 'orthanc-tests/odd/2026-05-06-Deeply-Nested-Sequence.dcm']) {
      const path = join(SAMPLES, f);
      const info = await readPart10Info(path);
      if (info.transferSyntaxUid !== '1.2.840.10008.1.2.1') continue;
      const ds = (await readFile(path)).subarray(info.datasetOffset);
      const whole = new ExplicitToImplicit();
      const a = Buffer.concat([...whole.push(ds), ...whole.end()]);
      expect(whole.error, f).toBeUndefined();
      for (const size of [5, 4093]) {
        const c = new ExplicitToImplicit();
        const parts: Buffer[] = [];
        for (let i = 0; i < ds.length; i += size) parts.push(...c.push(ds.subarray(i, i + size)));
        parts.push(...c.end());
        expect(c.error, `${f} in ${size}-byte chunks`).toBeUndefined();
        expect(Buffer.concat(parts).equals(a), `${f} in ${size}-byte chunks`).toBe(true);
      }
    }
  });

  it('splits runs over associations so that each proposes at most 128 presentation contexts', () => {
    const files: Part10Info[] = Array.from({ length: 300 }, (_, i) => ({
      path: `f${i}`,
      sopClassUid: `1.2.3.${i % 150}`,
      sopInstanceUid: `1.2.4.${i}`,
      transferSyntaxUid: i % 2 ? '1.2.840.10008.1.2.1' : '1.2.840.10008.1.2.4.70',
      datasetOffset: 0,
      datasetLength: 0,
      hasMeta: true,
    }));
    const batches = planAssociations(files);
    expect(batches.flat().map((f) => f.path)).toEqual(files.map((f) => f.path));
    expect(batches.length).toBeGreaterThan(1);
    for (const b of batches) expect(proposedPairs(b).length).toBeLessThanOrEqual(MAX_PRESENTATION_CONTEXTS);
  });
});
