/**
 * Result objects of a scored series: the SR (TID 1500), the Key Object Selection document of the key
 * slices, the heatmap Secondary Captures of the key slices and the summary chart, written as
 * Part-10 files into the spool's results folder.
 *
 * Deterministic: the UIDs come from (series UID, instances hash, model version, role) and every
 * date and time from the record, so the same record gives the same files byte for byte, and a
 * re-run overwrites them with identical content. Each file is written to a temp name, fsynced and
 * renamed (invariant 1 of docs/architecture.md applies to results too).
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config/schema.js';
import { resolvePath } from '../config/load.js';
import { decodeDicom } from '../dicom/decode/index.js';
import { fsyncDir, resultsDirFor } from '../dicom/spool/spool-layout.js';
import type { Logger } from '../log.js';
import type { ModelMetadata } from '../model/metadata.js';
import { resultKey, type OutputFile, type ResultRecord } from '../contracts/result-record.js';
import { dicomDateTime, howScored, NOT_FOR_DIAGNOSTIC_USE, resultSeriesNumbers, type DicomDateTime, type ModelInfo } from './common.js';
import { part10Chunks } from './dataset.js';
import { expandRuns } from '../model/seg-masks.js';
import { blendFindings, blendHeatmap, chartSvg, compositeSvg, heatmapOverlaySvg, rasterizeSvg, windowed, type Window } from './render.js';
import { buildSc, SECONDARY_CAPTURE } from './sc.js';
import { parseSourceInstance, readSourceInstance, type SourceInstance } from './source.js';
import { buildKos, KEY_OBJECT_SELECTION } from './kos.js';
import { buildSr, COMPREHENSIVE_3D_SR, seriesBandLine } from './sr.js';
import { buildSeg, SEGMENTATION_STORAGE, type SegSlice } from './seg.js';
import { buildGsps, GRAYSCALE_SOFTCOPY_PRESENTATION_STATE } from './gsps.js';
import type { SeriesLabels } from '../scoring/score.js';
import { resultUid, resultUids, type UidBasis } from './uids.js';
import { keyRegionGraphic } from './regions.js';

export { resultUid, resultUids, type UidBasis } from './uids.js';
export { COMPREHENSIVE_3D_SR } from './sr.js';
export { SECONDARY_CAPTURE } from './sc.js';
export { KEY_OBJECT_SELECTION } from './kos.js';
export { SEGMENTATION_STORAGE } from './seg.js';
export { GRAYSCALE_SOFTCOPY_PRESENTATION_STATE } from './gsps.js';

export interface WriteResultOptions {
  config: Config;
  logger: Logger;
  /** The model's metadata: its window for the heatmaps, its aggregation for the SR's parameters. */
  metadata?: ModelMetadata;
  /** The series' lung and lesion labels from scoring (HU series): the Segmentation is made from them. */
  labels?: SeriesLabels;
}

/** A key slice with its scored-slice entry and its file, read once. */
interface KeySliceFile {
  key: ResultRecord['keySlices'][number];
  slice: ResultRecord['slices'][number];
  buf: Buffer;
  inst: SourceInstance;
}

/** Lung window used when the model metadata gives none. */
const DEFAULT_WINDOW: Window = { center: -600, width: 1500 };
const SUMMARY_SIZE = { width: 1024, height: 576 };

/** File names inside the results folder, by role. */
export const OUTPUT_NAMES = {
  sr: 'sr.dcm',
  kos: 'kos.dcm',
  seg: 'seg.dcm',
  pr: (i: number) => `pr-${String(i + 1).padStart(2, '0')}.dcm`,
  heatmap: (i: number) => `heatmap-${String(i + 1).padStart(2, '0')}.dcm`,
  summary: 'summary.dcm',
} as const;
const OUTPUT_NAME_RE = /^(sr|kos|seg|summary|heatmap-\d+|pr-\d+)\.dcm$/;

/** True when the file at `path` holds exactly the concatenation of `chunks`. */
async function sameContent(path: string, chunks: readonly Buffer[], total: number): Promise<boolean> {
  const st = await fs.promises.stat(path);
  if (st.size !== total) return false;
  const held = await fs.promises.readFile(path);
  let off = 0;
  for (const c of chunks) {
    if (!held.subarray(off, off + c.length).equals(c)) return false;
    off += c.length;
  }
  return true;
}

