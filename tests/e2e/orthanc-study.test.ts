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
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/demo/child-process.js';
import { startOrthanc, studyForwarderLua, type Orthanc } from '../../src/demo/orthanc.js';
import { run } from '../helpers/dcmtk.js';
import { P001, P001_SUBSET, ServeNode } from '../helpers/serve-node.js';
import { buildStudyFixture, type StudyFixture } from '../helpers/study-fixture.js';
import { sleep, waitFor } from '../queue/helpers.js';

const SR = '1.2.840.10008.5.1.4.1.1.88.34';
const KOS = '1.2.840.10008.5.1.4.1.1.88.59';
const SC = '1.2.840.10008.5.1.4.1.1.7';

let orthanc: Orthanc;
let serve: ServeNode;
let study: StudyFixture;

beforeAll(async () => {
  serve = await ServeNode.open('e2e-ostudy');
  study = await buildStudyFixture(join(serve.work, 'study'), P001_SUBSET);
  const nodePort = await freePort();
  orthanc = await startOrthanc({
    modalities: { mlsam: { aeTitle: 'MLSAM', port: nodePort }, uploader: { aeTitle: 'UPLOADER', port: 104 } },
    lua: [studyForwarderLua({ modality: 'mlsam', nodeAeTitle: 'MLSAM' })],
    stableAgeSeconds: 3,
  });
  await serve.start({
    dicom: { aeTitle: 'MLSAM', host: '127.0.0.1', port: nodePort },
    series: { quietPeriodSeconds: 2, routing: { minSlices: 10 }, selection: { minCoverageMm: 50 } },
    destinations: [{ name: 'pacs', aeTitle: 'ORTHANC', host: '127.0.0.1', port: orthanc.dicomPort }],
    http: { host: '127.0.0.1', port: 0 },
    dispatch: { backoffSeconds: 1, maxBackoffSeconds: 5 },
  });
}, 180_000);

afterAll(async () => {
  await serve?.close();
  await orthanc?.stop();
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
        serve.checkRunning();
        const r = await serve.record(study.thin.seriesInstanceUid);
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
    const again = await serve.record(study.thin.seriesInstanceUid);
    expect(again?.jobId).toBe(rec.jobId);
    const others = [study.thick, study.coronal, study.localizer, study.dose].map((s) => s.seriesInstanceUid);
    for (const uid of others) expect(await serve.redis.exists(serve.keys.result(uid))).toBe(0);
  }, 600_000);
});
