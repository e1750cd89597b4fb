/**
 * Dispatch into Orthanc (src/demo/orthanc.ts), read back through its REST API: every result
 * instance arrives, re-running the job leaves the instance count unchanged, and an Orthanc that is
 * down for a while gets every instance exactly once when it comes up.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../../src/config/schema.js';
import { startOrthanc, type Orthanc } from '../../../src/demo/orthanc.js';
import { cleanup, freePort, testConfig, waitFor } from '../../queue/helpers.js';
import { destination, Harness, makeScoredResultSet } from './helpers.js';

/**
 * Counts the C-STOREs that reach Orthanc, per SOP Instance UID, even for instances it already
 * has (OnStoredInstance only fires for new ones): ReceivedInstanceFilter appends the UID to a
 * file. (It runs in its own Lua context, out of /tools/execute-script's reach. Dropping an
 * instance from it does not make a failure: Orthanc 1.10 then answers the C-STORE without a
 * failure status, so per-instance failures are tested against the scripted SCP in dispatch.test.ts.)
 */
function filterLua(callsFile: string): string {
  return `
function ReceivedInstanceFilter(dicom, origin, info)
  local log = io.open('${callsFile}', 'a')
  log:write(dicom.SOPInstanceUID, '\\n')
  log:close()
  return true
end
`;
}

let orthanc: Orthanc;
let config: Config;
let h: Harness;

let orthancDir: string;

/** C-STOREs that reached Orthanc, per SOP Instance UID. */
async function calls(dir = orthancDir): Promise<Record<string, number>> {
  const text = await readFile(join(dir, 'calls'), 'utf8').catch(() => '');
  const out: Record<string, number> = {};
  for (const uid of text.split('\n').filter(Boolean)) out[uid] = (out[uid] ?? 0) + 1;
  return out;
}

async function instanceCount(): Promise<number> {
  return (await orthanc.get<{ CountInstances: number }>('/statistics')).CountInstances;
}

beforeAll(async () => {
  orthancDir = await mkdtemp(join(tmpdir(), 'mlsam-orthanc-'));
  orthanc = await startOrthanc({
    aeTitle: 'ORTHANC',
    workDir: orthancDir,
    keepWorkDir: false,
    // Only our node (AE MLSAM from 127.0.0.1) may store.
    modalities: { mlsam: { aeTitle: 'MLSAM', port: 104 } },
    lua: [filterLua(join(orthancDir, 'calls'))],
  });
  config = await testConfig('dispatch-orthanc', {
    dicom: { aeTitle: 'MLSAM' },
    destinations: [destination('orthanc', orthanc.dicomPort, 'ORTHANC')],
    dispatch: { attempts: 5, backoffSeconds: 0.3, maxBackoffSeconds: 0.6, timeoutSeconds: 5 },
  });
  h = new Harness(config);
});

afterAll(async () => {
  await h?.close();
  await orthanc?.stop();
  if (config) await cleanup(config);
});

describe('dispatch to Orthanc', () => {
  it('stores every result instance (read back over REST); running the same job twice leaves the instance count unchanged', async () => {
    const set = await makeScoredResultSet(config);
    expect(set.record.outputs!.map((o) => o.kind)).toEqual(['sr', 'kos', 'heatmap', 'heatmap', 'gsps', 'gsps', 'summary']);
    const n = set.sopInstanceUids.length;
    const before = await instanceCount();
    const [added] = await h.dispatcher.enqueue(set.record, 'worker');
    await h.waitState(added!.jobId, ['completed']);
    const stored = await orthanc.instancesOfStudy(set.record.studyInstanceUid);
    expect(stored.map((i) => i.MainDicomTags.SOPInstanceUID).sort()).toEqual([...set.sopInstanceUids].sort());
    expect(await instanceCount()).toBe(before + n);
    for (const i of stored) expect(await orthanc.instanceMetadata(i.ID, 'RemoteAET')).toBe('MLSAM');
    const modalities = await Promise.all(
      stored.map(async (i) => [i.MainDicomTags.SOPInstanceUID, (await orthanc.instanceTags(i.ID)).Modality]),
    );
    expect(Object.fromEntries(modalities)).toEqual(
      Object.fromEntries(
        set.record.outputs!.map((o) => [
          o.sopInstanceUid,
          o.kind === 'sr' ? 'SR' : o.kind === 'kos' ? 'KO' : o.kind === 'gsps' ? 'PR' : o.kind === 'seg' ? 'SEG' : 'CT',
        ]),
      ),
    );

    // The same job again (admin re-send: every file is sent a second time).
    const [again] = await h.dispatcher.enqueue(set.record, 'admin');
    expect(again!.outcome).toBe('retried');
    await h.waitState(again!.jobId, ['completed']);
    const job = await h.job(again!.jobId);
    expect(job?.returnvalue).toMatchObject({ sentThisAttempt: n, delivered: n });
    const c = await calls();
    for (const uid of set.sopInstanceUids) expect(c[uid]).toBe(2);
    expect(await instanceCount()).toBe(before + n);
    expect((await orthanc.instancesOfStudy(set.record.studyInstanceUid)).length).toBe(n);
  });

  it('an Orthanc that is down for a while receives the results exactly once when it comes up', async () => {
    const port = await freePort();
    const lateDir = await mkdtemp(join(tmpdir(), 'mlsam-orthanc-late-'));
    const lateConfig = await testConfig('dispatch-orthanc', {
      dicom: { aeTitle: 'MLSAM' },
      destinations: [destination('late', port, 'LATE')],
      dispatch: { attempts: 10, backoffSeconds: 0.5, maxBackoffSeconds: 1, timeoutSeconds: 5 },
    });
    const lh = new Harness(lateConfig);
    let late: Orthanc | undefined;
    try {
      const set = await makeScoredResultSet(lateConfig);
      const series = set.record.seriesInstanceUid;
      const [r] = await lh.dispatcher.enqueue(set.record, 'worker');
      await waitFor(async () => (await lh.dispatcher.store.attempts(series)).length >= 2 || undefined, 20_000, '2 failed attempts');
      late = await startOrthanc({
        aeTitle: 'LATE',
        dicomPort: port,
        workDir: lateDir,
        keepWorkDir: false,
        modalities: { mlsam: { aeTitle: 'MLSAM', port: 104 } },
        lua: [filterLua(join(lateDir, 'calls'))],
      });
      const job = await lh.waitState(r!.jobId, ['completed'], 30_000);
      const log = (await lh.dispatcher.store.attempts(series)).reverse();
      expect(log.length).toBe(job.attemptsMade);
      expect(log.slice(0, -1).every((a) => a.outcome === 'failed' && a.sent === 0)).toBe(true);
      expect(log.at(-1)).toMatchObject({ outcome: 'sent', sent: set.sopInstanceUids.length });
      const stored = await late.instancesOfStudy(set.record.studyInstanceUid);
      expect(stored.map((i) => i.MainDicomTags.SOPInstanceUID).sort()).toEqual([...set.sopInstanceUids].sort());
      expect((await late.get<{ CountInstances: number }>('/statistics')).CountInstances).toBe(set.sopInstanceUids.length);
      const c = await calls(lateDir);
      expect(Object.keys(c).sort()).toEqual([...set.sopInstanceUids].sort());
      expect(Object.values(c).every((n) => n === 1)).toBe(true);
    } finally {
      await lh.close();
      await late?.stop();
      await cleanup(lateConfig);
      await rm(lateDir, { recursive: true, force: true });
    }
  });
});
