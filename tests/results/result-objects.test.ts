/**
 * The result objects of a real scored series (8 slices of covid-ct-md P001, scored by the shipped
 * model), as the pipeline gives them and with the fields the model work adds (region outlines,
 * opacity burden) seeded: dciodvfy finds no errors in the SR, the Key Object Selection and every
 * SC; the SR is TID 1500 as viewers read it (Image Library, a series group, one group per key slice
 * whose every number is INFERRED FROM a SCOORD selected from that CT slice); dcmj2pnm renders every
 * SC; patient/study attributes are the source's bytes; the UIDs and bytes are the same on a re-run;
 * a re-scored series names its old SR; a series not scored gets an SR saying why.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import dcmjs from 'dcmjs';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resultsDirFor } from '../../src/dicom/spool/spool-layout.js';
import { createLogger } from '../../src/log.js';
import type { ModelMetadata } from '../../src/model/metadata.js';
import type { OutputFile, ResultRecord } from '../../src/contracts/result-record.js';
import { COMPREHENSIVE_3D_SR, KEY_OBJECT_SELECTION, resultUids, SECONDARY_CAPTURE, writeResultObjects } from '../../src/results/index.js';
import { keyRegionGraphic } from '../../src/results/regions.js';
import { parseSourceInstance } from '../../src/results/source.js';
import { dumpDataset, run } from '../helpers/dcmtk.js';
import { repoRoot, scoredRecord, spoolP001, testConfig } from './helpers.js';
import { seedModelFields } from './seed.js';

const logger = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');
/** The objects this file checks (SR, KOS, SCs); the Segmentation and the presentation states: segmentation.test.ts. */
const baseConfig = (dir: string, results: Parameters<typeof testConfig>[1] = {}) =>
  testConfig(dir, { presentationStates: false, segmentation: false, ...results });
const tmp = mkdtempSync(path.join(tmpdir(), 'mlsam-results-'));
const spool = path.join(tmp, 'spool');
const artifacts = path.join(repoRoot, 'test-artifacts');
const INSTANCES = [40, 50, 60, 70, 80, 90, 100, 110];

let record: ResultRecord;
let meta: ModelMetadata;
let outputs: OutputFile[];

