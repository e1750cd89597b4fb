/**
 * The whole chain as a hospital runs it, with Debian's Orthanc as the PACS (loopback only):
 * a modality C-STOREs a chest CT into Orthanc; Orthanc's Lua forwarder sends the stable CT series
 * to `mlsam serve` (a real daemon process, real Redis); the node scores it and sends the SR and
 * the heatmap SCs back into the same study. Nothing else is done by the test.
 *
 * To keep CI time down the real series is a subset: 40 of the 148 slices of
 * ../shared/data/covid-ct-md/P001 (files _50 … _89, JPEG Lossless as published); the
 * node-down case uses a 30-slice synthetic phantom.
 *
 * Checks: SR + SC series in the source study, with the Segmentation (its opacity volume = the SR's within
 * 1 %) and a presentation state per key slice; the SR's probability read back through Orthanc's
 * REST API equals `mlsam score --json` on the same files; every object as Orthanc stores it
 * passes dciodvfy (no "Error" lines); negative paths: a non-CT series is not forwarded, and when
 * pushed to the node by hand it is stored unscored (dicom.acceptUnscoredSopClasses), never scored; our own results are not bounced back to us; with the
 * node down Orthanc's forward job fails, and after a restart the re-forward (twice) gives exactly
 * one result.
 */
import { existsSync } from 'node:fs';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import dcmjs from 'dcmjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/demo/child-process.js';
import { forwarderLua, startOrthanc, type Orthanc, type OrthancResource } from '../../src/demo/orthanc.js';
import { writePhantomSeries } from '../../src/demo/phantom.js';
import { srSeriesProbability } from '../../src/demo/sr-read.js';
import type { ResultRecord } from '../../src/contracts/result-record.js';
import { run } from '../helpers/dcmtk.js';
import { mlsam } from '../helpers/process.js';
import { writeSyntheticSeries } from '../helpers/synthetic-series.js';
import { P001, P001_SUBSET_NAMES as SUBSET, ServeNode } from '../helpers/serve-node.js';
import { sleep, waitFor } from '../queue/helpers.js';

const STABLE_AGE = 2;
const QUIET = 2;
const SC_CLASSES = ['1.2.840.10008.5.1.4.1.1.7', '1.2.840.10008.5.1.4.1.1.7.4'];

let orthanc: Orthanc;
let serve: ServeNode;
let nodePort: number;
let nodeConfig: Record<string, unknown>;

/** `storescu` as the modality (AE UPLOADER) into Orthanc. */
async function upload(files: string[]): Promise<void> {
  // -xs: also propose JPEG Lossless (the covid-ct-md files are stored in it).
  const r = await run('storescu', ['-xs', '-aet', 'UPLOADER', '-aec', 'ORTHANC', '127.0.0.1', String(orthanc.dicomPort), ...files]);
  if (r.code !== 0) throw new Error(`storescu into Orthanc failed: ${r.stderr}`);
}

const record = (seriesUid: string): Promise<ResultRecord | undefined> => serve.record(seriesUid);

/** Series of a study other than the source series, with their instances. */
async function resultObjects(studyUid: string, sourceSeriesUid: string): Promise<Array<OrthancResource & { series: OrthancResource }>> {
  const series = (await orthanc.seriesOfStudy(studyUid)).filter((s) => s.MainDicomTags.SeriesInstanceUID !== sourceSeriesUid);
  const out: Array<OrthancResource & { series: OrthancResource }> = [];
  for (const s of series) {
    for (const i of await orthanc.get<OrthancResource[]>(`/series/${s.ID}/instances`)) out.push({ ...i, series: s });
  }
  return out;
}

/** Waits until the series' result record lists outputs and every one of them is stored in Orthanc. */
async function waitForResultInOrthanc(
  studyUid: string,
  seriesUid: string,
  timeoutMs: number,
): Promise<{
  rec: ResultRecord;
  objects: Array<OrthancResource & { series: OrthancResource }>;
}> {
  return waitFor(
    async () => {
      serve.checkRunning();
      const rec = await record(seriesUid);
      if (!rec?.outputs?.length) return undefined;
      const objects = await resultObjects(studyUid, seriesUid);
      const uids = new Set(objects.map((o) => o.MainDicomTags.SOPInstanceUID));
      return rec.outputs.every((o) => uids.has(o.sopInstanceUid)) ? { rec, objects } : undefined;
    },
    timeoutMs,
    `the results of ${seriesUid} in Orthanc`,
    500,
  );
}

