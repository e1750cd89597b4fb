/**
 * The DICOMweb STOW-RS receiver (http.stow) on the node's HTTP server, in a node running the
 * listener and admin roles: Orthanc's DICOMweb client pushes a study to it (bearer token); every
 * instance lands in the spool with its dataset byte-identical and is tracked like a C-STORE'd one.
 * Bad input is refused with 400/415/413/401 and a clear message, and nothing is stored; a part whose
 * dataset is broken fails alone (202, Failed SOP Sequence with 0xC000).
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stowAuthProblem } from '../../src/admin/stow/receiver.js';
import type { Config } from '../../src/config/schema.js';
import { startOrthanc, type Orthanc } from '../../src/demo/orthanc.js';
import { spoolPathFor } from '../../src/dicom/spool/spool-layout.js';
import { adminRole } from '../../src/node/admin-role.js';
import { listenerRole } from '../../src/node/listener-role.js';
import { startNode, type RunningNode } from '../../src/node/node.js';
import { Keys } from '../../src/stores/keys.js';
import { closeRedis, createRedis, whenReady } from '../../src/stores/redis.js';
import { newUid, writeSyntheticSeries } from '../helpers/synthetic-series.js';
import { cleanup, freePort, logger, testConfig, waitFor } from '../queue/helpers.js';

const TOKEN = 'stow-token-0123456789abcdef';
const DICOMWEB_PLUGIN = '/usr/share/orthanc/plugins/libOrthancDicomWeb.so';

let config: Config;
let node: RunningNode;
let orthanc: Orthanc;
let base: string;

beforeAll(async () => {
  const httpPort = await freePort();
  config = await testConfig('stow', {
    http: {
      host: '127.0.0.1',
      port: httpPort,
      username: 'admin',
      password: 'pw',
      stow: { enabled: true, tokens: [TOKEN], basicAuth: true, allowedHosts: ['127.0.0.1'], maxRequestMB: 2, maxInstanceMB: 0.5 },
    },
    series: { quietPeriodSeconds: 600 },
  } as never);
  node = await startNode({ config, logger }, [listenerRole, adminRole]);
  base = `http://127.0.0.1:${httpPort}`;
  orthanc = await startOrthanc({
    extraConfig: {
      Plugins: [DICOMWEB_PLUGIN],
      DicomWeb: {
        Enable: true,
        Root: '/dicom-web/',
        Servers: { mlsam: { Url: `${base}/dicom-web/`, HttpHeaders: { Authorization: `Bearer ${TOKEN}` } } },
      },
    },
  });
}, 90_000);

afterAll(async () => {
  await orthanc?.stop();
  await node?.stop();
  if (config) await cleanup(config);
});

/** Every file under the spool's study folders (not .tmp, not results). */
async function spooled(): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      if (e.name === '.tmp' || e.name === 'results') continue;
      if (e.isDirectory()) await walk(join(d, e.name));
      else out.push(join(d, e.name));
    }
  };
  await walk(config.spool.dir);
  return out;
}

/** The dataset of a Part-10 file (the bytes after the file meta group). */
function datasetOf(buf: Buffer): Buffer {
  let p = 132;
  while (buf.readUInt16LE(p) === 0x0002) {
    const vr = buf.toString('latin1', p + 4, p + 6);
    p = ['OB', 'OW', 'SQ', 'UN', 'UT'].includes(vr) ? p + 12 + buf.readUInt32LE(p + 8) : p + 8 + buf.readUInt16LE(p + 6);
  }
  return buf.subarray(p);
}

function multipart(parts: { type?: string; body: Buffer }[], boundary = 'b0undary', close = true): Buffer {
  const out: Buffer[] = [];
  for (const p of parts)
    out.push(Buffer.from(`--${boundary}\r\nContent-Type: ${p.type ?? 'application/dicom'}\r\n\r\n`), p.body, Buffer.from('\r\n'));
  if (close) out.push(Buffer.from(`--${boundary}--\r\n`));
  return Buffer.concat(out);
}

async function stow(
  body: Buffer,
  opts: { contentType?: string; auth?: string } = {},
): Promise<{ status: number; json: Record<string, { Value?: Record<string, { Value?: unknown[] }>[] }> & { error?: string } }> {
  const res = await fetch(`${base}/dicom-web/studies`, {
    method: 'POST',
    headers: {
      'content-type': opts.contentType ?? 'multipart/related; type="application/dicom"; boundary=b0undary',
      ...(opts.auth !== '' ? { authorization: opts.auth ?? `Bearer ${TOKEN}` } : {}),
      accept: 'application/dicom+json',
    },
    body,
  });
  return { status: res.status, json: (await res.json()) as never };
}