beforeAll(async () => {
  const { seriesDir, files } = await spoolP001(spool, INSTANCES);
  ({ record, meta } = await scoredRecord(seriesDir, files));
  outputs = await writeResultObjects(record, { config: baseConfig(spool), logger, metadata: meta });
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

// biome-ignore lint/suspicious/noExplicitAny: dcmjs's naturalized dataset is untyped nested JSON, read field by field below
type Naturalized = Record<string, any>;

function naturalized(file: string): Naturalized {
  const buf = readFileSync(file);
  const dict = dcmjs.data.DicomMessage.readFile(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length) as ArrayBuffer);
  return dcmjs.data.DicomMetaDictionary.naturalizeDataset(dict.dict) as Naturalized;
}

/** dciodvfy's complaints: errors, and warnings other than the local coding scheme (PS3.16 8.2 allows "99" designators; dciodvfy knows only registered ones). */
async function dciodvfy(file: string): Promise<{ errors: string[]; warnings: string[] }> {
  const r = await run('dciodvfy', [file]);
  const lines = (r.stdout + r.stderr)
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  return {
    errors: lines.filter((l) => l.startsWith('Error')),
    warnings: lines.filter((l) => l.startsWith('Warning') && !l.includes('<99MLSAM> for value 1 of attribute <Coding Scheme Designator>')),
  };
}

async function dsrdump(file: string): Promise<string> {
  const r = await run('dsrdump', ['+Pl', '+Pu', file]);
  expect(r.code, r.stderr).toBe(0);
  return r.stdout;
}

describe('result objects of a scored series', () => {
  it('writes the SR, the Key Object Selection, a heatmap per key slice and the summary into the results folder', () => {
    const dir = resultsDirFor(spool, record.studyInstanceUid, record.seriesInstanceUid, record.instancesHash, record.model.version);
    expect(outputs.map((o) => o.kind)).toEqual(['sr', 'kos', 'heatmap', 'heatmap', 'heatmap', 'heatmap', 'heatmap', 'summary']);
    expect(outputs.map((o) => path.basename(o.path))).toEqual([
      'sr.dcm',
      'kos.dcm',
      'heatmap-01.dcm',
      'heatmap-02.dcm',
      'heatmap-03.dcm',
      'heatmap-04.dcm',
      'heatmap-05.dcm',
      'summary.dcm',
    ]);
    for (const o of outputs) expect(path.dirname(o.path)).toBe(dir);
    expect(readdirSync(dir).sort()).toEqual(outputs.map((o) => path.basename(o.path)).sort());
    const uids = resultUids({
      seriesInstanceUid: record.seriesInstanceUid,
      instancesHash: record.instancesHash,
      modelVersion: record.model.version,
    });
    expect(outputs[0]).toMatchObject({ sopClassUid: COMPREHENSIVE_3D_SR, sopInstanceUid: uids.sr, seriesInstanceUid: uids.srSeries });
    expect(outputs[1]).toMatchObject({ sopClassUid: KEY_OBJECT_SELECTION, sopInstanceUid: uids.kos, seriesInstanceUid: uids.kosSeries });
    outputs.slice(2, 7).forEach((o, i) => {
      expect(o).toMatchObject({
        sopClassUid: SECONDARY_CAPTURE,
        seriesInstanceUid: uids.scSeries,
        sourceSopInstanceUid: record.keySlices[i]!.sopInstanceUid,
      });
      expect(o.sopInstanceUid).toBe(uids.heatmap(record.keySlices[i]!.sopInstanceUid));
    });
    expect(outputs[7]).toMatchObject({ sopInstanceUid: uids.summary, seriesInstanceUid: uids.scSeries });
    const all = outputs.flatMap((o) => [o.sopInstanceUid, o.seriesInstanceUid]);
    for (const u of all) expect(u).toMatch(/^2\.25\.[1-9][0-9]{0,38}$/);
    expect(new Set(outputs.map((o) => o.sopInstanceUid)).size).toBe(outputs.length);
    expect(new Set([uids.srSeries, uids.scSeries, uids.kosSeries]).size).toBe(3);
  });

  it('dciodvfy finds no errors and no unexpected warnings in the SR and every SC', async () => {
    for (const o of outputs) {
      const v = await dciodvfy(o.path);
      expect(v.errors, `${path.basename(o.path)}: ${v.errors.join('\n')}`).toEqual([]);
      expect(v.warnings, `${path.basename(o.path)}: ${v.warnings.join('\n')}`).toEqual([]);
    }
  });

  it('dsrdump shows the report as TID 1500 lays it out: image library, series group, one group per key slice', async () => {
    const text = await dsrdump(outputs[0]!.path);
    expect(text).toContain('Comprehensive 3D SR Document');
    expect(text).toContain('Verification Flag   : UNVERIFIED');
    expect(text).toContain('NOT FOR DIAGNOSTIC USE');
    // the pattern of the opacity's distribution: an automated description with its rule, never a diagnosis
    expect(record.pattern?.rule).toBe('rsna-distribution-v1');
    expect(text).toContain(
      `<contains TEXT:(,,"Automated pattern description")="Automated pattern description (rule rsna-distribution-v1; describes the measured opacity, not a diagnosis): `,
    );
    expect(text).toMatch(/(typical|indeterminate|atypical) COVID-19 appearance|no opacity/);
    expect(text).toContain('<CONTAINER:(,,"Imaging Measurement Report")=SEPARATE>');
    // Image Library (TID 1600): the CT slices the measurements point at, key slices best first.
    const library = text.slice(text.indexOf('"Image Library")'), text.indexOf('"Imaging Measurements")'));
    expect(library).toContain('<has acq context CODE:(,,"Modality")=(CT,DCM,"Computed Tomography")>');
    expect([...library.matchAll(/<contains IMAGE:=\(CT image,"([0-9.]+)"\)>/g)].map((m) => m[1])).toEqual(
      record.keySlices.map((k) => k.sopInstanceUid),
    );
    const groups = text.split('<contains CONTAINER:(,,"Measurement Group")=SEPARATE>').slice(1);
    // the series, each key slice, then the six lung zones (HU series)
    expect(groups).toHaveLength(1 + record.keySlices.length + (record.zones ? 6 : 0));
    // The series group: category inferred from the probability and threshold, algorithm, the analysed regions.
    const series = groups[0]!;
    expect(series).toContain(`<has concept mod TEXT:(,,"Algorithm Name")="${record.model.name}">`);
    expect(series).toContain(`<has concept mod TEXT:(,,"Algorithm Version")="${record.model.version}">`);
    expect(series).toContain('<contains CODE:(,,"Finding")=(840539006,SCT,"COVID-19")>');
    expect(series).toMatch(new RegExp(`<contains CODE:\\(,,"AI result category"\\)=\\(${record.category!.toUpperCase()},99MLSAM,`));
    expect(series).toContain(
      `<inferred from NUM:(,,"Series probability")="${Number((record.score! * 100).toFixed(2))}" (%,UCUM,"percent")>`,
    );
    expect(series).toContain(
      `<inferred from NUM:(,,"Decision threshold")="${Number((record.threshold! * 100).toFixed(2))}" (%,UCUM,"percent")>`,
    );
    expect(series.match(/<contains SCOORD:\(,,"Image Region"\)=\(POLYLINE,/g)?.length).toBe(Math.min(record.k!, record.keySlices.length));
    // One group per key slice, best first: every number INFERRED FROM a SCOORD selected from that CT slice.
    record.keySlices.forEach((k, i) => {
      const g = groups[i + 1]!;
      const instance = record.slices.find((s) => s.sopInstanceUid === k.sopInstanceUid)!.instanceNumber;
      expect(g).toContain(
        `<has obs context TEXT:(,,"Tracking Identifier")="Key slice ${i + 1} of ${record.keySlices.length}, instance ${instance}">`,
      );
      // The category with the band it comes from (issue 26), e.g. "indeterminate (0.35-0.65)".
      const lo = (record.threshold! - record.indeterminateMargin!).toFixed(2);
      const hi = (record.threshold! + record.indeterminateMargin!).toFixed(2);
      const band = record.category === 'likely' ? `${hi} or above` : record.category === 'unlikely' ? `${lo} or below` : `${lo}-${hi}`;
      expect(g).toContain(`<contains TEXT:(,,"Comment")="Series ${record.score!.toFixed(3)}: ${record.category} (${band})">`);
      expect(g).toContain(`<contains NUM:(,,"Slice probability")="${Number((k.probability * 100).toFixed(2))}" (%,UCUM,"percent")>`);
      const nums = g.split('<contains NUM:').slice(1);
      expect(nums.length).toBeGreaterThanOrEqual(1);
      for (const n of nums) {
        expect(n).toMatch(
          /^\S[^\n]*\n\s*<inferred from SCOORD:\(,,"Source of Measurement"\)=\((POINT|POLYLINE),[^)]*\)>\n\s*<selected from IMAGE:=\(CT image,"([0-9.]+)"\)>/,
        );
        expect(/<selected from IMAGE:=\(CT image,"([0-9.]+)"\)>/.exec(n)![1]).toBe(k.sopInstanceUid);
      }
      // As the model work gives it: an outline, else a peak, else the attention peak (never absent).
      const slice = record.slices.find((s) => s.sopInstanceUid === k.sopInstanceUid)!;
      const src = naturalized(slice.file);
      const expected = keyRegionGraphic(k, { columns: src.Columns, rows: src.Rows });
      expect(nums[0]).toContain(`=(${expected.graphicType},`);
      if (!k.region && k.attention) expect(expected.source).toBe('attention peak');
      expect(g.includes('"Opacity, % of lung on slice"')).toBe(k.opacityPercent !== undefined);
    });
    expect(text.includes('"Opacity, % of lung volume"')).toBe(record.opacity !== undefined);
    const ds = naturalized(outputs[0]!.path);
    expect(ds.SeriesDescription).toContain('NOT FOR DIAGNOSTIC USE');
    expect(ds.SeriesDescription).toContain(`${record.model.name} ${record.model.version}`);
    expect(ds.CompletionFlag).toBe('COMPLETE');
    expect(ds.ContentTemplateSequence[0]).toMatchObject({ MappingResource: 'DCMR', TemplateIdentifier: '1500' });
    const ce = ds.ContributingEquipmentSequence[0];
    expect(ce).toMatchObject({
      Manufacturer: 'mlsam-node',
      ManufacturerModelName: record.model.name,
      SoftwareVersions: record.model.version,
    });
    expect(ce.PurposeOfReferenceCodeSequence[0]).toMatchObject({ CodeMeaning: 'Processing Algorithm' });
  });

  it('the Key Object Selection flags the key slices "Of Interest", best first, in its own KO series', async () => {
    const kos = outputs.find((o) => o.kind === 'kos')!;
    const text = await dsrdump(kos.path);
    expect(text).toContain('Key Object Selection Document');
    expect(text).toContain('<CONTAINER:(,,"Of Interest")=SEPARATE>');
    expect(text).toContain('<contains TEXT:(,,"Key Object Description")="NOT FOR DIAGNOSTIC USE.');
    expect([...text.matchAll(/<contains IMAGE:=\(CT image,"([0-9.]+)"\)>/g)].map((m) => m[1])).toEqual(
      record.keySlices.map((k) => k.sopInstanceUid),
    );
    const ds = naturalized(kos.path);
    expect(ds).toMatchObject({
      Modality: 'KO',
      SOPClassUID: KEY_OBJECT_SELECTION,
      StudyInstanceUID: record.studyInstanceUid,
      SeriesNumber: 8000 + naturalized(record.slices[0]!.file).SeriesNumber,
    });
    expect(ds.SeriesDescription).toBe(`AI key slices ${record.model.name} ${record.model.version} - NOT FOR DIAGNOSTIC USE`);
    expect(ds.ContentTemplateSequence[0]).toMatchObject({ MappingResource: 'DCMR', TemplateIdentifier: '2010' });
    const ev = ds.CurrentRequestedProcedureEvidenceSequence[0];
    expect(ev.ReferencedSeriesSequence[0].SeriesInstanceUID).toBe(record.seriesInstanceUid);
    expect(ev.ReferencedSeriesSequence[0].ReferencedSOPSequence.map((r: Naturalized) => r.ReferencedSOPInstanceUID)).toEqual(
      record.keySlices.map((k) => k.sopInstanceUid),
    );
    // Turned off: no KO object, the others unchanged.
    const off = await writeResultObjects(structuredClone(record), {
      config: baseConfig(path.join(tmp, 'spool-nokos'), { keyObjectSelection: false }),
      logger,
      metadata: meta,
    });
    expect(off.map((o) => o.kind)).toEqual(outputs.map((o) => o.kind).filter((k) => k !== 'kos'));
    expect(off.map((o) => o.sopInstanceUid)).toEqual(outputs.filter((o) => o.kind !== 'kos').map((o) => o.sopInstanceUid));
  });

  it('the evidence lists every scored instance; patient and study attributes are the source bytes', () => {
    const ds = naturalized(outputs[0]!.path);
    const ev = ds.CurrentRequestedProcedureEvidenceSequence;
    expect(ev).toHaveLength(1);
    expect(ev[0].StudyInstanceUID).toBe(record.studyInstanceUid);
    expect(ev[0].ReferencedSeriesSequence[0].SeriesInstanceUID).toBe(record.seriesInstanceUid);
    const refs = ev[0].ReferencedSeriesSequence[0].ReferencedSOPSequence.map((r: Naturalized) => r.ReferencedSOPInstanceUID).sort();
    expect(refs).toEqual(record.slices.map((s) => s.sopInstanceUid).sort());
    expect(ds.PredecessorDocumentsSequence).toBeUndefined();

    const src = parseSourceInstance(readFileSync(record.slices[0]!.file));
    expect(src.copied.size).toBeGreaterThan(8); // Specific Character Set, Patient ID, Sex, Age, study date/time/UID/ID...
    for (const o of outputs) {
      const out = parseSourceInstance(readFileSync(o.path));
      for (const [tag, bytes] of src.copied) {
        expect(out.copied.get(tag)?.equals(bytes), `${o.kind} ${tag.toString(16)}`).toBe(true);
      }
    }
    expect(src.copied.has(0x00080005)).toBe(true); // ISO_IR 100 copied with the strings it governs
  });

  it('dcmj2pnm renders every SC as 8-bit RGB at the source resolution (heatmap kept in test-artifacts/)', async () => {
    mkdirSync(artifacts, { recursive: true });
    for (const o of outputs.filter((x) => x.kind === 'heatmap' || x.kind === 'summary')) {
      const png = path.join(tmp, `${path.basename(o.path, '.dcm')}.png`);
      const r = await run('dcmj2pnm', ['--write-png', '-il', o.path, png]);
      expect(r.code, r.stderr).toBe(0);
      const m = await sharp(png).metadata();
      expect(m.channels).toBe(3);
      const ds = naturalized(o.path);
      // Modality CT (the source's), not OT: viewers play OT series as cine loops.
      expect(ds).toMatchObject({
        SamplesPerPixel: 3,
        PhotometricInterpretation: 'RGB',
        BitsAllocated: 8,
        BurnedInAnnotation: 'YES',
        Modality: 'CT',
      });
      expect(ds.SeriesDescription).toContain('NOT FOR DIAGNOSTIC USE');
      expect(ds.StudyInstanceUID).toBe(record.studyInstanceUid);
      if (o.kind === 'heatmap') {
        const source = naturalized(record.slices.find((s) => s.sopInstanceUid === o.sourceSopInstanceUid)!.file);
        expect([m.width, m.height]).toEqual([source.Columns, source.Rows]);
        expect(ds.SourceImageSequence).toHaveLength(1);
        expect(ds.SourceImageSequence[0]).toMatchObject({
          ReferencedSOPClassUID: source.SOPClassUID,
          ReferencedSOPInstanceUID: o.sourceSopInstanceUid,
        });
        expect(ds.PatientOrientation).toEqual(['L', 'P']);
        // the attention map is blended in colour: a good share of the pixels are not gray
        const { data } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
        let colour = 0;
        for (let i = 0; i < data.length; i += 3) if (Math.abs(data[i]! - data[i + 2]!) > 40) colour++;
        expect(colour / (data.length / 3)).toBeGreaterThan(0.02);
        if (o.path.endsWith('heatmap-01.dcm')) copyFileSync(png, path.join(artifacts, 'results-heatmap-01.png'));
      } else {
        expect([m.width, m.height]).toEqual([1024, 576]);
        copyFileSync(png, path.join(artifacts, 'results-summary.png'));
      }
    }
    expect(existsSync(path.join(artifacts, 'results-heatmap-01.png'))).toBe(true);
  });

  it('the same record gives the same UIDs and identical bytes, in place and in another spool', async () => {
    const before = outputs.map((o) => ({ bytes: readFileSync(o.path), mtime: statSync(o.path).mtimeMs }));
    const again = await writeResultObjects(structuredClone(record), { config: baseConfig(spool), logger, metadata: meta });
    expect(again).toEqual(outputs);
    again.forEach((o, i) => {
      expect(readFileSync(o.path).equals(before[i]!.bytes)).toBe(true);
      expect(statSync(o.path).mtimeMs).toBe(before[i]!.mtime); // identical content is not rewritten
    });
    // a retried job: same content, a later run; the objects keep their date and time, so their bytes
    const retried = {
      ...structuredClone(record),
      startedAt: '2026-11-27T08:00:00.000Z',
      finishedAt: '2026-11-27T08:00:05.000Z',
      attemptsMade: 2,
    };
    const again2 = await writeResultObjects(retried, { config: baseConfig(spool), logger, metadata: meta });
    for (const [i, o] of again2.entries()) expect(readFileSync(o.path).equals(before[i]!.bytes), o.path).toBe(true);
    const spool2 = path.join(tmp, 'spool2');
    const other = await writeResultObjects(structuredClone(record), { config: baseConfig(spool2), logger, metadata: meta });
    expect(other.map((o) => o.sopInstanceUid)).toEqual(outputs.map((o) => o.sopInstanceUid));
    for (const [i, o] of other.entries()) expect(readFileSync(o.path).equals(before[i]!.bytes), o.path).toBe(true);
    // fewer heatmaps configured: the extra files of the earlier run go, UIDs stay
    const fewer = await writeResultObjects(structuredClone(record), {
      config: baseConfig(spool2, { heatmapSlices: 2, summaryImage: false }),
      logger,
      metadata: meta,
    });
    expect(fewer.map((o) => o.sopInstanceUid)).toEqual(outputs.slice(0, 4).map((o) => o.sopInstanceUid));
    expect(readdirSync(path.dirname(fewer[0]!.path)).sort()).toEqual(['heatmap-01.dcm', 'heatmap-02.dcm', 'kos.dcm', 'sr.dcm']);
  });

  it('a series that grew is scored again and its new SR names the old one as predecessor', async () => {
    const { files } = await spoolP001(spool, [...INSTANCES, 120]);
    const { record: grown } = await scoredRecord(record.seriesDir, files);
    expect(grown.instancesHash).not.toBe(record.instancesHash);
    grown.previous = [
      {
        instancesHash: record.instancesHash,
        modelVersion: record.model.version,
        srSopInstanceUid: outputs[0]!.sopInstanceUid,
        srSeriesInstanceUid: outputs[0]!.seriesInstanceUid,
        finishedAt: record.finishedAt,
      },
    ];
    const out2 = await writeResultObjects(grown, { config: baseConfig(spool, { heatmapSlices: 1 }), logger, metadata: meta });
    expect(out2[0]!.sopInstanceUid).not.toBe(outputs[0]!.sopInstanceUid);
    expect(path.dirname(out2[0]!.path)).not.toBe(path.dirname(outputs[0]!.path));
    const ds = naturalized(out2[0]!.path);
    expect(ds.PredecessorDocumentsSequence).toHaveLength(1);
    const p = ds.PredecessorDocumentsSequence[0];
    expect(p.StudyInstanceUID).toBe(record.studyInstanceUid);
    expect(p.ReferencedSeriesSequence[0].SeriesInstanceUID).toBe(outputs[0]!.seriesInstanceUid);
    expect(p.ReferencedSeriesSequence[0].ReferencedSOPSequence[0]).toMatchObject({
      ReferencedSOPClassUID: COMPREHENSIVE_3D_SR,
      ReferencedSOPInstanceUID: outputs[0]!.sopInstanceUid,
    });
    expect(ds.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0].ReferencedSOPSequence).toHaveLength(9);
    const v = await dciodvfy(out2[0]!.path);
    expect(v.errors).toEqual([]);
    expect(v.warnings).toEqual([]);
  });
});

