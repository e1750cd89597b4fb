import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { instancesHash, studyInferenceJobId } from '../../src/queue/jobs.js';
import type { SeriesContent } from '../../src/queue/series-content.js';
import { summarizeSeries, type SelectableInstance } from '../../src/queue/series-selection.js';
import { decideStudy, roleFields, type StudySeries } from '../../src/queue/study-decision.js';

/**
 * The study settle's decision step on its own (no Redis): which series is scored for the study,
 * the job id and context, and what every series and the study record. The tracker's writing of it
 * is covered with Redis in tests/queue/series-tracker.test.ts and end to end in
 * tests/e2e/whole-study.test.ts.
 */
const config = loadConfig({ env: {} });
const routing = { ...config.series.routing, minSlices: 10 };
const rules = config.series.selection;
const STUDY = '1.2.826.0.1.3680043.9.7777.5';
const AXIAL = [1, 0, 0, 0, 1, 0];
const CORONAL = [1, 0, 0, 0, 0, -1];

function gathered(
  uid: string,
  n: number,
  o: { spacing?: number; number: string; iop?: number[]; imageType?: string[]; modality?: string },
): StudySeries {
  const iop = o.iop ?? AXIAL;
  const spacing = o.spacing ?? 1;
  const instances: SelectableInstance[] = Array.from({ length: n }, (_, i) => ({
    modality: o.modality ?? 'CT',
    bodyPartExamined: 'CHEST',
    imageType: o.imageType ?? ['ORIGINAL', 'PRIMARY', 'AXIAL'],
    sopClassUid: '1.2.840.10008.5.1.4.1.1.2',
    orientation: iop,
    position: iop === AXIAL ? [0, 0, -i * spacing] : [0, i * spacing, 0],
    sliceThickness: spacing,
    kernel: 'B30f',
    seriesNumber: o.number,
    seriesDescription: `series ${o.number}`,
  }));
  const sops = instances.map((_, i) => `${uid}.${i + 1}`);
  const content: SeriesContent = {
    key: `test:series:${uid}`,
    h: {},
    studyInstanceUid: STUDY,
    seriesDir: `/spool/${STUDY}/${uid}`,
    lastRaw: '1000',
    lastArrival: 1000,
    instances,
    hash: instancesHash(sops),
    instanceCount: n,
    firstReceivedAt: 900,
    lastReceivedAt: 1000,
  };
  return { uid, content, summary: summarizeSeries(uid, instances, routing) };
}

const thin = gathered(`${STUDY}.4`, 300, { spacing: 1, number: '4' });
const thick = gathered(`${STUDY}.5`, 60, { spacing: 5, number: '5' });
const coronal = gathered(`${STUDY}.6`, 120, { spacing: 2, number: '6', iop: CORONAL });
const localizer = gathered(`${STUDY}.1`, 2, { number: '1', imageType: ['ORIGINAL', 'PRIMARY', 'LOCALIZER'] });