/** Writes the file made of `chunks` (in order) under a temporary name, syncs it, then renames it into place. */
async function writeAtomic(dir: string, name: string, chunks: readonly Buffer[]): Promise<void> {
  const path = join(dir, name);
  const total = chunks.reduce((n, c) => n + c.length, 0);
  try {
    if (await sameContent(path, chunks, total)) return;
  } catch {
    // not there yet
  }
  const tmp = join(dir, `.${name}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const fh = await fs.promises.open(tmp, 'w');
  try {
    // one writev: libuv goes on until every chunk is written (or fails)
    const { bytesWritten } = await fh.writev(chunks as Buffer[]);
    if (bytesWritten !== total) throw new Error(`writing ${name}: ${bytesWritten} of ${total} bytes written`);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await fs.promises.rename(tmp, path);
  } catch (err) {
    await fs.promises.rm(tmp, { force: true });
    throw err;
  }
}

/** Removes result files of an earlier run that this run does not write (e.g. fewer heatmaps configured), and stale temp files. */
async function removeStale(dir: string, keep: Set<string>): Promise<void> {
  const now = Date.now();
  for (const name of await fs.promises.readdir(dir)) {
    const p = join(dir, name);
    if (OUTPUT_NAME_RE.test(name) && !keep.has(name)) {
      await fs.promises.rm(p, { force: true });
    } else if (name.startsWith('.') && name.endsWith('.tmp')) {
      try {
        if (now - (await fs.promises.stat(p)).mtimeMs > 3_600_000) await fs.promises.rm(p, { force: true });
      } catch {
        // gone meanwhile
      }
    }
  }
}

/** The instance patient and study modules are copied from: the first scored slice, else the first file of the series folder. */
async function primarySource(
  record: ResultRecord,
): Promise<{ source: SourceInstance; evidence: { sopClassUid: string; sopInstanceUid: string }[] }> {
  if (record.slices.length > 0) {
    return {
      source: await readSourceInstance((record.slices[0] as ResultRecord['slices'][number]).file),
      evidence: record.slices.map((s) => ({ sopClassUid: s.sopClassUid, sopInstanceUid: s.sopInstanceUid })),
    };
  }
  // Not scored: every instance received for the series is the evidence.
  let names: string[] = [];
  try {
    names = (await fs.promises.readdir(record.seriesDir)).filter((n) => n.endsWith('.dcm')).sort();
  } catch (err) {
    throw new Error(`cannot list series folder ${record.seriesDir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let source: SourceInstance | undefined;
  const evidence: { sopClassUid: string; sopInstanceUid: string }[] = [];
  for (const n of names) {
    try {
      const s = await readSourceInstance(join(record.seriesDir, n));
      if (s.seriesInstanceUid !== record.seriesInstanceUid) continue;
      source ??= s;
      evidence.push({ sopClassUid: s.sopClassUid, sopInstanceUid: s.sopInstanceUid });
    } catch {
      // an unreadable instance is not evidence
    }
  }
  if (!source) throw new Error(`no readable instance of series ${record.seriesInstanceUid} in ${record.seriesDir}`);
  return { source, evidence };
}

/**
 * The date and time of an earlier run's objects of this same content (same SR UID): a re-run of
 * the job (new startedAt) keeps them, so it rewrites the same bytes under the same UIDs.
 */
async function earlierWhen(dir: string, srUid: string): Promise<DicomDateTime | null> {
  try {
    const prev = await readSourceInstance(join(dir, OUTPUT_NAMES.sr));
    if (prev.sopInstanceUid !== srUid || !prev.contentDate || !prev.contentTime) return null;
    return { date: prev.contentDate, time: prev.contentTime };
  } catch {
    return null;
  }
}

function parametersText(record: ResultRecord, metadata: ModelMetadata | undefined, window: Window): string {
  const agg = metadata?.series.aggregation;
  return [
    `aggregation=${agg ? `${agg.method} (kFraction ${agg.kFraction}, kMin ${agg.kMin})` : 'topk-mean'}`,
    `k=${record.k ?? '?'}`,
    `threshold=${record.threshold ?? '?'}`,
    `indeterminateMargin=${record.indeterminateMargin ?? '?'}`,
    `window=${window.center}/${window.width}`,
    ...(record.fusion ? [`fusion=${record.fusion}`] : []),
    ...(record.opacity
      ? [
          `opacity=${record.opacity.method} (opacity HU ${record.opacity.opacityHu.join('..')}, high opacity HU ${record.opacity.highOpacityHu.join('..')}` +
            `${record.opacity.sliceThicknessMm !== undefined ? `, slice thickness ${record.opacity.sliceThicknessMm} mm` : ''}` +
            `${record.opacity.groundGlassOpenMm !== undefined ? `, ground-glass opening ${record.opacity.groundGlassOpenMm} mm` : ''})`,
        ]
      : []),
    `sha256=${record.model.sha256}`,
  ].join('; ');
}

/**
 * What the Segmentation is built from: the labels of the record's scored slices with their geometry; null
 * (logged) when scoring kept none or the geometry is incomplete.
 */
function segmentationInput(
  record: ResultRecord,
  labels: SeriesLabels | undefined,
  logger: Logger,
): { imageOrientationPatient: number[]; pixelSpacing: [number, number]; sliceThicknessMm: number; slices: SegSlice[] } | null {
  const skip = (why: string) => {
    logger.warn({ seriesInstanceUid: record.seriesInstanceUid, why }, 'no Segmentation for this series');
    return null;
  };
  if (!labels) return skip('no lung labels from scoring');
  if (!labels.imageOrientationPatient || !labels.pixelSpacing) return skip('no orientation or pixel spacing');
  const bySop = new Map(labels.slices.map((s) => [s.sopInstanceUid, s]));
  const slices: SegSlice[] = [];
  for (const s of record.slices) {
    const l = bySop.get(s.sopInstanceUid);
    if (!l?.imagePositionPatient) return skip(`no labels or position for slice ${s.sopInstanceUid}`);
    slices.push({
      sopClassUid: s.sopClassUid,
      sopInstanceUid: s.sopInstanceUid,
      imagePositionPatient: l.imagePositionPatient,
      labels: l.labels,
    });
  }
  const thickness = labels.sliceThicknessMm ?? record.opacity?.sliceSpacingMm ?? 1;
  return {
    imageOrientationPatient: labels.imageOrientationPatient,
    pixelSpacing: labels.pixelSpacing,
    sliceThicknessMm: thickness,
    slices,
  };
}

/**
 * Writes the result objects of `record` and returns them. Status 'scored': SR, Key Object Selection
 * of the key slices (if `results.keyObjectSelection`), heatmaps of the top `results.heatmapSlices`
 * key slices, summary chart (if `results.summaryImage`). Status
 * 'not-scored': an SR saying why (if `results.reportNotScored`), else nothing. Other statuses:
 * nothing.
 */
export async function writeResultObjects(record: ResultRecord, opts: WriteResultOptions): Promise<OutputFile[]> {
  const t0 = performance.now();
  const { config, logger, metadata } = opts;
  const scored = record.status === 'scored';
  if (!scored && !(record.status === 'not-scored' && config.results.reportNotScored)) return [];
  const model: ModelInfo = record.model;
  const basis: UidBasis = { seriesInstanceUid: record.seriesInstanceUid, instancesHash: resultKey(record), modelVersion: model.version };
  const uids = resultUids(basis);
  const { source, evidence } = await primarySource(record);
  const dir = resultsDirFor(
    resolvePath(config.spool.dir),
    record.studyInstanceUid,
    record.seriesInstanceUid,
    resultKey(record),
    model.version,
  );
  await fs.promises.mkdir(dir, { recursive: true });
  const srUid = scored ? uids.sr : uids.srNotScored;
  const when = (await earlierWhen(dir, srUid)) ?? dicomDateTime(record.finishedAt ?? record.startedAt, source.timezoneOffset);
  const numbers = resultSeriesNumbers(source.seriesNumber);
  const aeTitle = config.dicom.aeTitle;
  const window: Window = metadata?.preprocessing.window ?? DEFAULT_WINDOW;

  const files: { name: string; bytes: Buffer[]; out: Omit<OutputFile, 'path'> }[] = [];

  // The key slices, read once: the SR needs each one's size, the heatmaps its pixels.
  const slicesById = new Map(record.slices.map((s) => [s.sopInstanceUid, s]));
  const keySlices: KeySliceFile[] = [];
  if (scored) {
    for (const key of record.keySlices) {
      const slice = slicesById.get(key.sopInstanceUid);
      if (!slice) throw new Error(`key slice ${key.sopInstanceUid} is not among the scored slices`);
      const buf = await fs.promises.readFile(slice.file);
      keySlices.push({ key, slice, buf, inst: parseSourceInstance(buf, slice.file) });
    }
  }

  // SR
  const predecessors = (record.previous ?? [])
    .filter((p) => p.srSopInstanceUid && !(p.instancesHash === resultKey(record) && p.modelVersion === model.version))
    .map((p) => ({
      sopInstanceUid: p.srSopInstanceUid as string,
      seriesInstanceUid:
        p.srSeriesInstanceUid ??
        resultUid(
          { seriesInstanceUid: record.seriesInstanceUid, instancesHash: p.instancesHash, modelVersion: p.modelVersion },
          'sr-series',
        ),
    }));
  const deviceObserverUid = resultUid(
    { seriesInstanceUid: '', instancesHash: '', modelVersion: model.version },
    `device:${aeTitle}:${model.name}`,
  );
  const sr = buildSr({
    record,
    source,
    model,
    sopInstanceUid: srUid,
    seriesInstanceUid: uids.srSeries,
    seriesNumber: numbers.sr,
    deviceObserverUid,
    trackingUid: (of) => resultUid(basis, of === 'series' ? 'tracking' : `tracking:${of}`),
    aeTitle,
    when,
    evidence,
    predecessors,
    parameters: parametersText(record, metadata, window),
    keySlices: keySlices.map((k) => ({
      key: k.key,
      ref: { sopClassUid: k.slice.sopClassUid, sopInstanceUid: k.slice.sopInstanceUid },
      geometry: { columns: k.inst.columns ?? 0, rows: k.inst.rows ?? 0 },
      instanceNumber: k.slice.instanceNumber,
    })),
  });
  files.push({
    name: OUTPUT_NAMES.sr,
    bytes: part10Chunks(sr, COMPREHENSIVE_3D_SR, srUid, aeTitle),
    out: { kind: 'sr', sopClassUid: COMPREHENSIVE_3D_SR, sopInstanceUid: srUid, seriesInstanceUid: uids.srSeries },
  });

  if (scored && config.results.keyObjectSelection && keySlices.length > 0) {
    const kos = buildKos({
      record,
      source,
      model,
      sopInstanceUid: uids.kos,
      seriesInstanceUid: uids.kosSeries,
      seriesNumber: numbers.kos,
      deviceObserverUid,
      aeTitle,
      when,
      keySlices: keySlices.map((k) => ({
        ref: { sopClassUid: k.slice.sopClassUid, sopInstanceUid: k.slice.sopInstanceUid },
        probability: k.key.probability,
        instanceNumber: k.slice.instanceNumber,
      })),
    });
    files.push({
      name: OUTPUT_NAMES.kos,
      bytes: part10Chunks(kos, KEY_OBJECT_SELECTION, uids.kos, aeTitle),
      out: { kind: 'kos', sopClassUid: KEY_OBJECT_SELECTION, sopInstanceUid: uids.kos, seriesInstanceUid: uids.kosSeries },
    });
  }

  if (scored && config.results.segmentation && record.opacity) {
    const seg = segmentationInput(record, opts.labels, logger);
    if (seg) {
      const { dataset, summary } = buildSeg({
        source,
        model,
        sopInstanceUid: uids.seg,
        seriesInstanceUid: uids.segSeries,
        seriesNumber: numbers.seg,
        aeTitle,
        when,
        sourceSeriesInstanceUid: record.seriesInstanceUid,
        dimensionOrganizationUid: uids.segDimensions,
        ...seg,
        method: record.opacity.method,
        parameters:
          `opacity HU ${record.opacity.opacityHu.join('..')}, consolidation (high opacity) HU ${record.opacity.highOpacityHu.join('..')}` +
          `${record.opacity.groundGlassOpenMm !== undefined ? `, ground-glass opening ${record.opacity.groundGlassOpenMm} mm` : ''}; sha256=${model.sha256}`,
      });
      if (!source.frameOfReferenceUid) {
        logger.warn({ seriesInstanceUid: record.seriesInstanceUid }, 'no Frame of Reference UID in the CT: no Segmentation');
      } else {
        files.push({
          name: OUTPUT_NAMES.seg,
          bytes: part10Chunks(dataset, SEGMENTATION_STORAGE, uids.seg, aeTitle),
          out: { kind: 'seg', sopClassUid: SEGMENTATION_STORAGE, sopInstanceUid: uids.seg, seriesInstanceUid: uids.segSeries },
        });
        logger.debug({ seriesInstanceUid: record.seriesInstanceUid, frames: summary.frames }, 'segmentation built');
      }
    }
  }

  if (scored) {
    const keys = keySlices.slice(0, config.results.heatmapSlices);
    const labelsBySop = new Map(
      (opts.labels?.slices ?? []).flatMap((s) => (s.sopInstanceUid ? [[s.sopInstanceUid, s.labels] as const] : [])),
    );
    // "Series 0.533: indeterminate (0.35-0.65)": the category with its band, as in the SR.
    const seriesLine = seriesBandLine(record);
    for (const [i, { key, slice, buf, inst }] of keys.entries()) {
      // One read: the header walk and the pixel decode share the bytes.
      const { image } = await decodeDicom(buf);
      const gray = windowed(image, window);
      const att =
        key.attention && key.attention.imageWidth === image.width && key.attention.imageHeight === image.height ? key.attention : undefined;
      // What the score is built on first: the measured ground glass and consolidation in colour, the CNN's
      // attention as a contour; the attention as a colour map only where the slice has no labels (no HU).
      const lesionRuns = labelsBySop.get(slice.sopInstanceUid)?.lesion;
      const lesion = lesionRuns ? expandRuns(lesionRuns, image.width * image.height) : undefined;
      const findings = lesion !== undefined;
      const rgb = {
        width: image.width,
        height: image.height,
        data: findings ? blendFindings(gray, image.width, image.height, lesion, att) : blendHeatmap(gray, image.width, image.height, att),
      };
      const where = [
        `Slice ${key.index + 1}/${record.slices.length}`,
        ...(slice.instanceNumber !== null ? [`instance ${slice.instanceNumber}`] : []),
        ...(slice.position !== null ? [`${slice.position.toFixed(1)} mm`] : []),
      ].join(', ');
      const overlay = heatmapOverlaySvg(image.width, image.height, {
        lines: [
          `${model.name} ${model.version}`,
          where,
          `Slice probability ${key.probability.toFixed(3)}, key ${i + 1}/${keys.length}`,
          // short lines: the band stays clear of the image's bottom corners
          seriesLine,
        ],
        hasAttention: att !== undefined,
        findings,
      });
      const pixels = await compositeSvg(rgb, overlay);
      const uid = uids.heatmap(key.sopInstanceUid);
      const sc = buildSc({
        source,
        model,
        sopInstanceUid: uid,
        seriesInstanceUid: uids.scSeries,
        seriesNumber: numbers.sc,
        instanceNumber: i + 1,
        aeTitle,
        when,
        image: pixels,
        sourceSlice: { sopClassUid: slice.sopClassUid, sopInstanceUid: slice.sopInstanceUid, instance: inst },
        derivation: findings
          ? `Lung window ${window.center}/${window.width}; measured ground glass (yellow) and consolidation (red) blended in colour, ${model.name} ${model.version} attention as a cyan contour; ${NOT_FOR_DIAGNOSTIC_USE}`
          : `Lung window ${window.center}/${window.width} with ${model.name} ${model.version} attention map blended in colour; ${NOT_FOR_DIAGNOSTIC_USE}`,
        comments: `${NOT_FOR_DIAGNOSTIC_USE}. ${findings ? `Measured ground glass and consolidation with the ${model.name} ${model.version} attention contour` : `${model.name} ${model.version} attention heatmap`}. ${where}. Slice probability ${key.probability.toFixed(3)}. ${seriesLine}.`,
      });
      files.push({
        name: OUTPUT_NAMES.heatmap(i),
        bytes: part10Chunks(sc, SECONDARY_CAPTURE, uid, aeTitle),
        out: {
          kind: 'heatmap',
          sopClassUid: SECONDARY_CAPTURE,
          sopInstanceUid: uid,
          seriesInstanceUid: uids.scSeries,
          sourceSopInstanceUid: slice.sopInstanceUid,
        },
      });
    }
    if (config.results.presentationStates) {
      for (const [i, { key, slice, inst }] of keySlices.entries()) {
        const lesionRuns = labelsBySop.get(slice.sopInstanceUid)?.lesion;
        const n = (inst.columns ?? 0) * (inst.rows ?? 0);
        const uid = uids.pr(slice.sopInstanceUid);
        const op =
          key.opacityPercent !== undefined
            ? `opacity ${key.opacityPercent.toFixed(1)} % of this slice's lung${key.highOpacityPercent !== undefined ? ` (high ${key.highOpacityPercent.toFixed(1)} %)` : ''}`
            : `slice probability ${key.probability.toFixed(3)}`;
        const pr = buildGsps({
          source,
          model,
          sopInstanceUid: uid,
          seriesInstanceUid: uids.prSeries,
          seriesNumber: numbers.pr,
          instanceNumber: i + 1,
          aeTitle,
          when,
          imageSeriesInstanceUid: record.seriesInstanceUid,
          image: { sopClassUid: slice.sopClassUid, sopInstanceUid: slice.sopInstanceUid, instance: inst },
          window,
          ...(lesionRuns && n > 0 ? { lesion: expandRuns(lesionRuns, n) } : {}),
          ...(key.region?.polygon ? { polygon: keyRegionGraphic(key, { columns: inst.columns ?? 0, rows: inst.rows ?? 0 }).points } : {}),
          text: [
            `${model.name} ${model.version}, key slice ${i + 1}/${keySlices.length}: ${op}`,
            `${seriesLine}${record.zones ? `; zone score ${record.zones.score}/30` : ''} - ${NOT_FOR_DIAGNOSTIC_USE}`,
          ],
        });
        files.push({
          name: OUTPUT_NAMES.pr(i),
          bytes: part10Chunks(pr, GRAYSCALE_SOFTCOPY_PRESENTATION_STATE, uid, aeTitle),
          out: {
            kind: 'gsps',
            sopClassUid: GRAYSCALE_SOFTCOPY_PRESENTATION_STATE,
            sopInstanceUid: uid,
            seriesInstanceUid: uids.prSeries,
            sourceSopInstanceUid: slice.sopInstanceUid,
          },
        });
      }
    }
    if (config.results.summaryImage && record.slices.length > 0) {
      const { width, height } = SUMMARY_SIZE;
      const svg = chartSvg(width, height, {
        title: `${model.name} ${model.version}: COVID-19 pattern probability per slice`,
        subtitle: `Series ${source.seriesNumber ?? '?'}, ${record.slices.length} slices scored. ${seriesLine}: ${howScored(record)}.`,
        probabilities: record.slices.map((s) => s.probability),
        positions: record.slices.map((s) => s.position),
        threshold: record.threshold ?? 0.5,
        margin: record.indeterminateMargin ?? 0,
        score: record.score ?? 0,
        category: record.category ?? '?',
        keySlices: record.keySlices.map((k) => k.index),
        keyLabels: record.keySlices.map((k) => {
          const n = slicesById.get(k.sopInstanceUid)?.instanceNumber;
          return n !== null && n !== undefined ? `#${n}` : `${k.index + 1}`;
        }),
      });
      const pixels = await rasterizeSvg(svg, width, height);
      const sc = buildSc({
        source,
        model,
        sopInstanceUid: uids.summary,
        seriesInstanceUid: uids.scSeries,
        seriesNumber: numbers.sc,
        instanceNumber: record.keySlices.length + 1,
        aeTitle,
        when,
        image: pixels,
        derivation: `Chart of the ${model.name} ${model.version} slice probabilities; ${NOT_FOR_DIAGNOSTIC_USE}`,
        comments: `${NOT_FOR_DIAGNOSTIC_USE}. ${model.name} ${model.version} per-slice probability along the scan, threshold and key slices marked. ${seriesLine}.`,
      });
      files.push({
        name: OUTPUT_NAMES.summary,
        bytes: part10Chunks(sc, SECONDARY_CAPTURE, uids.summary, aeTitle),
        out: { kind: 'summary', sopClassUid: SECONDARY_CAPTURE, sopInstanceUid: uids.summary, seriesInstanceUid: uids.scSeries },
      });
    }
  }

  for (const f of files) await writeAtomic(dir, f.name, f.bytes);
  await removeStale(dir, new Set(files.map((f) => f.name)));
  await fsyncDir(dir);
  const outputs: OutputFile[] = files.map((f) => ({ ...f.out, path: join(dir, f.name) }));
  logger.info(
    {
      seriesInstanceUid: record.seriesInstanceUid,
      status: record.status,
      objects: outputs.length,
      srSopInstanceUid: srUid,
      ms: Math.round(performance.now() - t0),
    },
    'result objects written',
  );
  return outputs;
}