describe('the result objects with the fields the model work adds (seeded)', () => {
  it('the SR outlines each key slice region, gives its opacity and area, and the series opacity burden per lung; dciodvfy stays clean', async () => {
    const seeded = seedModelFields(record);
    const out = await writeResultObjects(seeded, { config: baseConfig(path.join(tmp, 'spool-seeded')), logger, metadata: meta });
    expect(out.map((o) => o.kind)).toEqual(outputs.map((o) => o.kind));
    // Same content, same model: the same UIDs as without the extra fields.
    expect(out.map((o) => o.sopInstanceUid)).toEqual(outputs.map((o) => o.sopInstanceUid));
    for (const o of out.filter((x) => x.kind === 'sr' || x.kind === 'kos')) {
      const v = await dciodvfy(o.path);
      expect(v.errors, v.errors.join('\n')).toEqual([]);
      expect(v.warnings, v.warnings.join('\n')).toEqual([]);
    }
    const text = await dsrdump(out[0]!.path);
    const groups = text.split('<contains CONTAINER:(,,"Measurement Group")=SEPARATE>').slice(1);
    const o = seeded.opacity!;
    const series = groups[0]!;
    expect(series).toContain('<contains CODE:(,,"Finding")=(840539006,SCT,"COVID-19")>');
    for (const [site, m] of [
      ['(39607008,SCT,"Lung")', o.total],
      ['(3341006,SCT,"Right lung")', o.right],
      ['(44029006,SCT,"Left lung")', o.left],
    ] as const) {
      const esc = (t: string) => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      expect(series).toMatch(
        new RegExp(
          `${esc(`<has properties NUM:(,,"Opacity, % of lung volume")="${m.percentOpacity}" (%,UCUM,"percent")>`)}\\n\\s*${esc(`<has concept mod CODE:(,,"Finding Site")=${site}>`)}`,
        ),
      );
      expect(series).toContain(`<has properties NUM:(,,"Opacity volume")="${m.opacityMl}" (ml,UCUM,"milliliter")>`);
      expect(series).toContain(`<has properties NUM:(,,"Volume")="${m.lungMl}" (ml,UCUM,"milliliter")>`);
    }
    expect(series).toContain(
      `<inferred from NUM:(,,"Series probability, CNN only")="${Number((seeded.cnnScore! * 100).toFixed(2))}" (%,UCUM,"percent")>`,
    );
    expect(series).toContain(
      'fusion=cnn+opacity; opacity=hu-threshold-v1 (opacity HU -700..-100, high opacity HU -100..100, slice thickness 5 mm, ground-glass opening 2.7 mm)',
    );
    // thick slices: the summary says the measurement is coarser there
    expect(text).toContain(
      'Measured on 5 mm slices (ground-glass opening widened to 2.7 mm): partial volume makes opacity less exact than on thin slices.',
    );
    seeded.keySlices.forEach((k, i) => {
      const g = groups[i + 1]!;
      expect(g).toContain(
        `<contains TEXT:(,,"Comment")="Lungs: opacity ${o.total.percentOpacity.toFixed(1)} %, high ${o.total.percentHighOpacity.toFixed(1)} %">`,
      );
      expect(g).toContain(`<contains NUM:(,,"Opacity, % of lung on slice")="${k.opacityPercent}" (%,UCUM,"percent")>`);
      expect(g).toContain(`<contains NUM:(,,"High opacity, % of lung on slice")="${k.highOpacityPercent}" (%,UCUM,"percent")>`);
      expect(g).toContain(`<contains NUM:(,,"Area")="${k.region!.polygonAreaMm2}" (mm2,UCUM,"square millimeter")>`);
      expect(g).toContain(
        `<contains NUM:(,,"Slice probability, CNN only")="${Number((k.cnnProbability! * 100).toFixed(2))}" (%,UCUM,"percent")>`,
      );
      // the outline, point for point (FL values; dsrdump prints x/y pairs)
      const pairs = [];
      for (let j = 0; j < k.region!.polygon!.length; j += 2) pairs.push(`${k.region!.polygon![j]}/${k.region!.polygon![j + 1]}`);
      expect(g.split(`<inferred from SCOORD:(,,"Source of Measurement")=(POLYLINE,${pairs.join(',')})>`).length - 1).toBe(5);
    });
  });
});

