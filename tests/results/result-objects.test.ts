/**
 * The result objects of a real scored series (8 slices of covid-ct-md P001, scored by the shipped
 * model): dciodvfy finds no errors in the SR and every SC, dsrdump shows the content, dcmj2pnm
 * renders every SC, patient/study attributes are the source's bytes, the UIDs and bytes are the
 * same on a re-run, a re-scored series names its old SR, and a series not scored gets an SR saying why.
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
import type { OutputFile, ResultRecord } from '../../src/queue/result-record.js';
import { COMPREHENSIVE_3D_SR, resultUids, SECONDARY_CAPTURE, writeResultObjects } from '../../src/results/index.js';
import { parseSourceInstance } from '../../src/results/source.js';
import { dumpDataset, run } from '../helpers/dcmtk.js';
import { repoRoot, scoredRecord, spoolP001, testConfig } from './helpers.js';

const logger = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');
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
  outputs = await writeResultObjects(record, { config: testConfig(spool), logger, metadata: meta });
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function naturalized(file: string): Record<string, any> {
  const buf = readFileSync(file);
  const dict = dcmjs.data.DicomMessage.readFile(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length) as ArrayBuffer);
  return dcmjs.data.DicomMetaDictionary.naturalizeDataset(dict.dict) as Record<string, any>;
}

/** dciodvfy's complaints: errors, and warnings other than the local coding scheme (PS3.16 8.2 allows "99" designators; dciodvfy knows only registered ones). */
async function dciodvfy(file: string): Promise<{ errors: string[]; warnings: string[] }> {
  const r = await run('dciodvfy', [file]);
  const lines = (r.stdout + r.stderr).split('\n').map((l) => l.trim()).filter(Boolean);
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
  it('writes one SR, a heatmap per key slice and the summary into the results folder', () => {
    const dir = resultsDirFor(spool, record.studyInstanceUid, record.seriesInstanceUid, record.instancesHash, record.model.version);
    expect(outputs.map((o) => o.kind)).toEqual(['sr', 'heatmap', 'heatmap', 'heatmap', 'heatmap', 'heatmap', 'summary']);
    expect(outputs.map((o) => path.basename(o.path))).toEqual(['sr.dcm', 'heatmap-01.dcm', 'heatmap-02.dcm', 'heatmap-03.dcm', 'heatmap-04.dcm', 'heatmap-05.dcm', 'summary.dcm']);
    for (const o of outputs) expect(path.dirname(o.path)).toBe(dir);
    expect(readdirSync(dir).sort()).toEqual(outputs.map((o) => path.basename(o.path)).sort());
    const uids = resultUids({ seriesInstanceUid: record.seriesInstanceUid, instancesHash: record.instancesHash, modelVersion: record.model.version });
    expect(outputs[0]).toMatchObject({ sopClassUid: COMPREHENSIVE_3D_SR, sopInstanceUid: uids.sr, seriesInstanceUid: uids.srSeries });
    outputs.slice(1, 6).forEach((o, i) => {
      expect(o).toMatchObject({ sopClassUid: SECONDARY_CAPTURE, seriesInstanceUid: uids.scSeries, sourceSopInstanceUid: record.keySlices[i]!.sopInstanceUid });
      expect(o.sopInstanceUid).toBe(uids.heatmap(record.keySlices[i]!.sopInstanceUid));
    });
    expect(outputs[6]).toMatchObject({ sopInstanceUid: uids.summary, seriesInstanceUid: uids.scSeries });
    const all = outputs.flatMap((o) => [o.sopInstanceUid, o.seriesInstanceUid]);
    for (const u of all) expect(u).toMatch(/^2\.25\.[1-9][0-9]{0,38}$/);
    expect(new Set(outputs.map((o) => o.sopInstanceUid)).size).toBe(outputs.length);
    expect(uids.srSeries).not.toBe(uids.scSeries);
  });

  it('dciodvfy finds no errors and no unexpected warnings in the SR and every SC', async () => {
    for (const o of outputs) {
      const v = await dciodvfy(o.path);
      expect(v.errors, `${path.basename(o.path)}: ${v.errors.join('\n')}`).toEqual([]);
      expect(v.warnings, `${path.basename(o.path)}: ${v.warnings.join('\n')}`).toEqual([]);
    }
  });

  it('dsrdump shows score, category, threshold, algorithm, key slices and NOT FOR DIAGNOSTIC USE', async () => {
    const text = await dsrdump(outputs[0]!.path);
    expect(text).toContain('Comprehensive 3D SR Document');
    expect(text).toContain('Verification Flag   : UNVERIFIED');
    expect(text).toContain('NOT FOR DIAGNOSTIC USE');
    expect(text).toContain('<CONTAINER:(,,"Imaging Measurement Report")=SEPARATE>');
    expect(text).toContain('<contains CONTAINER:(,,"Measurement Group")=SEPARATE>');
    expect(text).toContain(`<has obs context TEXT:(,,"Algorithm Name")="${record.model.name}">`);
    expect(text).toContain(`<has obs context TEXT:(,,"Algorithm Version")="${record.model.version}">`);
    expect(text).toContain('<has concept mod CODE:(,,"Finding")=(840539006,SCT,"COVID-19")>');
    expect(text).toContain(`<contains NUM:(,,"COVID-19 pattern probability, series")="${Number(record.score!.toFixed(4))}" (1,UCUM,"no units")>`);
    expect(text).toContain(`<contains NUM:(,,"Decision threshold")="${Number(record.threshold!.toFixed(4))}" (1,UCUM,"no units")>`);
    expect(text).toMatch(new RegExp(`<contains CODE:\\(,,"AI result category"\\)=\\(${record.category!.toUpperCase()},99MLSAM,`));
    // key slices, best first, each a NUM inferred from the CT image
    const keys = [...text.matchAll(/<contains NUM:\(,,"COVID-19 pattern probability, slice"\)="([0-9.]+)"[^\n]*\n\s*<inferred from IMAGE:\(,,"Source of Measurement"\)=\(CT image,"([0-9.]+)"\)>/g)];
    expect(keys.map((m) => [Number(m[1]), m[2]])).toEqual(record.keySlices.map((k) => [Number(k.probability.toFixed(4)), k.sopInstanceUid]));
    const ds = naturalized(outputs[0]!.path);
    expect(ds.SeriesDescription).toContain('NOT FOR DIAGNOSTIC USE');
    expect(ds.SeriesDescription).toContain(`${record.model.name} ${record.model.version}`);
    expect(ds.CompletionFlag).toBe('COMPLETE');
    expect(ds.ContentTemplateSequence[0]).toMatchObject({ MappingResource: 'DCMR', TemplateIdentifier: '1500' });
    const ce = ds.ContributingEquipmentSequence[0];
    expect(ce).toMatchObject({ Manufacturer: 'mlsam-node', ManufacturerModelName: record.model.name, SoftwareVersions: record.model.version });
    expect(ce.PurposeOfReferenceCodeSequence[0]).toMatchObject({ CodeMeaning: 'Processing Algorithm' });
  });

  it('the evidence lists every scored instance; patient and study attributes are the source bytes', () => {
    const ds = naturalized(outputs[0]!.path);
    const ev = ds.CurrentRequestedProcedureEvidenceSequence;
    expect(ev).toHaveLength(1);
    expect(ev[0].StudyInstanceUID).toBe(record.studyInstanceUid);
    expect(ev[0].ReferencedSeriesSequence[0].SeriesInstanceUID).toBe(record.seriesInstanceUid);
    const refs = ev[0].ReferencedSeriesSequence[0].ReferencedSOPSequence.map((r: any) => r.ReferencedSOPInstanceUID).sort();
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
    for (const o of outputs.filter((x) => x.kind !== 'sr')) {
      const png = path.join(tmp, `${path.basename(o.path, '.dcm')}.png`);
      const r = await run('dcmj2pnm', ['--write-png', '-il', o.path, png]);
      expect(r.code, r.stderr).toBe(0);
      const m = await sharp(png).metadata();
      expect(m.channels).toBe(3);
      const ds = naturalized(o.path);
      expect(ds).toMatchObject({ SamplesPerPixel: 3, PhotometricInterpretation: 'RGB', BitsAllocated: 8, BurnedInAnnotation: 'YES', Modality: 'OT' });
      expect(ds.SeriesDescription).toContain('NOT FOR DIAGNOSTIC USE');
      expect(ds.StudyInstanceUID).toBe(record.studyInstanceUid);
      if (o.kind === 'heatmap') {
        const source = naturalized(record.slices.find((s) => s.sopInstanceUid === o.sourceSopInstanceUid)!.file);
        expect([m.width, m.height]).toEqual([source.Columns, source.Rows]);
        expect(ds.SourceImageSequence).toHaveLength(1);
        expect(ds.SourceImageSequence[0]).toMatchObject({ ReferencedSOPClassUID: source.SOPClassUID, ReferencedSOPInstanceUID: o.sourceSopInstanceUid });
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
    const again = await writeResultObjects(structuredClone(record), { config: testConfig(spool), logger, metadata: meta });
    expect(again).toEqual(outputs);
    again.forEach((o, i) => {
      expect(readFileSync(o.path).equals(before[i]!.bytes)).toBe(true);
      expect(statSync(o.path).mtimeMs).toBe(before[i]!.mtime); // identical content is not rewritten
    });
    // a retried job: same content, a later run; the objects keep their date and time, so their bytes
    const retried = { ...structuredClone(record), startedAt: '2026-11-27T08:00:00.000Z', finishedAt: '2026-11-27T08:00:05.000Z', attemptsMade: 2 };
    const again2 = await writeResultObjects(retried, { config: testConfig(spool), logger, metadata: meta });
    again2.forEach((o, i) => expect(readFileSync(o.path).equals(before[i]!.bytes), o.path).toBe(true));
    const spool2 = path.join(tmp, 'spool2');
    const other = await writeResultObjects(structuredClone(record), { config: testConfig(spool2), logger, metadata: meta });
    expect(other.map((o) => o.sopInstanceUid)).toEqual(outputs.map((o) => o.sopInstanceUid));
    other.forEach((o, i) => expect(readFileSync(o.path).equals(before[i]!.bytes), o.path).toBe(true));
    // fewer heatmaps configured: the extra files of the earlier run go, UIDs stay
    const fewer = await writeResultObjects(structuredClone(record), { config: testConfig(spool2, { heatmapSlices: 2, summaryImage: false }), logger, metadata: meta });
    expect(fewer.map((o) => o.sopInstanceUid)).toEqual(outputs.slice(0, 3).map((o) => o.sopInstanceUid));
    expect(readdirSync(path.dirname(fewer[0]!.path)).sort()).toEqual(['heatmap-01.dcm', 'heatmap-02.dcm', 'sr.dcm']);
  });

  it('a series that grew is scored again and its new SR names the old one as predecessor', async () => {
    const { files } = await spoolP001(spool, [...INSTANCES, 120]);
    const { record: grown } = await scoredRecord(record.seriesDir, files);
    expect(grown.instancesHash).not.toBe(record.instancesHash);
    grown.previous = [{
      instancesHash: record.instancesHash, modelVersion: record.model.version, srSopInstanceUid: outputs[0]!.sopInstanceUid,
      srSeriesInstanceUid: outputs[0]!.seriesInstanceUid, finishedAt: record.finishedAt,
    }];
    const out2 = await writeResultObjects(grown, { config: testConfig(spool, { heatmapSlices: 1 }), logger, metadata: meta });
    expect(out2[0]!.sopInstanceUid).not.toBe(outputs[0]!.sopInstanceUid);
    expect(path.dirname(out2[0]!.path)).not.toBe(path.dirname(outputs[0]!.path));
    const ds = naturalized(out2[0]!.path);
    expect(ds.PredecessorDocumentsSequence).toHaveLength(1);
    const p = ds.PredecessorDocumentsSequence[0];
    expect(p.StudyInstanceUID).toBe(record.studyInstanceUid);
    expect(p.ReferencedSeriesSequence[0].SeriesInstanceUID).toBe(outputs[0]!.seriesInstanceUid);
    expect(p.ReferencedSeriesSequence[0].ReferencedSOPSequence[0]).toMatchObject({ ReferencedSOPClassUID: COMPREHENSIVE_3D_SR, ReferencedSOPInstanceUID: outputs[0]!.sopInstanceUid });
    expect(ds.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0].ReferencedSOPSequence).toHaveLength(9);
    const v = await dciodvfy(out2[0]!.path);
    expect(v.errors).toEqual([]);
    expect(v.warnings).toEqual([]);
  });
});

