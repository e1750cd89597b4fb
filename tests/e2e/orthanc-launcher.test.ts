/**
 * The Orthanc launcher (src/demo/orthanc.ts) and its Lua forwarder, against DCMTK peers:
 * a CT series uploaded by a known modality is forwarded to the node AE (here a storescp named
 * MLSAM) once stable; a non-CT series is not; a CT series sent by the node itself is not bounced
 * back; an AE Orthanc does not know is refused. No mlsam daemon involved. The script compose.yaml
 * mounts into Orthanc (docker/orthanc/) must be this generated one, so the documented deployment
 * and the tested one cannot drift apart.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/demo/child-process.js';
import { forwarderLua, startOrthanc, type Orthanc } from '../../src/demo/orthanc.js';
import { run } from '../helpers/dcmtk.js';
import { REPO_ROOT } from '../helpers/dicom-listener.js';
import { writeSyntheticSeries, type SyntheticSeries } from '../helpers/synthetic-series.js';
import { sleep, waitFor } from '../queue/helpers.js';

let work: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'mlsam-orthanc-launcher-'));
});

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

/** An Orthanc that knows UPLOADER and the node MLSAM (a storescp writing into `received`). */
class Pacs {
  orthanc!: Orthanc;
  storescp!: ChildProcess;
  received!: string;

  constructor(
    private readonly tag: string,
    private readonly lua: string,
  ) {}

  async start(): Promise<void> {
    this.received = join(work, `${this.tag}-received`);
    await mkdir(this.received, { recursive: true });
    const nodePort = await freePort();
    this.storescp = spawn('storescp', ['-aet', 'MLSAM', '-od', this.received, String(nodePort)], {
      env: { ...process.env, TCP_NODELAY: '1' },
      stdio: 'ignore',
    });
    this.orthanc = await startOrthanc({
      modalities: {
        mlsam: { aeTitle: 'MLSAM', port: nodePort },
        uploader: { aeTitle: 'UPLOADER', port: 104 },
      },
      lua: [this.lua],
      stableAgeSeconds: 1,
    });
  }

  async stop(): Promise<void> {
    await this.orthanc?.stop();
    if (this.storescp?.exitCode === null) this.storescp.kill('SIGTERM');
  }

  async receivedFiles(): Promise<string[]> {
    return (await readdir(this.received)).filter((n) => !n.startsWith('.'));
  }

  storescu(aet: string, files: string[]): Promise<{ code: number | null; out: string }> {
    return run('storescu', ['-aet', aet, '-aec', 'ORTHANC', '127.0.0.1', String(this.orthanc.dicomPort), ...files]).then((r) => ({
      code: r.code,
      out: r.stdout + r.stderr,
    }));
  }

  series(count: number, over: Partial<Parameters<typeof writeSyntheticSeries>[0]> = {}): Promise<SyntheticSeries> {
    return writeSyntheticSeries({
      dir: join(work, `${this.tag}-${Math.random().toString(36).slice(2)}`),
      count,
      rows: 64,
      columns: 64,
      ...over,
    });
  }

  /**
   * Uploads a 4-slice CT and a 3-slice OT series as UPLOADER and a 2-slice CT series as MLSAM;
   * waits until the CT has reached the node, then long enough for the other two to become stable.
   */
  async forwardScenario(): Promise<{ names: string[]; jobs: number }> {
    const ct = await this.series(4);
    const ot = await this.series(3, { modality: 'OT', sopClassUid: '1.2.840.10008.5.1.4.1.1.7' });
    const own = await this.series(2, { seriesDescription: 'FROM THE NODE' });
    expect(
      (
        await this.storescu(
          'UPLOADER',
          [...ct.instances, ...ot.instances].map((i) => i.path),
        )
      ).code,
    ).toBe(0);
    expect(
      (
        await this.storescu(
          'MLSAM',
          own.instances.map((i) => i.path),
        )
      ).code,
    ).toBe(0);
    expect((await this.orthanc.get<string[]>('/instances')).length).toBe(9);
    const ownId = (await this.orthanc.instancesOfSeries(own.seriesInstanceUid))[0]!.ID;
    expect(await this.orthanc.instanceMetadata(ownId, 'RemoteAET')).toBe('MLSAM');
    await waitFor(async () => (await this.receivedFiles()).length >= 4, 30_000, 'forwarded CT');
    await waitFor(
      async () => {
        const j = await this.orthanc.jobs();
        return j.length > 0 && j.every((x) => x.State === 'Success');
      },
      20_000,
      'the store job',
    );
    // Give the other two series time to become stable too: they must stay unforwarded.
    await sleep(3000);
    return { names: await this.receivedFiles(), jobs: (await this.orthanc.jobs()).length };
  }
}

describe('Orthanc launcher with forwarderLua()', () => {
  const pacs = new Pacs('gen', forwarderLua({ modality: 'mlsam', nodeAeTitle: 'MLSAM' }));
  beforeAll(() => pacs.start());
  afterAll(() => pacs.stop());

  it('answers on loopback with its own ports and an empty store', async () => {
    const sys = await pacs.orthanc.system();
    expect(sys.DicomAet).toBe('ORTHANC');
    expect(sys.DicomPort).toBe(pacs.orthanc.dicomPort);
    expect(await pacs.orthanc.get<string[]>('/instances')).toEqual([]);
    expect(pacs.orthanc.workDir.startsWith(tmpdir())).toBe(true);
  });

  it('refuses an AE title it does not know', async () => {
    const s = await pacs.series(1);
    const r = await pacs.storescu(
      'STRANGER',
      s.instances.map((i) => i.path),
    );
    expect(r.code).not.toBe(0);
    expect(await pacs.orthanc.get<string[]>('/instances')).toEqual([]);
  });

  it('forwards a stable CT series to the node, and only that', async () => {
    const { names, jobs } = await pacs.forwardScenario();
    expect(jobs).toBe(1);
    expect(names).toHaveLength(4);
    expect(names.every((n) => n.startsWith('CT.'))).toBe(true);
    expect(pacs.orthanc.logTail(20000)).toContain('not forwarded (Modality OT)');
    expect(pacs.orthanc.logTail(20000)).toContain('not forwarded (sent by MLSAM)');
  });
});

describe('the forwarder compose.yaml mounts into Orthanc', () => {
  it('is the script forwarderLua() generates (the one run above), and compose.yaml and its Orthanc config load it', async () => {
    const lua = await readFile(join(REPO_ROOT, 'docker', 'orthanc', 'forward-ct-to-mlsam.lua'), 'utf8');
    expect(lua).toBe(forwarderLua({ modality: 'mlsam', nodeAeTitle: 'MLSAM' }));
    const compose = await readFile(join(REPO_ROOT, 'compose.yaml'), 'utf8');
    expect(compose).toContain('- ./docker/orthanc/forward-ct-to-mlsam.lua:/etc/orthanc/forward-ct-to-mlsam.lua:ro');
    expect(compose).toContain('- ./docker/orthanc/orthanc.json:/etc/orthanc/orthanc.json:ro');
    const orthanc = JSON.parse(await readFile(join(REPO_ROOT, 'docker', 'orthanc', 'orthanc.json'), 'utf8')) as {
      LuaScripts: string[];
      DicomModalities: Record<string, { AET: string; Port: number }>;
    };
    expect(orthanc.LuaScripts).toEqual(['/etc/orthanc/forward-ct-to-mlsam.lua']);
    expect(orthanc.DicomModalities.mlsam).toMatchObject({ AET: 'MLSAM', Port: 11112 });
  });
});