describe('the study decision', () => {
  it('chooses the thin series, falls back to the thick one, and gives every other series its code and reason', () => {
    const d = decideStudy(STUDY, [coronal, thick, localizer, thin], {}, rules, 12345);
    expect(d.series.map((x) => x.uid)).toEqual([localizer.uid, thin.uid, thick.uid, coronal.uid]);
    expect(d.contentHash).toBe(instancesHash(d.series.map((x) => `${x.uid}:${x.content.hash}`)));
    expect(d.chosen?.uid).toBe(thin.uid);
    expect(d.noCandidate).toBe(false);
    expect(d.candidates).toBe(2);
    expect(d.jobId).toBe(studyInferenceJobId(STUDY, d.contentHash));
    expect(d.context?.fallback).toEqual([
      { seriesInstanceUid: thick.uid, seriesDir: thick.content.seriesDir, instanceCount: 60, instancesHash: thick.content.hash },
    ]);
    expect(d.context?.previousSeries).toBeUndefined();
    expect(d.context?.roles.map((r) => [r.seriesInstanceUid, r.role])).toEqual([
      [localizer.uid, 'ignored'],
      [thin.uid, 'chosen'],
      [thick.uid, 'candidate'],
      [coronal.uid, 'ignored'],
    ]);
    expect(d.studyFields).toEqual({
      status: 'queued',
      contentHash: d.contentHash,
      settledAt: '12345',
      seriesCount: '4',
      candidates: '2',
      noCandidate: '0',
      reason: '',
      chosenSeries: thin.uid,
      jobId: d.jobId,
    });
    const codes = Object.fromEntries(d.notChosen.map((x) => [x.series.uid, x.code]));
    expect(codes).toEqual({ [localizer.uid]: 'only-excluded-image-types', [thick.uid]: 'not-chosen', [coronal.uid]: 'not-candidate' });
    expect(d.notChosen.find((x) => x.series.uid === thick.uid)?.reason).toMatch(/thin slices/);
    expect(d.notChosen.find((x) => x.series.uid === coronal.uid)?.reason).toMatch(/not axial/);
  });

  it('gives the same content hash and job id whatever order the series were gathered in', () => {
    const a = decideStudy(STUDY, [thin, thick, coronal], {}, rules, 1);
    const b = decideStudy(STUDY, [coronal, thin, thick], {}, rules, 2);
    expect(b.contentHash).toBe(a.contentHash);
    expect(b.jobId).toBe(a.jobId);
    expect(decideStudy(STUDY, [thin, thick], {}, rules, 1).contentHash).not.toBe(a.contentHash);
  });

  it('names the series of the previous result when the choice moved to another series', () => {
    expect(decideStudy(STUDY, [thin, thick], { chosenSeries: thick.uid }, rules, 1).context?.previousSeries).toBe(thick.uid);
    expect(decideStudy(STUDY, [thin, thick], { chosenSeries: thin.uid }, rules, 1).context?.previousSeries).toBeUndefined();
  });

  it('lets the largest routable series report "not scored" when no series is a candidate', () => {
    const small = gathered(`${STUDY}.7`, 40, { spacing: 2, number: '7', iop: CORONAL });
    const d = decideStudy(STUDY, [small, coronal, localizer], {}, rules, 1);
    expect(d.chosen?.uid).toBe(coronal.uid);
    expect(d.noCandidate).toBe(true);
    expect(d.context).toMatchObject({ noCandidate: true, fallback: [] });
    expect(d.studyFields).toMatchObject({ status: 'queued', noCandidate: '1', candidates: '0', chosenSeries: coronal.uid });
    expect(d.studyFields.reason).toMatch(/no series of the study could be scored/);
    expect(d.notChosen.map((x) => x.series.uid).sort()).toEqual([localizer.uid, small.uid].sort());
  });

  it('ignores a study with nothing for this model: no job, every series with its routing reason', () => {
    const mr = gathered(`${STUDY}.8`, 30, { number: '8', modality: 'MR' });
    const d = decideStudy(STUDY, [mr, localizer], {}, rules, 1);
    expect(d.chosen).toBeUndefined();
    expect(d.jobId).toBeUndefined();
    expect(d.context).toBeUndefined();
    expect(d.studyFields.status).toBe('ignored');
    expect(d.studyFields.chosenSeries).toBeUndefined();
    expect(d.studyFields.reason).toMatch(/no series of the study is for this model/);
    expect(d.notChosen.map((x) => [x.series.uid, x.code])).toEqual([
      [localizer.uid, 'only-excluded-image-types'],
      [mr.uid, 'modality'],
    ]);
  });

  it('records the role and what selection saw in the series hash', () => {
    const d = decideStudy(STUDY, [thin, thick], {}, rules, 1);
    expect(roleFields(thick.summary, d.roles)).toMatchObject({
      role: 'candidate',
      seriesNumber: '5',
      seriesDescription: 'series 5',
      orientation: 'axial',
      kernel: 'B30f',
      sliceThicknessMm: '5',
      spacingMm: '5',
      coverageMm: '295',
    });
  });
});