describe('a series that was not scored', () => {
  it('gets an SR stating why (when configured), and nothing otherwise', async () => {
    const nsSpool = path.join(tmp, 'spool-ns');
    const { seriesDir, files } = await spoolP001(nsSpool, [30, 31]);
    const ns: ResultRecord = {
      ...record, seriesDir, status: 'not-scored', reason: 'too few axial slices (2 < 20)',
      score: undefined, category: undefined, threshold: undefined, k: undefined, slices: [], keySlices: [],
      instanceCount: 2, instancesHash: 'a'.repeat(64), dropped: [],
    };
    const out = await writeResultObjects(ns, { config: testConfig(nsSpool), logger, metadata: meta });
    expect(out.map((o) => o.kind)).toEqual(['sr']);
    const uids = resultUids({ seriesInstanceUid: ns.seriesInstanceUid, instancesHash: ns.instancesHash, modelVersion: ns.model.version });
    expect(out[0]!.sopInstanceUid).toBe(uids.srNotScored);
    const text = await dsrdump(out[0]!.path);
    expect(text).toContain('<contains CODE:(,,"AI result status")=(NOT-SCORED,99MLSAM,"Not scored")>');
    expect(text).toContain('="Not scored: too few axial slices (2 < 20).">');
    expect(text).toContain(`<contains TEXT:(,,"Algorithm Name")="${record.model.name}">`);
    expect(text).toContain('NOT FOR DIAGNOSTIC USE');
    expect(text).not.toContain('Measurement Group');
    const v = await dciodvfy(out[0]!.path);
    expect(v.errors).toEqual([]);
    expect(v.warnings).toEqual([]);
    const ds = naturalized(out[0]!.path);
    const refs = ds.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0].ReferencedSOPSequence.map((r: any) => r.ReferencedSOPInstanceUID).sort();
    expect(refs).toEqual(files.map((f) => path.basename(f, '.dcm')).sort());

    const off = path.join(tmp, 'spool-ns-off');
    expect(await writeResultObjects(ns, { config: testConfig(off, { reportNotScored: false }), logger })).toEqual([]);
    expect(await writeResultObjects({ ...ns, status: 'failed' }, { config: testConfig(off), logger })).toEqual([]);
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
    execFileSync('dcmodify', ['-nb', '-i', '(0010,1002)[0].(0010,0020)=ALT-42', '-i', '(0010,1002)[0].(0010,0022)=TEXT',
      '-i', '(0008,1110)[0].(0008,1150)=1.2.840.10008.3.1.2.3.1', '-i', '(0008,1110)[0].(0008,1155)=1.2.3.4.5', withSeq]);
    const explicitFile = path.join(dir, 'explicit.dcm');
    const implicitFile = path.join(dir, 'implicit.dcm');
    execFileSync('dcmdjpeg', ['+te', withSeq, explicitFile]);
    execFileSync('dcmdjpeg', ['+ti', withSeq, implicitFile]);
    const srFrom = async (file: string, name: string) => {
      const r = { ...record, slices: record.slices.map((s, i) => (i === 0 ? { ...s, file } : s)) };
      const out = await writeResultObjects(r, { config: testConfig(path.join(tmp, name), { heatmapSlices: 0, summaryImage: false }), logger, metadata: meta });
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
