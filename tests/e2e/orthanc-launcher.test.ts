/**
 * The Orthanc launcher (src/demo/orthanc.ts) and its Lua forwarder, against DCMTK peers:
 * a CT series uploaded by a known modality is forwarded to the node AE (here a storescp named
 * MLSAM) once stable; a non-CT series is not; a CT series sent by the node itself is not bounced
 * back; an AE Orthanc does not know is refused. No mlsam daemon involved.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { forwarderLua, freePort, startOrthanc, type Orthanc } from '../../src/demo/orthanc.js';
import { run } from '../helpers/dcmtk.js';
import { writeSyntheticSeries, type SyntheticSeries } from '../helpers/synthetic-series.js';
import { sleep, waitFor } from '../queue/helpers.js';

let orthanc: Orthanc;
let storescp: ChildProcess;
let work: string;
let received: string;

async function receivedFiles(): Promise<string[]> {
  return (await readdir(received)).filter((n) => !n.startsWith('.'));
}

function storescu(aet: string, files: string[]): Promise<{ code: number | null; out: string }> {
  return run('storescu', ['-aet', aet, '-aec', 'ORTHANC', '127.0.0.1', String(orthanc.dicomPort), ...files]).then((r) => ({
    code: r.code,
    out: r.stdout + r.stderr,
  }));
}

function series(tag: string, count: number, over: Partial<Parameters<typeof writeSyntheticSeries>[0]> = {}): Promise<SyntheticSeries> {
  return writeSyntheticSeries({ dir: join(work, tag), count, rows: 64, columns: 64, ...over });
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'mlsam-orthanc-launcher-'));
  received = join(work, 'received');
  await run('mkdir', ['-p', received]);
  const nodePort = await freePort();
  storescp = spawn('storescp', ['-aet', 'MLSAM', '-od', received, String(nodePort)], {
    env: { ...process.env, TCP_NODELAY: '1' },
    stdio: 'ignore',
  });
  orthanc = await startOrthanc({
    modalities: {
      mlsam: { aeTitle: 'MLSAM', port: nodePort },
      uploader: { aeTitle: 'UPLOADER', port: 104 },
    },
    lua: [forwarderLua({ modality: 'mlsam', nodeAeTitle: 'MLSAM' })],
    stableAgeSeconds: 1,
  });
});

afterAll(async () => {
  await orthanc?.stop();
  if (storescp?.exitCode === null) storescp.kill('SIGTERM');
  if (work) await rm(work, { recursive: true, force: true });
});

describe('Orthanc launcher', () => {
  it('answers on loopback with its own ports and an empty store', async () => {
    const sys = await orthanc.system();
    expect(sys.DicomAet).toBe('ORTHANC');
    expect(sys.DicomPort).toBe(orthanc.dicomPort);
    expect(await orthanc.get<string[]>('/instances')).toEqual([]);
    expect(orthanc.workDir.startsWith(tmpdir())).toBe(true);
  });

  it('refuses an AE title it does not know', async () => {
    const s = await series('stranger', 1);
    const r = await storescu('STRANGER', s.instances.map((i) => i.path));
    expect(r.code).not.toBe(0);
    expect(await orthanc.get<string[]>('/instances')).toEqual([]);
  });

  it('forwards a stable CT series to the node, and only that', async () => {
    const ct = await series('ct', 4);
    const ot = await series('ot', 3, { modality: 'OT', sopClassUid: '1.2.840.10008.5.1.4.1.1.7' });
    const own = await series('own', 2, { seriesDescription: 'FROM THE NODE' });
    expect((await storescu('UPLOADER', [...ct.instances, ...ot.instances].map((i) => i.path))).code).toBe(0);
    expect((await storescu('MLSAM', own.instances.map((i) => i.path))).code).toBe(0);
    expect((await orthanc.get<string[]>('/instances')).length).toBe(9);
    expect(await orthanc.instanceMetadata((await orthanc.instancesOfSeries(own.seriesInstanceUid))[0]!.ID, 'RemoteAET')).toBe('MLSAM');

    // The CT series arrives at the node as one Orthanc job that succeeded.
    const files = await waitFor(async () => ((await receivedFiles()).length >= 4 ? receivedFiles() : undefined), 30_000, 'forwarded CT');
    const jobs = await waitFor(async () => {
      const j = await orthanc.jobs();
      return j.length && j.every((x) => x.State === 'Success') ? j : undefined;
    }, 20_000, 'the store job');
    expect(jobs).toHaveLength(1);
    // Give the other two series time to become stable too: they must stay unforwarded.
    await sleep(3000);
    expect((await orthanc.jobs()).length).toBe(1);
    const names = await receivedFiles();
    expect(names.sort()).toEqual(files.sort());
    expect(names).toHaveLength(4);
    expect(names.every((n) => n.startsWith('CT.'))).toBe(true);
    expect(orthanc.logTail(20000)).toContain('not forwarded (Modality OT)');
    expect(orthanc.logTail(20000)).toContain('not forwarded (sent by MLSAM)');
  });
});
