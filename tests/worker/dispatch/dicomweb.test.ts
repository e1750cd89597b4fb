/**
 * DICOMweb STOW-RS destinations, against Orthanc's DICOMweb plugin (Debian orthanc-dicomweb):
 * the result objects arrive byte-identical, a second run of the same result leaves the archive
 * unchanged; an unreachable archive is retried, then parked and visible, while the other
 * destination is served. Orthanc 1.10 reports an instance its filter dropped as stored (as over
 * DIMSE), so the per-instance failures of the response dataset are checked on datasets.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../../src/config/schema.js';
import { startOrthanc, type Orthanc } from '../../../src/demo/orthanc.js';
import { Keys } from '../../../src/stores/keys.js';
import { ResultStore } from '../../../src/stores/result-store.js';
import { classifyStowResponse } from '../../../src/worker/dispatch/stow.js';
import { cleanup, freePort, testConfig } from '../../queue/helpers.js';
import { Harness, makeScoredResultSet } from './helpers.js';

const DICOMWEB_PLUGIN = '/usr/share/orthanc/plugins/libOrthancDicomWeb.so';

let orthanc: Orthanc;
let dir: string;
let config: Config;
let h: Harness;
let deadPort: number;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mlsam-dicomweb-'));
  orthanc = await startOrthanc({
    workDir: join(dir, 'orthanc'),
    keepWorkDir: false,
    extraConfig: { Plugins: [DICOMWEB_PLUGIN], DicomWeb: { Enable: true, Root: '/dicom-web/' } },
  });
  deadPort = await freePort();
  config = await testConfig('dicomweb', {
    destinations: [
      { type: 'dicomweb', name: 'archive', url: `${orthanc.url}/dicom-web` },
      { type: 'dicomweb', name: 'dead', url: `http://127.0.0.1:${deadPort}/dicom-web` },
    ] as never,
    dispatch: { attempts: 3, backoffSeconds: 0.2, maxBackoffSeconds: 0.4, timeoutSeconds: 5 },
  });
  h = new Harness(config);
}, 60_000);

afterAll(async () => {
  await h?.close();
  await orthanc?.stop();
  if (config) await cleanup(config);
  await rm(dir, { recursive: true, force: true });
});

async function storedFiles(studyUid: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const i of await orthanc.instancesOfStudy(studyUid))
    out.set(i.MainDicomTags.SOPInstanceUID!, await orthanc.getBytes(`/instances/${i.ID}/file`));
  return out;
}

describe('DICOMweb STOW-RS destination (Orthanc)', () => {
  it('parses as a DICOMweb destination, apart from the DIMSE ones', () => {
    expect(config.destinations).toEqual([]);
    expect(config.dicomwebDestinations.map((d) => d.name)).toEqual(['archive', 'dead']);
    expect(config.dicomwebDestinations[0]!.auth).toEqual({ type: 'none' });
  });

  it('stores every result object byte-identical; the same result again changes nothing; the dead archive is retried, then parked and listed', async () => {
    const set = await makeScoredResultSet(config);
    await new ResultStore(await h.ready(), new Keys(config.redis.keyPrefix)).write(set.record, 'take');
    const results = await h.dispatcher.enqueue(set.record, 'worker');
    expect(results.map((r) => [r.destination, r.outcome])).toEqual([
      ['archive', 'added'],
      ['dead', 'added'],
    ]);
    const archiveJob = results[0]!.jobId;
    await h.waitState(archiveJob, ['completed']);
    const stored = await storedFiles(set.record.studyInstanceUid);
    expect([...stored.keys()].sort()).toEqual([...set.sopInstanceUids].sort());
    for (const o of set.record.outputs!) expect(stored.get(o.sopInstanceUid)!.equals(await readFile(o.path))).toBe(true);
    const st = await h.dispatcher.store.getState(set.record.seriesInstanceUid, 'archive');
    expect(st).toMatchObject({ status: 'sent', instancesSent: set.files.length });

    // Enqueued again by the worker: the job exists, nothing is sent.
    expect((await h.dispatcher.enqueue(set.record, 'worker')).map((r) => r.outcome)).toEqual(['exists', 'exists']);
    // Re-sent by the admin: every file again; the archive still holds each instance once.
    const [again] = await h.dispatcher.enqueue(set.record, 'admin', { destinations: ['archive'] });
    expect(again!.outcome).toBe('retried');
    const done = await h.waitState(archiveJob, ['completed']);
    expect(done.returnvalue).toMatchObject({ delivered: set.files.length, sentThisAttempt: set.files.length });
    expect((await orthanc.instancesOfStudy(set.record.studyInstanceUid)).length).toBe(set.files.length);

    // The dead archive: every attempt failed (connection refused), then parked, and the result is listed as owed to it.
    const dead = await h.waitState(results[1]!.jobId, ['failed'], 20_000);
    expect(dead.attemptsMade).toBe(3);
    expect(dead.failedReason).toMatch(/ECONNREFUSED/);
    const deadState = await h.dispatcher.store.getState(set.record.seriesInstanceUid, 'dead');
    expect(deadState).toMatchObject({ status: 'failed', attempts: 3 });
    const owed = (await h.dispatcher.listUndispatched()).find((u) => u.seriesInstanceUid === set.record.seriesInstanceUid);
    expect(owed?.destinations.map((d) => [d.name, d.status])).toEqual([['dead', 'failed']]);
  });
});

describe('STOW-RS response dataset (PS3.18 10.5.3)', () => {
  const uid = (n: number): string => `1.2.3.${n}`;
  const ref = (n: number, warning?: number) => ({
    '00081155': { vr: 'UI', Value: [uid(n)] },
    ...(warning !== undefined ? { '00081196': { vr: 'US', Value: [warning] } } : {}),
  });
  const failed = (n: number, reason: number) => ({ '00081155': { vr: 'UI', Value: [uid(n)] }, '00081197': { vr: 'US', Value: [reason] } });

  it('202: the failed instance has its Failure Reason, a warned one counts as stored with a warning, one not listed failed', () => {
    const ds = { '00081199': { vr: 'SQ', Value: [ref(1), ref(2, 0xb000)] }, '00081198': { vr: 'SQ', Value: [failed(3, 0xa700)] } };
    expect(classifyStowResponse(202, ds, [uid(1), uid(2), uid(3), uid(4)])).toEqual([
      { sopInstanceUid: uid(1), outcome: 'stored' },
      { sopInstanceUid: uid(2), outcome: 'warning', status: 0xb000, reason: 'warning reason 0xb000' },
      { sopInstanceUid: uid(3), outcome: 'failed', status: 0xa700, reason: 'STOW-RS: failure reason 0xa700 (out of resources)' },
      { sopInstanceUid: uid(4), outcome: 'failed', reason: 'STOW-RS: HTTP 202, instance not listed as stored' },
    ]);
  });

  it('200 with a Failed SOP Sequence item (as Orthanc answers) fails that instance; 409 fails all listed', () => {
    const ds = { '00081199': { vr: 'SQ', Value: [ref(1)] }, '00081198': { vr: 'SQ', Value: [failed(2, 0x0110)] } };
    expect(classifyStowResponse(200, ds, [uid(1), uid(2)]).map((r) => r.outcome)).toEqual(['stored', 'failed']);
    const all = { '00081198': { vr: 'SQ', Value: [failed(1, 0xc000), failed(2, 0x0122)] } };
    expect(classifyStowResponse(409, all, [uid(1), uid(2)]).map((r) => r.reason)).toEqual([
      'STOW-RS: failure reason 0xc000 (cannot understand)',
      'STOW-RS: failure reason 0x0122 (SOP class not supported)',
    ]);
    // An empty Failed SOP Sequence (Orthanc always sends one) is no failure.
    expect(classifyStowResponse(200, { '00081198': { vr: 'SQ' } }, [uid(1)])).toEqual([{ sopInstanceUid: uid(1), outcome: 'stored' }]);
  });
});