describe('a series that was not scored', () => {
  it('gets an SR stating why (when configured), and nothing otherwise', async () => {
    const nsSpool = path.join(tmp, 'spool-ns');
    const { seriesDir, files } = await spoolP001(nsSpool, [30, 31]);
    const ns: ResultRecord = {
      ...record,
      seriesDir,
      status: 'not-scored',
      reason: 'too few axial slices (2 < 20)',
      score: undefined,
      category: undefined,
      threshold: undefined,
      k: undefined,
      slices: [],
      keySlices: [],
      instanceCount: 2,
      instancesHash: 'a'.repeat(64),
      dropped: [],
    };
    const out = await writeResultObjects(ns, { config: baseConfig(nsSpool), logger, metadata: meta });
    expect(out.map((o) => o.kind)).toEqual(['sr']);
    const uids = resultUids({ seriesInstanceUid: ns.seriesInstanceUid, instancesHash: ns.instancesHash, modelVersion: ns.model.version });
    expect(out[0]!.sopInstanceUid).toBe(uids.srNotScored);
    const text = await dsrdump(out[0]!.path);
    // Nothing measured: a Basic Diagnostic Imaging Report (TID 2000), which viewers show as text.
    expect(text).toContain('<CONTAINER:(,,"Diagnostic Imaging Report")=SEPARATE>');
    expect(text).toContain('<contains CONTAINER:(,,"Findings")=SEPARATE>');
    expect(text).toContain('<contains CODE:(,,"AI result status")=(NOT-SCORED,99MLSAM,"Not scored")>');
    expect(naturalized(out[0]!.path).ContentTemplateSequence[0]).toMatchObject({ MappingResource: 'DCMR', TemplateIdentifier: '2000' });
    expect(text).toContain('="Not scored: too few axial slices (2 < 20).">');
    expect(text).toContain(`<contains TEXT:(,,"Algorithm Name")="${record.model.name}">`);
    expect(text).toContain('NOT FOR DIAGNOSTIC USE');
    expect(text).not.toContain('Measurement Group');
    const v = await dciodvfy(out[0]!.path);
    expect(v.errors).toEqual([]);
    expect(v.warnings).toEqual([]);
    const ds = naturalized(out[0]!.path);
    const refs = ds.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0].ReferencedSOPSequence.map(
      (r: Naturalized) => r.ReferencedSOPInstanceUID,
    ).sort();
    expect(refs).toEqual(files.map((f) => path.basename(f, '.dcm')).sort());

    const off = path.join(tmp, 'spool-ns-off');
    expect(await writeResultObjects(ns, { config: baseConfig(off, { reportNotScored: false }), logger })).toEqual([]);
    expect(await writeResultObjects({ ...ns, status: 'failed' }, { config: baseConfig(off), logger })).toEqual([]);
    expect(existsSync(path.join(off, 'results'))).toBe(false);
  });
});