describe('STOW-RS receiver', () => {
  it('Orthanc pushes a study over DICOMweb: every instance is stored byte-identical and the series is tracked', async () => {
    const study = newUid();
    const series = await writeSyntheticSeries({
      dir: join(config.spool.dir, '..', `stow-src-${study}`),
      count: 5,
      rows: 64,
      columns: 64,
      studyInstanceUid: study,
      seriesInstanceUid: newUid(),
    });
    for (const i of series.instances) await orthanc.upload(await readFile(i.path));
    const [orthancStudy] = await orthanc.post<{ ID: string }[]>('/tools/lookup', study);
    await orthanc.post('/dicom-web/servers/mlsam/stow', { Resources: [orthancStudy!.ID], Synchronous: true });
    for (const i of series.instances) {
      const stored = await readFile(spoolPathFor(config.spool.dir, study, series.seriesInstanceUid, i.sopInstanceUid));
      expect(datasetOf(stored).equals(datasetOf(await readFile(i.path)))).toBe(true);
    }
    const redis = createRedis(config.redis.url, 'command', logger);
    try {
      await whenReady(redis, 5_000);
      const keys = new Keys(config.redis.keyPrefix);
      const tracked = await waitFor(
        async () =>
          (await redis.hlen(keys.seriesInstances(series.seriesInstanceUid))) === 5
            ? redis.hgetall(keys.series(series.seriesInstanceUid))
            : undefined,
        10_000,
        'the series tracked',
      );
      expect(tracked).toMatchObject({ callingAeTitle: 'DICOMWEB', studyInstanceUid: study, status: 'receiving' });
    } finally {
      await closeRedis(redis);
    }
  });

  it('refuses bad input with 400/415/413/401 and a clear message, and stores nothing', async () => {
    const series = await writeSyntheticSeries({
      dir: join(config.spool.dir, '..', `stow-bad-${newUid()}`),
      count: 2,
      rows: 64,
      columns: 64,
    });
    const good = await readFile(series.instances[0]!.path);
    const before = (await spooled()).length;
    const cases: [string, Promise<{ status: number; json: { error?: string } }>, number, RegExp][] = [
      ['no closing boundary', stow(multipart([{ body: good }], 'b0undary', false)), 400, /broken multipart body: part 1 is not closed/],
      [
        'not DICOM',
        stow(multipart([{ body: good }, { body: Buffer.from('hello, not a DICOM file '.repeat(20)) }])),
        400,
        /part 2 is not a DICOM Part-10 file/,
      ],
      ['part type', stow(multipart([{ body: good }, { type: 'text/plain', body: good }])), 415, /part 2: Content-Type text\/plain/],
      ['request type', stow(good, { contentType: 'application/json' }), 415, /multipart\/related/],
      [
        'metadata STOW',
        stow(multipart([{ body: good }]), { contentType: 'multipart/related; type="application/dicom+json"; boundary=b0undary' }),
        415,
        /only type="application\/dicom"/,
      ],
      [
        'oversized part',
        stow(multipart([{ body: good }, { body: Buffer.concat([good, Buffer.alloc(600 * 1024)]) }])),
        413,
        /part 2: \d+ bytes, above http\.stow\.maxInstanceMB/,
      ],
      [
        'oversized request',
        stow(multipart([0, 1, 2, 3, 4, 5].map(() => ({ body: Buffer.concat([good, Buffer.alloc(400 * 1024)]) })))),
        413,
        /too large/i,
      ],
      ['no credentials', stow(multipart([{ body: good }]), { auth: '' }), 401, /bearer token or basic auth is required/],
      ['wrong token', stow(multipart([{ body: good }]), { auth: 'Bearer not-the-token-at-all' }), 401, /unknown bearer token/],
    ];
    for (const [what, p, code, msg] of cases) {
      const r = await p;
      expect([what, r.status]).toEqual([what, code]);
      expect(r.json.error, what).toMatch(msg);
    }
    expect((await spooled()).length).toBe(before);
    // The address allow-list comes before the credentials.
    expect(stowAuthProblem(config, '10.1.2.3', `Bearer ${TOKEN}`)).toEqual({
      code: 403,
      message: 'client 10.1.2.3 is not in http.stow.allowedHosts',
    });
    expect(stowAuthProblem(config, '::ffff:127.0.0.1', `Basic ${Buffer.from('admin:pw').toString('base64')}`)).toBeNull();
  });

  it('a part whose dataset is cut short fails alone: 202, Failed SOP Sequence 0xC000, the other stored', async () => {
    const s = await writeSyntheticSeries({ dir: join(config.spool.dir, '..', `stow-mixed-${newUid()}`), count: 2, rows: 64, columns: 64 });
    const good = await readFile(s.instances[0]!.path);
    const bad = await readFile(s.instances[1]!.path);
    const r = await stow(multipart([{ body: good }, { body: bad.subarray(0, bad.length - 3000) }]), {
      auth: `Basic ${Buffer.from('admin:pw').toString('base64')}`,
    });
    expect(r.status).toBe(202);
    const stored = (r.json['00081199']?.Value ?? []).map((i) => i['00081155']?.Value?.[0]);
    const failed = (r.json['00081198']?.Value ?? []).map((i) => [i['00081155']?.Value?.[0], i['00081197']?.Value?.[0]]);
    expect(stored).toEqual([s.instances[0]!.sopInstanceUid]);
    expect(failed).toEqual([[s.instances[1]!.sopInstanceUid, 0xc000]]);
    await expect(
      readFile(spoolPathFor(config.spool.dir, s.studyInstanceUid, s.seriesInstanceUid, s.instances[1]!.sopInstanceUid)),
    ).rejects.toThrow(/ENOENT/);
  });
});
