/**
 * Orthanc as the PACS forwarding whole studies (issue 22): the study of tests/helpers/study-fixture.ts
 * (40 slices of covid-ct-md P001 as the thin series, a 6 mm reconstruction averaged from it, coronal
 * reformats, a localizer, a Secondary Capture dose screen) is uploaded into Orthanc; Orthanc's
 * study-level forwarder (src/demo/orthanc.ts studyForwarderLua) sends every instance to `mlsam serve`
 * in one job; the node sends its results back into the study.
 *
 * Checks: Orthanc's forward job succeeds (the SC is accepted); the study in Orthanc gets exactly one
 * SR, one KOS and one heatmap series, the SR referencing the thin series; the study changing in
 * Orthanc (our results arrive) forwards it again and the node adds nothing.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/demo/child-process.js';
import { startOrthanc, studyForwarderLua, type Orthanc } from '../../src/demo/orthanc.js';
import { dropRedisPrefix, MlsamProcess } from '../../src/demo/processes.js';
import { Keys } from '../../src/stores/keys.js';
import type { ResultRecord } from '../../src/contracts/result-record.js';
import { run } from '../helpers/dcmtk.js';
import { SHARED_DATA } from '../helpers/dicom-listener.js';
import { buildStudyFixture, type StudyFixture } from '../helpers/study-fixture.js';
import { sleep, uniquePrefix, waitFor } from '../queue/helpers.js';

const P001 = join(SHARED_DATA, 'covid-ct-md', 'P001');
const SUBSET = Array.from({ length: 40 }, (_, i) => join(P001, `98C14734-ASSH_${50 + i}.dcm`));
const REDIS_URL = 'redis://127.0.0.1:6379';
const SR = '1.2.840.10008.5.1.4.1.1.88.34';
const KOS = '1.2.840.10008.5.1.4.1.1.88.59';
const SC = '1.2.840.10008.5.1.4.1.1.7';

let work: string;
let orthanc: Orthanc;
let node: MlsamProcess;
let prefix: string;
let redis: Redis;
let keys: Keys;
let study: StudyFixture;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'mlsam-e2e-ostudy-'));
  prefix = uniquePrefix('e2e-ostudy');
  redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 2 });
  keys = new Keys(prefix);
  study = await buildStudyFixture(join(work, 'study'), SUBSET);
  const nodePort = await freePort();
  orthanc = await startOrthanc({
    modalities: { mlsam: { aeTitle: 'MLSAM', port: nodePort }, uploader: { aeTitle: 'UPLOADER', port: 104 } },
    lua: [studyForwarderLua({ modality: 'mlsam', nodeAeTitle: 'MLSAM' })],
    stableAgeSeconds: 3,
  });
  node = await MlsamProcess.start({
    command: 'serve',
    workDir: work,
    name: 'serve-ostudy',
    config: {
      dicom: { aeTitle: 'MLSAM', host: '127.0.0.1', port: nodePort },
      redis: { url: REDIS_URL, keyPrefix: prefix },
      spool: { dir: join(work, 'spool') },
      series: { quietPeriodSeconds: 2, routing: { minSlices: 10 }, selection: { minCoverageMm: 50 } },
      destinations: [{ name: 'pacs', aeTitle: 'ORTHANC', host: '127.0.0.1', port: orthanc.dicomPort }],
      http: { host: '127.0.0.1', port: 0 },
      dispatch: { backoffSeconds: 1, maxBackoffSeconds: 5 },
      log: { level: 'info' },
    },
  });
  await node.waitListening(60_000);
}, 180_000);

afterAll(async () => {
  await node?.stop();
  await orthanc?.stop();
  redis?.disconnect();
  if (prefix) await dropRedisPrefix(REDIS_URL, prefix);
  if (work) await rm(work, { recursive: true, force: true });
});

describe.skipIf(!existsSync(P001))('Orthanc forwards a whole study', () => {
  it('one SR, one KOS and one heatmap series come back, computed on the thin series; re-forwards add nothing', async () => {
    const up = await run(
      'storescu',
      ['-xs', '-aet', 'UPLOADER', '-aec', 'ORTHANC', '127.0.0.1', String(orthanc.dicomPort), ...study.files],
      { timeoutMs: 120_000 },
    );
    expect(up.code, up.stderr).toBe(0);
    const rec = await waitFor(
      async () => {
        if (!node.running) throw new Error(`mlsam serve exited:\n${node.log().slice(-3000)}`);
        const j = await redis.get(keys.result(study.thin.seriesInstanceUid));
        const r = j ? (JSON.parse(j) as ResultRecord) : undefined;
        if (!r?.outputs?.length) return undefined;
        const inOrthanc = new Set((await orthanc.instancesOfStudy(study.studyInstanceUid)).map((i) => i.MainDicomTags.SOPInstanceUID));
        return r.outputs.every((o) => inOrthanc.has(o.sopInstanceUid)) ? r : undefined;
      },
      400_000,
      'the study result in Orthanc',
      1000,
    );
    // Every forward job of the study succeeded: the dose screen did not fail it.
    const jobs = (await orthanc.jobs()).filter((j) => j.Type === 'DicomModalityStore');
    expect(jobs.length).toBeGreaterThanOrEqual(1);
    expect(jobs.every((j) => j.State === 'Success' || j.State === 'Running' || j.State === 'Pending')).toBe(true);
    // Let the re-forward (the study changed when our results arrived) run and settle.
    await sleep(15_000);
    const series = await orthanc.seriesOfStudy(study.studyInstanceUid);
    const ours = [] as string[];
    for (const s of series) {
      for (const i of await orthanc.get<Array<{ ID: string; MainDicomTags: Record<string, string> }>>(`/series/${s.ID}/instances`)) {
        const cls = (await orthanc.getText(`/instances/${i.ID}/metadata/SopClassUid`)).trim();
        if (cls === SR || cls === KOS || (cls === SC && s.MainDicomTags.SeriesInstanceUID !== study.dose.seriesInstanceUid)) ours.push(cls);
      }
    }
    expect(ours.filter((c) => c === SR)).toHaveLength(1);
    expect(ours.filter((c) => c === KOS)).toHaveLength(1);
    expect(ours.filter((c) => c === SC).length).toBe(rec.outputs!.filter((o) => o.kind === 'heatmap' || o.kind === 'summary').length);
    // 5 source series + one series per kind of result object (SR, KOS, SCs, SEG, presentation states): one result set.
    const resultSeries = new Set(rec.outputs!.map((o) => o.seriesInstanceUid));
    expect(resultSeries.size).toBe(new Set(rec.outputs!.map((o) => (o.kind === 'summary' ? 'heatmap' : o.kind))).size);
    expect(series).toHaveLength(5 + resultSeries.size);
    // Nothing more was scored after the re-forward.
    const again = JSON.parse((await redis.get(keys.result(study.thin.seriesInstanceUid)))!) as ResultRecord;
    expect(again.jobId).toBe(rec.jobId);
    const others = [study.thick, study.coronal, study.localizer, study.dose].map((s) => s.seriesInstanceUid);
    for (const uid of others) expect(await redis.exists(keys.result(uid))).toBe(0);
  }, 600_000);
});