describe('copying patient and study modules from an Implicit VR Little Endian source', () => {
  it('re-encodes them (sequences included) with the same values as from the explicit source', async () => {
    const dir = path.join(tmp, 'implicit');
    mkdirSync(dir, { recursive: true });
    const withSeq = path.join(dir, 'with-seq.dcm');
    const src = record.slices[0]!.file;
    copyFileSync(src, withSeq);
    // an Other Patient IDs Sequence and a Referenced Study Sequence: nested content to re-encode
    execFileSync('dcmodify', [
      '-nb',
      '-i',
      '(0010,1002)[0].(0010,0020)=ALT-42',
      '-i',
      '(0010,1002)[0].(0010,0022)=TEXT',
      '-i',
      '(0008,1110)[0].(0008,1150)=1.2.840.10008.3.1.2.3.1',
      '-i',
      '(0008,1110)[0].(0008,1155)=1.2.3.4.5',
      withSeq,
    ]);
    const explicitFile = path.join(dir, 'explicit.dcm');
    const implicitFile = path.join(dir, 'implicit.dcm');
    execFileSync('dcmdjpeg', ['+te', withSeq, explicitFile]);
    execFileSync('dcmdjpeg', ['+ti', withSeq, implicitFile]);
    const srFrom = async (file: string, name: string) => {
      const r = { ...record, slices: record.slices.map((s, i) => (i === 0 ? { ...s, file } : s)) };
      const out = await writeResultObjects(r, {
        config: baseConfig(path.join(tmp, name), { heatmapSlices: 0, summaryImage: false }),
        logger,
        metadata: meta,
      });
      return out[0]!.path;
    };
    const a = await srFrom(explicitFile, 'spool-explicit');
    const b = await srFrom(implicitFile, 'spool-implicit');
    const dumpA = await dumpDataset(a, { ignoreEncoding: true });
    expect(dumpA).toContain('ALT-42');
    expect(dumpA).toContain('(0008,1110) SQ');
    expect(await dumpDataset(b, { ignoreEncoding: true })).toBe(dumpA);
    const v = await dciodvfy(b);
    expect(v.errors).toEqual([]);
  });
});