const storeJobs = async (): Promise<Awaited<ReturnType<Orthanc['jobs']>>> =>
  (await orthanc.jobs()).filter((j) => j.Type === 'DicomModalityStore');

beforeAll(async () => {
  serve = await ServeNode.open('e2e-orthanc');
  nodePort = await freePort();
  orthanc = await startOrthanc({
    modalities: {
      mlsam: { aeTitle: 'MLSAM', port: nodePort },
      uploader: { aeTitle: 'UPLOADER', port: 104 },
    },
    lua: [forwarderLua({ modality: 'mlsam', nodeAeTitle: 'MLSAM' })],
    stableAgeSeconds: STABLE_AGE,
  });
  nodeConfig = {
    dicom: { aeTitle: 'MLSAM', host: '127.0.0.1', port: nodePort },
    series: { quietPeriodSeconds: QUIET },
    destinations: [{ name: 'pacs', aeTitle: 'ORTHANC', host: '127.0.0.1', port: orthanc.dicomPort }],
    http: { host: '127.0.0.1', port: 0 },
    dispatch: { backoffSeconds: 1, maxBackoffSeconds: 5 },
  };
  await serve.start(nodeConfig);
});

afterAll(async () => {
  await serve?.close();
  await orthanc?.stop();
});

describe.skipIf(!existsSync(P001))('Orthanc as the PACS, end to end', () => {
  const studyUid = '1.3.12.2.1107.5.1.4.93005.30000020030507283104800000079';
  const seriesUid = '1.3.12.2.1107.5.1.4.93005.30000020030507333373200012427';
  let subsetDir: string;
  let rec: ResultRecord;
  let objects: Array<OrthancResource & { series: OrthancResource }>;

  it('a CT uploaded into Orthanc comes back as SR + SC series in the same study, with no further action', async () => {
    subsetDir = join(serve.work, 'p001-subset');
    await mkdir(subsetDir);
    for (const f of SUBSET) await symlink(join(P001, f), join(subsetDir, f));
    await upload(SUBSET.map((f) => join(subsetDir, f)));
    expect((await orthanc.instancesOfSeries(seriesUid)).length).toBe(40);

    ({ rec, objects } = await waitForResultInOrthanc(studyUid, seriesUid, 240_000));
    expect(rec.status).toBe('scored');
    expect(rec.instanceCount).toBe(40);
    const modalities = new Set(objects.map((o) => o.series.MainDicomTags.Modality));
    expect(modalities.has('SR')).toBe(true);
    // The Key Object Selection of the key slices, in its own KO series.
    expect(objects.filter((o) => o.series.MainDicomTags.Modality === 'KO')).toHaveLength(1);
    const srs = objects.filter((o) => o.series.MainDicomTags.Modality === 'SR');
    expect(srs).toHaveLength(1);
    // The Segmentation of the series, and a presentation state per key slice.
    expect(objects.filter((o) => o.series.MainDicomTags.Modality === 'SEG')).toHaveLength(1);
    expect(objects.filter((o) => o.series.MainDicomTags.Modality === 'PR')).toHaveLength(rec.keySlices.length);
    const classes = await Promise.all(objects.map(async (o) => String((await orthanc.instanceTags(o.ID)).SOPClassUID)));
    expect(classes.filter((c) => SC_CLASSES.includes(c)).length).toBeGreaterThanOrEqual(1);
    // All in the source study, sent by our node.
    for (const o of objects) {
      expect(o.series.ParentStudy).toBe(await orthanc.studyId(studyUid));
      expect(await orthanc.instanceMetadata(o.ID, 'RemoteAET')).toBe('MLSAM');
    }
  });

  it("the SR's probability, read back through Orthanc, equals `mlsam score` on the same files", async () => {
    const sr = objects.find((o) => o.series.MainDicomTags.Modality === 'SR')!;
    const fromOrthanc = srSeriesProbability(await orthanc.instanceTags(sr.ID));
    const r = await mlsam(['score', '--json', subsetDir]);
    expect(r.code, r.stderr).toBe(0);
    const cli = JSON.parse(r.stdout) as { series: Array<{ seriesInstanceUid: string; score: number; category: string }> };
    const expected = cli.series.find((s) => s.seriesInstanceUid === seriesUid)!;
    expect(fromOrthanc).toBeDefined();
    // The SR's NUM holds the probability in percent as a DS with 2 decimals (src/results/sr.ts).
    expect(fromOrthanc).toBe(Number((Number((expected.score * 100).toFixed(2)) / 100).toFixed(6)));
    expect(rec.category).toBe(expected.category);
  });

  it('every result object, as Orthanc stores it, passes dciodvfy', async () => {
    const dir = join(serve.work, 'from-orthanc');
    await mkdir(dir, { recursive: true });
    for (const o of objects) {
      const path = join(dir, `${o.ID}.dcm`);
      await writeFile(path, await orthanc.instanceFile(o.ID));
      const v = await run('dciodvfy', [path]);
      // dciodvfy names the IOD it checked first (proof it recognised the object), then its findings.
      expect(v.stdout + v.stderr).toMatch(
        /^(Comprehensive3DSR|EnhancedSR|KeyObjectSelectionDocument|SCImage|MultiframeTrueColorSCImage|Segmentation|GrayscaleSoftcopyPresentationState)$/m,
      );
      const errors = (v.stdout + v.stderr).split('\n').filter((l) => /^Error/.test(l));
      expect(errors, `${o.series.MainDicomTags.Modality} ${o.MainDicomTags.SOPInstanceUID}`).toEqual([]);
    }
  });

  it("the Segmentation, as Orthanc stores it: ground glass + consolidation volume = the SR's opacity volume within 1 %", async () => {
    const seg = objects.find((o) => o.series.MainDicomTags.Modality === 'SEG')!;
    const bytes = await orthanc.instanceFile(seg.ID);
    const dict = dcmjs.data.DicomMessage.readFile(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length) as ArrayBuffer);
    // biome-ignore lint/suspicious/noExplicitAny: dcmjs's naturalized dataset is untyped nested JSON, read field by field below
    type Naturalized = Record<string, any>;
    const ds = dcmjs.data.DicomMetaDictionary.naturalizeDataset(dict.dict) as Naturalized;
    const asList = (v: unknown): Naturalized[] => (Array.isArray(v) ? v : v === undefined ? [] : [v as Naturalized]);
    expect(asList(ds.SegmentSequence).map((s) => s.SegmentLabel)).toEqual(['Left lung', 'Right lung', 'Ground glass', 'Consolidation']);
    const frames = asList(ds.PerFrameFunctionalGroupsSequence);
    const n = (ds.Rows as number) * (ds.Columns as number);
    const px = new Uint8Array((ds.PixelData as ArrayBuffer[])[0]!);
    let lesion = 0;
    frames.forEach((f, k) => {
      const segNo = asList(f.SegmentIdentificationSequence)[0]!.ReferencedSegmentNumber as number;
      if (segNo < 3) return;
      for (let p = k * n; p < (k + 1) * n; p++) lesion += (px[p >> 3]! >> (p & 7)) & 1;
    });
    const [rowMm, colMm] = asList(asList(ds.SharedFunctionalGroupsSequence)[0]!.PixelMeasuresSequence)[0]!.PixelSpacing.map(Number);
    const ml = (lesion * rowMm * colMm * rec.opacity!.sliceSpacingMm!) / 1000;
    expect(rec.opacity!.total.opacityMl).toBeGreaterThan(0);
    expect(Math.abs(ml - rec.opacity!.total.opacityMl) / rec.opacity!.total.opacityMl).toBeLessThan(0.01);
  });

  it('our own results are not bounced back to us', async () => {
    // Let the SR/SC series become stable in Orthanc, then give the forwarder time to (not) act.
    await sleep((STABLE_AGE + 4) * 1000);
    const jobs = await storeJobs();
    expect(jobs).toHaveLength(1); // the CT forward only
    const resultSeries = new Set(objects.map((o) => o.series.MainDicomTags.SeriesInstanceUID!));
    for (const s of resultSeries) expect(await serve.redis.exists(serve.keys.series(s))).toBe(0);
    const known = await serve.redis.zrange(serve.keys.seriesIndex(), 0, -1);
    expect(known).toEqual([seriesUid]);
    expect(orthanc.logTail(200_000)).toMatch(/not forwarded \(Modality SR\)/);
  });

  it('a non-CT series is not forwarded, and stored unscored by the node when pushed to it by hand', async () => {
    const mr = await writeSyntheticSeries({
      dir: join(serve.work, 'mr'),
      count: 25,
      rows: 64,
      columns: 64,
      modality: 'MR',
      sopClassUid: '1.2.840.10008.5.1.4.1.1.4',
      seriesDescription: 'NOT CT',
    });
    await upload(mr.instances.map((i) => i.path));
    await sleep((STABLE_AGE + 3) * 1000);
    expect(await storeJobs()).toHaveLength(1);
    expect(orthanc.logTail(200_000)).toMatch(/not forwarded \(Modality MR\)/);
    // An admin pushes it to the node anyway: the node stores storage SOP classes it does not score
    // (dicom.acceptUnscoredSopClasses), so Orthanc's job succeeds; the series is recorded ignored
    // with its SOP class and never scored.
    const id = (await orthanc.find('Series', { SeriesInstanceUID: mr.seriesInstanceUid }))[0]!.ID;
    const job = await orthanc.storeTo('mlsam', [id]);
    expect((await orthanc.waitJob(job.ID!)).State).toBe('Success');
    const ignored = await waitFor(
      async () => {
        const h = await serve.redis.hgetall(serve.keys.series(mr.seriesInstanceUid));
        return h.status === 'ignored' ? h : undefined;
      },
      QUIET * 1000 + 15_000,
      'the MR series recorded ignored',
    );
    expect(ignored.ignoreCode).toBe('sop-class');
    expect(ignored.reason).toMatch(/MR Image Storage: stored, not scored/);
    expect(await record(mr.seriesInstanceUid)).toBeUndefined();
    expect((await orthanc.seriesOfStudy(mr.studyInstanceUid)).length).toBe(1);
    expect(serve.node.running).toBe(true);
  });

  it('node down while Orthanc forwards: the job fails; re-forwarding after a restart gives exactly one result', async () => {
    expect(await serve.stop()).toBe(0);
    const ph = await writePhantomSeries({ dir: join(serve.work, 'phantom'), slices: 30, size: 256 });
    const before = new Set((await storeJobs()).map((j) => j.ID));
    await upload(ph.instances.map((i) => i.path));
    const failed = await waitFor(
      async () => {
        const j = (await storeJobs()).filter((x) => !before.has(x.ID));
        return j.length && j.every((x) => x.State === 'Failure') ? j : undefined;
      },
      60_000,
      "Orthanc's failed forward job",
    );
    expect(failed).toHaveLength(1);
    expect(await serve.redis.exists(serve.keys.series(ph.seriesInstanceUid))).toBe(0);

    await serve.start(nodeConfig);
    // Re-forward: resubmit the failed job, then (as an impatient admin) forward the series once more.
    await orthanc.post(`/jobs/${failed[0]!.ID}/resubmit`, '');
    expect((await orthanc.waitJob(failed[0]!.ID)).State).toBe('Success');
    const first = await waitForResultInOrthanc(ph.studyInstanceUid, ph.seriesInstanceUid, 180_000);
    expect(first.rec.status).toBe('scored');
    const seriesId = (await orthanc.find('Series', { SeriesInstanceUID: ph.seriesInstanceUid }))[0]!.ID;
    const again = await orthanc.storeTo('mlsam', [seriesId]);
    expect((await orthanc.waitJob(again.ID!)).State).toBe('Success');
    // Longer than quiet period + scoring + dispatch of a 30-slice series.
    await sleep((QUIET + 15) * 1000);
    const after = await resultObjects(ph.studyInstanceUid, ph.seriesInstanceUid);
    expect(after.filter((o) => o.series.MainDicomTags.Modality === 'SR')).toHaveLength(1);
    expect(after.map((o) => o.MainDicomTags.SOPInstanceUID).sort()).toEqual(
      first.objects.map((o) => o.MainDicomTags.SOPInstanceUID).sort(),
    );
    expect(after).toHaveLength(first.rec.outputs!.length);
  });
});
