/**
 * Whole studies as a PACS forwards them (issue 22), against a real `mlsam serve` daemon and DCMTK:
 * a study generated from 40 slices of ../shared/data/covid-ct-md/P001 (thin axial as published, a
 * 6 mm reconstruction averaged from it, coronal reformats resampled from it, a localizer, a
 * Secondary Capture dose screen; tests/helpers/study-fixture.ts) is sent with `storescu` in one
 * association WITHOUT --no-halt. Checks: every instance accepted (the SC counted unscored in the
 * association audit); one result for the study, on the thin series, with SR + KOS + heatmaps; the
 * other series' roles and reasons in GET /api/studies/:uid and on the study page; the SR text names
 * the series used and those not used; resending the study changes nothing; a series added later
 * rescores the study once, the new SR naming the old one as predecessor.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/demo/child-process.js';
import { writeSyntheticSeries } from '../../src/dicom/testing/synthetic-series.js';
import type { ResultRecord } from '../../src/contracts/result-record.js';
import type { StudyView } from '../../src/admin/studies.js';
import { run } from '../helpers/dcmtk.js';
import { P001, P001_SUBSET, ServeNode } from '../helpers/serve-node.js';
import { buildStudyFixture, type StudyFixture } from '../helpers/study-fixture.js';
import { sleep, waitFor } from '../queue/helpers.js';

let serve: ServeNode;
let nodePort: number;
let httpPort: number;
let study: StudyFixture;

async function storescu(files: string[]): Promise<{ code: number | null; stderr: string }> {
  // One association, no --no-halt: a refused presentation context would stop the transfer.
  return run('storescu', ['-xs', '-aet', 'PACS', '-aec', 'MLSAM', '127.0.0.1', String(nodePort), ...files], { timeoutMs: 120_000 });
}

async function api<T>(path: string): Promise<T> {
  const res = await fetch(`http://127.0.0.1:${httpPort}${path}`, {
    headers: { authorization: `Basic ${Buffer.from('admin:').toString('base64')}` },
  });
  if (!res.ok) throw new Error(`${path}: ${res.status}`);
  return (res.headers.get('content-type') ?? '').includes('json') ? ((await res.json()) as T) : ((await res.text()) as T);
}

const record = (seriesUid: string): Promise<ResultRecord | undefined> => serve.record(seriesUid);

async function records(): Promise<ResultRecord[]> {
  const uids = await serve.redis.smembers(serve.keys.studySeries(study.studyInstanceUid));
  return (await Promise.all(uids.map(record))).filter((r): r is ResultRecord => r !== undefined);
}

async function jobCount(): Promise<number> {
  return (await serve.redis.keys(`${serve.prefix}:inference:study-*`)).filter((k) => /:inference:study-[0-9.]+-[0-9a-f]{64}$/.test(k))
    .length;
}

beforeAll(async () => {
  serve = await ServeNode.open('e2e-study');
  nodePort = await freePort();
  httpPort = await freePort();
  study = await buildStudyFixture(join(serve.work, 'study'), P001_SUBSET);
  await serve.start({
    dicom: { aeTitle: 'MLSAM', host: '127.0.0.1', port: nodePort },
    // 40 slices of 2 mm: the thick reconstruction has 13 slabs, the chest subset covers 78 mm.
    series: { quietPeriodSeconds: 2, routing: { minSlices: 10 }, selection: { minCoverageMm: 50 } },
    http: { host: '127.0.0.1', port: httpPort },
  });
}, 180_000);

afterAll(async () => {
  await serve?.close();
});

describe.skipIf(!existsSync(P001))('a whole study forwarded as a PACS does', () => {
  let first: ResultRecord;

  it('accepts every instance in one association without --no-halt and scores the thin series only', async () => {
    const r = await storescu(study.files);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toMatch(/refused|No presentation context|E:/);
    const audit = await waitFor(
      async () => {
        const list = await api<Array<{ instances: number; unscored?: number }>>('/api/associations');
        return list.find((a) => a.instances === study.files.length);
      },
      20_000,
      'the association in the audit',
    );
    expect(audit.unscored).toBe(1);

    first = await waitFor(
      async () => {
        serve.checkRunning();
        const rec = await record(study.thin.seriesInstanceUid);
        return rec?.outputs?.length ? rec : undefined;
      },
      240_000,
      'the study result',
      500,
    );
    expect(first.status).toBe('scored');
    const kinds = first.outputs!.map((o) => o.kind).sort();
    expect(kinds.filter((k) => k === 'sr')).toHaveLength(1);
    expect(kinds.filter((k) => k === 'kos')).toHaveLength(1);
    expect(kinds.filter((k) => k === 'heatmap').length).toBeGreaterThan(0);
    await sleep(3_000);
    // Exactly one result set in the study: no other series has a record with result objects.
    const all = await records();
    expect(all.filter((x) => x.outputs?.length).map((x) => x.seriesInstanceUid)).toEqual([study.thin.seriesInstanceUid]);
    expect(await jobCount()).toBe(1);
  }, 300_000);

  it('says in the API and on the study page which series was used and why the others were not', async () => {
    const v = await api<StudyView>(`/api/studies/${study.studyInstanceUid}`);
    expect(v.seriesCount).toBe(5);
    expect(v.chosenSeries).toBe(study.thin.seriesInstanceUid);
    expect(v.status).toBe('scored');
    expect(v.score).toBeCloseTo(first.score!, 6);
    const role = (uid: string) => v.series.find((s) => s.seriesInstanceUid === uid)!;
    expect(role(study.thin.seriesInstanceUid)).toMatchObject({ role: 'chosen', status: 'scored' });
    expect(role(study.thick.seriesInstanceUid).role).toBe('candidate');
    expect(role(study.thick.seriesInstanceUid).reason).toMatch(/thin slices/);
    expect(role(study.coronal.seriesInstanceUid).role).toBe('ignored');
    expect(role(study.coronal.seriesInstanceUid).reason).toMatch(/reformat|not axial/);
    expect(role(study.localizer.seriesInstanceUid)).toMatchObject({ role: 'ignored' });
    expect(role(study.localizer.seriesInstanceUid).reason).toMatch(/LOCALIZER/);
    expect(role(study.dose.seriesInstanceUid).reason).toMatch(/Secondary Capture.*not scored/);
    const list = await api<StudyView[]>('/api/studies');
    expect(list.map((s) => s.studyInstanceUid)).toContain(study.studyInstanceUid);
    expect(await api<string>('/metrics')).toMatch(/mlsam_studies\{status="queued"\} 1/);
    const page = await api<string>(`/admin/studies/${study.studyInstanceUid}`);
    expect(page).toContain('candidate, not chosen');
    expect(page).toContain('NOT FOR DIAGNOSTIC USE');
    // The SR text names the series used and the ones not used.
    const sr = await run('dsrdump', ['+Pl', first.outputs!.find((o) => o.kind === 'sr')!.path]);
    expect(sr.stdout).toMatch(/One result for the study: computed on series 4/);
    expect(sr.stdout).toMatch(/Candidates not used: series 5/);
  }, 60_000);

  it('changes nothing when the study is sent again', async () => {
    const r = await storescu(study.files);
    expect(r.code, r.stderr).toBe(0);
    await sleep(8_000); // quiet period + settle
    const rec = await record(study.thin.seriesInstanceUid);
    expect(rec?.jobId).toBe(first.jobId);
    expect(rec?.outputs?.map((o) => o.sopInstanceUid)).toEqual(first.outputs!.map((o) => o.sopInstanceUid));
    expect(await jobCount()).toBe(1);
  }, 60_000);

  it('scores the study once more when a series is added later, naming the first SR as predecessor', async () => {
    const extra = await writeSyntheticSeries({
      dir: join(serve.work, 'extra'),
      count: 12,
      rows: 64,
      columns: 64,
      studyInstanceUid: study.studyInstanceUid,
      seriesNumber: 7,
      seriesDescription: 'Sag MPR 3.0',
      imageType: ['DERIVED', 'SECONDARY', 'REFORMATTED'],
      imageOrientationPatient: [0, 1, 0, 0, 0, -1],
    });
    const r = await storescu(extra.instances.map((i) => i.path));
    expect(r.code, r.stderr).toBe(0);
    const second = await waitFor(
      async () => {
        const rec = await record(study.thin.seriesInstanceUid);
        return rec && rec.jobId !== first.jobId && rec.outputs?.length ? rec : undefined;
      },
      240_000,
      'the rescored study',
      500,
    );
    const oldSr = first.outputs!.find((o) => o.kind === 'sr')!.sopInstanceUid;
    expect(second.outputs!.find((o) => o.kind === 'sr')!.sopInstanceUid).not.toBe(oldSr);
    expect(second.previous?.[0]?.srSopInstanceUid).toBe(oldSr);
    await sleep(8_000);
    expect(await jobCount()).toBe(2);
    const v = await api<StudyView>(`/api/studies/${study.studyInstanceUid}`);
    expect(v.seriesCount).toBe(6);
    expect(v.series.find((s) => s.seriesInstanceUid === extra.seriesInstanceUid)?.role).toBe('ignored');
  }, 300_000);
});
