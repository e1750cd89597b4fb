/**
 * Score files with the shipped model: the engine behind `mlsam score` and the inference worker.
 *
 * 1. Walk the given files and folders; sniff each file: DICOM, PNG, JPEG, or skipped with a reason.
 * 2. DICOM: read headers only, group by SeriesInstanceUID, select and order slices (select-slices.ts).
 *    PNG/JPEG: each image file is its own one-slice series.
 * 3. Per series, decode + lung analysis (HU) + preprocess + run in batches of `batchSize` slices (memory is
 *    bounded by the batch, not the series: only scalars per slice are kept).
 * 4. HU series with a fusion in the model: eligibility by lung area, fused slice probabilities, series opacity,
 *    fused score (src/model/fusion.ts). Otherwise the CNN alone (top-k mean, src/model/aggregate.ts).
 * 5. Key slices, when asked for: decoded and run once more, one at a time, for their attention map (inside the
 *    lungs only) and the region of the finding (attention peak, outline of the largest opacity).
 */
import { open, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { isDecodeError, looksLikeDicom, readDicomHeaderFile, type DicomHeader } from '../dicom/decode/index.js';
import type { Logger } from '../log.js';
import { aggregateSeries, seriesPolicy, type SeriesCategory } from '../model/aggregate.js';
import { fuseSeries } from '../model/fusion.js';
import type { ModelMetadata } from '../model/metadata.js';
import { sliceSize } from '../model/preprocess.js';
import { ModelSession, type ProviderName } from '../model/session.js';
import { sniffImage, type ImageFormat } from './image-file.js';
import { keySliceDetail, type KeySliceDetail } from './key-slices.js';
import { createPreparer, defaultDecodeThreads, type PrepareSpec, type PreparedSlice, type SlicePreparer } from './prepare.js';
import { seriesPattern, type SeriesPattern } from './series-pattern.js';
import { seriesOpacity, sliceSpacing, type SeriesOpacityResult } from './series-opacity.js';
import type { SliceLabelRuns } from '../model/seg-masks.js';
import { seriesZones, type SeriesZones } from '../model/zones.js';
import { selectSlices, type DroppedSlice, type SelectedSlice } from './select-slices.js';

export interface ScoreOptions {
  /** Path of the .onnx (its .json beside it); ignored when `session` is given. */
  modelPath?: string;
  session?: ModelSession;
  providers?: readonly ProviderName[];
  batchSize?: number;
  threads?: number;
  /**
   * Key slices' detail (default false): their attention map (inside the lungs for HU series) and the region of
   * the finding (attention peak, outline of the largest opacity).
   */
  keyAttention?: boolean;
  /** Keep every HU slice's lung and lesion labels (run-length encoded) in the series result, for the DICOM Segmentation. */
  keepLabels?: boolean;
  /** DICOM series with fewer selected slices are not scored (default 1). */
  minSlices?: number;
  logger?: Logger;
  onProgress?: (p: ScoreProgress) => void;
  /**
   * Worker threads that decode + preprocess (default defaultDecodeThreads(): one per core;
   * 0 = on the JS thread). Ignored when `preparer` is given.
   */
  decodeThreads?: number;
  /** A preparer to reuse across calls (the inference worker keeps one); not closed here. */
  preparer?: SlicePreparer;
}

/**
 * Busy time per stage, summed over slices / batches, ms. Preparation of batch b+1 overlaps
 * inference of batch b (and runs on several threads with a pool), so the stages add up to more
 * than the wall time.
 */
export interface StageTimings {
  /** Listing files and reading headers (classify, group, select). */
  readMs: number;
  decodeMs: number;
  /** Lung segmentation and opacity masks (HU slices). */
  lungMs: number;
  /** The per-slice distribution summary of the opacity (HU slices; src/model/pattern.ts). */
  patternMs?: number;
  preprocessMs: number;
  inferMs: number;
  aggregateMs: number;
  /** The key-slice pass (attention inside the lungs, regions), when asked for. */
  keySlicesMs?: number;
}

export interface ScoreProgress {
  series: string;
  seriesIndex: number;
  seriesCount: number;
  done: number;
  total: number;
}

export interface ScoredSlice {
  file: string;
  sopInstanceUid: string | null;
  seriesInstanceUid: string | null;
  /** Position in the series' scored order (superior first for CT). */
  index: number;
  /** The node's slice probability: fused with the opacity on HU series, the CNN's own otherwise. */
  probability: number;
  /** The CNN's COVID-19-pattern probability of this slice. */
  cnnProbability: number;
  /** DICOM only. */
  sopClassUid?: string | null;
  instanceNumber: number | null;
  /** mm along the slice normal (DICOM only). */
  position: number | null;
  /** HU series only: lung area (mm²), opacity and high opacity as % of it. */
  lungAreaMm2?: number;
  opacityPercent?: number;
  highOpacityPercent?: number;
  /** HU series only: whether the slice holds enough lung to drive the score or be a key slice. */
  eligible?: boolean;
  ineligibleReason?: string;
}

export interface KeySliceResult extends Partial<KeySliceDetail> {
  sopInstanceUid: string | null;
  file: string;
  probability: number;
  cnnProbability: number;
  index: number;
  opacityPercent?: number;
  highOpacityPercent?: number;
}

export type SeriesOpacity = SeriesOpacityResult;

/** The label masks of a scored HU series, slice by slice in scored order, with the geometry a DICOM Segmentation needs. */
export interface SeriesLabels {
  imageOrientationPatient: number[] | null;
  /** [row mm, column mm]. */
  pixelSpacing: [number, number] | null;
  sliceThicknessMm: number | null;
  slices: { sopInstanceUid: string | null; sopClassUid: string | null; imagePositionPatient: number[] | null; labels: SliceLabelRuns }[];
}

export interface ScoredSeries {
  seriesInstanceUid: string | null;
  studyInstanceUid: string | null;
  source: 'dicom' | ImageFormat;
  /** Number of slices scored. */
  slices: number;
  score: number;
  category: SeriesCategory;
  threshold: number;
  /** Half-width of the indeterminate band around the threshold. */
  indeterminateMargin: number;
  /** 'cnn+opacity': HU series, fused; 'cnn-only': no HU (8-bit images) or no fusion in the model. */
  fusion: 'cnn+opacity' | 'cnn-only';
  /** The CNN's share: its (calibrated) COVID-19-pattern probability over the slices the score used. */
  cnnScore: number;
  /** Slices the score used. */
  k: number;
  /** Slices eligible to drive the score (HU series: enough lung). */
  eligibleSlices: number;
  keySlices: KeySliceResult[];
  /** Lung volumes and opacity (HU series). */
  opacity?: SeriesOpacity;
  /**
   * How the opacity is distributed and the pattern category after the RSNA consensus (HU series; an automated
   * description, never a diagnosis; docs/pattern-rule.md).
   */
  pattern?: SeriesPattern;
  /** Upper, middle and lower zone of each lung and the zone score (HU series; src/model/zones.ts). */
  zones?: SeriesZones;
  /** Lung and lesion labels of every scored slice (HU series, `keepLabels`). */
  labels?: SeriesLabels;
  /** Instances of this series that were not scored, with reasons. */
  dropped: DroppedSlice[];
}

export interface UnscoredSeries {
  seriesInstanceUid: string | null;
  file?: string;
  reason: string;
  dropped: DroppedSlice[];
}

export interface SkippedFile {
  file: string;
  reason: string;
}

export interface ScoreResult {
  model: { name: string; version: string; provisional: boolean; sha256: string };
  slices: ScoredSlice[];
  series: ScoredSeries[];
  notScored: UnscoredSeries[];
  skipped: SkippedFile[];
  timing: { seconds: number; slicesScored: number; slicesPerSecond: number; stages: StageTimings };
}

type Input =
  | { kind: 'dicom'; file: string; header: DicomHeader }
  | { kind: 'image'; file: string; format: ImageFormat };

/** Files under the given paths, folders walked recursively in name order. */
export async function listFiles(paths: readonly string[], skipped: SkippedFile[]): Promise<string[]> {
  const out: string[] = [];
  const walk = async (p: string): Promise<void> => {
    let st;
    try {
      st = await stat(p);
    } catch (err) {
      skipped.push({ file: p, reason: `cannot stat: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` });
      return;
    }
    if (st.isDirectory()) {
      let names: string[];
      try {
        names = (await readdir(p)).sort();
      } catch (err) {
        skipped.push({ file: p, reason: `cannot list folder: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` });
        return;
      }
      for (const n of names) await walk(path.join(p, n));
    } else if (st.isFile()) {
      out.push(p);
    } else {
      skipped.push({ file: p, reason: 'not a regular file' });
    }
  };
  for (const p of paths) await walk(p);
  return out;
}

async function readHead(file: string, n = 140): Promise<Uint8Array> {
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.alloc(n);
    const { bytesRead } = await fh.read(buf, 0, n, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

async function classify(file: string, skipped: SkippedFile[]): Promise<Input | null> {
  let head: Uint8Array;
  try {
    head = await readHead(file);
  } catch (err) {
    skipped.push({ file, reason: `cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` });
    return null;
  }
  const format = sniffImage(head);
  if (format) return { kind: 'image', file, format };
  if (!looksLikeDicom(head)) {
    skipped.push({ file, reason: 'not DICOM, PNG or JPEG' });
    return null;
  }
  try {
    return { kind: 'dicom', file, header: await readDicomHeaderFile(file) };
  } catch (err) {
    if (isDecodeError(err)) {
      skipped.push({ file, reason: `${err.code}: ${err.message}` });
      return null;
    }
    throw err;
  }
}

interface PlannedSeries {
  key: string;
  seriesInstanceUid: string | null;
  studyInstanceUid: string | null;
  source: 'dicom' | ImageFormat;
  slices: { file: string; header: DicomHeader | null; position: number | null }[];
  dropped: DroppedSlice[];
}

function plan(inputs: readonly Input[], notScored: UnscoredSeries[], minSlices: number): PlannedSeries[] {
  const bySeries = new Map<string, { file: string; header: DicomHeader }[]>();
  const planned: PlannedSeries[] = [];
  for (const inp of inputs) {
    if (inp.kind === 'image') {
      planned.push({
        key: `image:${inp.file}`, seriesInstanceUid: null, studyInstanceUid: null, source: inp.format,
        slices: [{ file: inp.file, header: null, position: null }], dropped: [],
      });
      continue;
    }
    const uid = inp.header.seriesInstanceUid;
    if (!uid) {
      notScored.push({ seriesInstanceUid: null, file: inp.file, reason: 'no SeriesInstanceUID', dropped: [] });
      continue;
    }
    const list = bySeries.get(uid) ?? [];
    list.push({ file: inp.file, header: inp.header });
    bySeries.set(uid, list);
  }
  const dicom: PlannedSeries[] = [];
  for (const [uid, list] of bySeries) {
    const sel = selectSlices(list);
    if (sel.slices.length === 0) {
      notScored.push({ seriesInstanceUid: uid, reason: 'no scorable slices (CT Image Storage, axial, not localizer, with pixel data)', dropped: sel.dropped });
      continue;
    }
    if (sel.slices.length < minSlices) {
      notScored.push({ seriesInstanceUid: uid, reason: `too few axial slices (${sel.slices.length} < ${minSlices})`, dropped: sel.dropped });
      continue;
    }
    dicom.push({
      key: uid, seriesInstanceUid: uid, studyInstanceUid: list[0]?.header.studyInstanceUid ?? null, source: 'dicom',
      slices: sel.slices.map((s: SelectedSlice) => ({ file: s.file, header: s.header, position: s.position })), dropped: sel.dropped,
    });
  }
  return [...dicom, ...planned];
}

function errorReason(err: unknown): string {
  if (isDecodeError(err)) return `undecodable (${err.code}): ${err.message}`;
  return `undecodable: ${(err as Error).message ?? String(err)}`;
}

/** Score every series found under `paths`. */
export async function scoreFiles(paths: readonly string[], opts: ScoreOptions = {}): Promise<ScoreResult> {
  const t0 = performance.now();
  const log = opts.logger;
  const skipped: SkippedFile[] = [];
  const notScored: UnscoredSeries[] = [];
  const files = await listFiles(paths, skipped);
  const inputs: Input[] = [];
  for (const f of files) {
    const c = await classify(f, skipped);
    if (c) inputs.push(c);
  }
  const series = plan(inputs, notScored, opts.minSlices ?? 1);
  const stages: StageTimings = { readMs: performance.now() - t0, decodeMs: 0, lungMs: 0, preprocessMs: 0, inferMs: 0, aggregateMs: 0 };
  log?.info({ files: files.length, series: series.length, skipped: skipped.length }, 'inputs read');

  let session = opts.session;
  const ownSession = !session;
  if (!session) {
    if (!opts.modelPath) throw new Error('scoreFiles: modelPath or session is required');
    session = await ModelSession.load(opts.modelPath, {
      providers: opts.providers ?? ['cpu'],
      batchSize: opts.batchSize,
      threads: opts.threads,
      logger: log,
    });
  }
  const meta = session.metadata;
  const spec: PrepareSpec = {
    preprocessing: meta.preprocessing,
    ...(meta.quantification ? { quantification: meta.quantification } : {}),
    ...(opts.keepLabels ? { labels: true } : {}),
  };
  const perSlice = sliceSize(spec.preprocessing);
  const preparer = opts.preparer ?? createPreparer(series.length ? (opts.decodeThreads ?? defaultDecodeThreads()) : 0, log);
  const ownPreparer = !opts.preparer;
  const buffers = series.length ? [session.newInputBuffer(), session.newInputBuffer()] : [];
  const slicesOut: ScoredSlice[] = [];
  const seriesOut: ScoredSeries[] = [];
  let scoredCount = 0;
  try {
    for (const [si, s] of series.entries()) {
      const ts = performance.now();
      const scored: ScoredInput[] = [];
      const dropped = [...s.dropped];
      const progress = (done: number) =>
        opts.onProgress?.({ series: s.seriesInstanceUid ?? s.slices[0]?.file ?? '', seriesIndex: si, seriesCount: series.length, done, total: s.slices.length });
      type Slice = PlannedSeries['slices'][number];
      interface Prepared { input: Float32Array; ok: Slice[]; infos: PreparedSlice[] }
      /** Decode + preprocess a batch into `input`; failed slices are dropped with their reason. */
      const prepareBatch = async (batch: Slice[], input: Float32Array): Promise<Prepared> => {
        const settled = await Promise.allSettled(batch.map((sl, i) => preparer.prepare(sl.file, s.source, spec, input, i * perSlice)));
        const ok: Slice[] = [];
        const infos: PreparedSlice[] = [];
        settled.forEach((r, i) => {
          const sl = batch[i] as Slice;
          if (r.status === 'fulfilled') {
            const j = ok.length;
            if (j !== i) input.copyWithin(j * perSlice, i * perSlice, (i + 1) * perSlice);
            ok.push(sl);
            infos.push(r.value);
            stages.decodeMs += r.value.decodeMs;
            stages.lungMs += r.value.lungMs;
            if (r.value.patternMs !== undefined) stages.patternMs = (stages.patternMs ?? 0) + r.value.patternMs;
            stages.preprocessMs += r.value.preprocessMs;
          } else {
            dropped.push({ file: sl.file, sopInstanceUid: sl.header?.sopInstanceUid ?? null, reason: errorReason(r.reason) });
          }
        });
        return { input, ok, infos };
      };
      const bs = session.batchSize;
      // Pipelined: while onnxruntime runs batch b, the next batches are decoded and preprocessed (in the
      // prepare pool, or on the JS thread). Enough batches are in flight to keep every prepare thread busy
      // (one ahead, more when the pool has more threads than a batch has slices), each in its own input
      // buffer: memory is bounded by (ahead + 1) batches, whatever the series length.
      const ahead = Math.max(1, Math.ceil(preparer.threads / bs));
      while (buffers.length < ahead + 1) buffers.push(session.newInputBuffer());
      const pending: Promise<Prepared>[] = [];
      let launched = 0;
      const launch = (): void => {
        if (launched >= s.slices.length) return;
        const buf = buffers[(launched / bs) % (ahead + 1)] as Float32Array;
        pending.push(prepareBatch(s.slices.slice(launched, launched + bs), buf));
        launched += bs;
      };
      launch();
      for (let b = 0; b < s.slices.length; b += bs) {
        const { input, ok, infos } = await (pending.shift() as Promise<Prepared>);
        const tInfer = performance.now();
        const running = session.scorePrepared(input, ok.length);
        while (pending.length < ahead && launched < s.slices.length) launch();
        // a failed run must not leave the next batches' preparation unobserved
        const outs = await running.catch(async (err: unknown) => {
          await Promise.allSettled(pending);
          throw err;
        });
        stages.inferMs += performance.now() - tInfer;
        outs.forEach((o, i) => scored.push({ ...(ok[i] as Slice), cnn: o.probability, info: infos[i] as PreparedSlice }));
        progress(Math.min(b + bs, s.slices.length));
      }
      if (scored.length === 0) {
        notScored.push({ seriesInstanceUid: s.seriesInstanceUid, file: s.source === 'dicom' ? undefined : s.slices[0]?.file, reason: 'no slice could be decoded', dropped });
        continue;
      }
      const tAgg = performance.now();
      const decided = decideSeries(s, scored, meta);
      stages.aggregateMs += performance.now() - tAgg;
      if ('reason' in decided) {
        notScored.push({ seriesInstanceUid: s.seriesInstanceUid, file: s.source === 'dicom' ? undefined : s.slices[0]?.file, reason: decided.reason, dropped });
        continue;
      }
      scoredCount += scored.length;
      const keySlices: KeySliceResult[] = [];
      for (const idx of decided.key) {
        const x = scored[idx] as ScoredInput;
        const sl = decided.slices[idx] as SliceOutcome;
        const base: KeySliceResult = {
          sopInstanceUid: x.header?.sopInstanceUid ?? null, file: x.file, probability: sl.probability, cnnProbability: x.cnn, index: idx,
          ...(sl.opacityPercent !== undefined ? { opacityPercent: sl.opacityPercent, highOpacityPercent: sl.highOpacityPercent } : {}),
        };
        if (opts.keyAttention) {
          const tKey = performance.now();
          const detail = await keySliceDetail(session, x.file, s.source, spec);
          stages.keySlicesMs = (stages.keySlicesMs ?? 0) + performance.now() - tKey;
          keySlices.push({ ...base, ...detail });
        } else {
          keySlices.push(base);
        }
      }
      scored.forEach((x, index) => {
        const sl = decided.slices[index] as SliceOutcome;
        slicesOut.push({
          file: x.file,
          sopInstanceUid: x.header?.sopInstanceUid ?? null,
          seriesInstanceUid: s.seriesInstanceUid,
          index,
          ...(x.header ? { sopClassUid: x.header.sopClassUid } : {}),
          probability: sl.probability,
          cnnProbability: x.cnn,
          instanceNumber: x.header?.instanceNumber ?? null,
          position: x.position,
          ...(sl.lungAreaMm2 !== undefined
            ? { lungAreaMm2: sl.lungAreaMm2, opacityPercent: sl.opacityPercent, highOpacityPercent: sl.highOpacityPercent, eligible: sl.eligible }
            : {}),
          ...(sl.ineligibleReason ? { ineligibleReason: sl.ineligibleReason } : {}),
        });
      });
      const iop = scored[0]?.header?.imageOrientationPatient ?? null;
      const zones = decided.opacity
        ? seriesZones(scored.map((x) => ({
          position: x.position,
          imageLeft: (x.info.lungs as NonNullable<PreparedSlice['lungs']>).imageLeft,
          imageRight: (x.info.lungs as NonNullable<PreparedSlice['lungs']>).imageRight,
        })), sliceSpacing(scored.map((x) => x.position)), iop)
        : undefined;
      const labels: SeriesLabels | undefined = opts.keepLabels && s.source === 'dicom' && scored.every((x) => x.info.labels)
        ? {
          imageOrientationPatient: iop,
          pixelSpacing: scored[0]?.header?.pixelSpacing ?? null,
          sliceThicknessMm: scored[0]?.header?.sliceThickness ?? null,
          slices: scored.map((x) => ({
            sopInstanceUid: x.header?.sopInstanceUid ?? null, sopClassUid: x.header?.sopClassUid ?? null,
            imagePositionPatient: x.header?.imagePositionPatient ?? null, labels: x.info.labels as SliceLabelRuns,
          })),
        }
        : undefined;
      seriesOut.push({
        seriesInstanceUid: s.seriesInstanceUid,
        studyInstanceUid: s.studyInstanceUid,
        source: s.source,
        slices: scored.length,
        score: decided.score,
        category: decided.category,
        threshold: decided.threshold,
        indeterminateMargin: decided.indeterminateMargin,
        fusion: decided.fusion,
        cnnScore: decided.cnnScore,
        k: decided.k,
        eligibleSlices: decided.eligibleSlices,
        keySlices,
        ...(decided.opacity ? { opacity: decided.opacity } : {}),
        ...(decided.pattern ? { pattern: decided.pattern } : {}),
        ...(zones ? { zones } : {}),
        ...(labels ? { labels } : {}),
        dropped,
      });
      const secs = (performance.now() - ts) / 1000;
      log?.info(
        { seriesInstanceUid: s.seriesInstanceUid, slices: scored.length, dropped: dropped.length, score: decided.score, category: decided.category, fusion: decided.fusion, seconds: +secs.toFixed(2), slicesPerSecond: +(scored.length / secs).toFixed(1) },
        'series scored',
      );
    }
  } finally {
    if (ownPreparer) await preparer.close();
    if (ownSession) await session.release();
  }
  const seconds = (performance.now() - t0) / 1000;
  return {
    model: { name: meta.name, version: meta.version, provisional: meta.provisional === true, sha256: meta.sha256 },
    slices: slicesOut,
    series: seriesOut,
    notScored,
    skipped,
    timing: { seconds: +seconds.toFixed(3), slicesScored: scoredCount, slicesPerSecond: +(scoredCount / seconds).toFixed(2), stages: roundStages(stages) },
  };
}

function roundStages(st: StageTimings): StageTimings {
  const r = (x: number) => +x.toFixed(1);
  return {
    readMs: r(st.readMs), decodeMs: r(st.decodeMs), lungMs: r(st.lungMs), ...(st.patternMs !== undefined ? { patternMs: r(st.patternMs) } : {}), preprocessMs: r(st.preprocessMs), inferMs: r(st.inferMs), aggregateMs: r(st.aggregateMs),
    ...(st.keySlicesMs !== undefined ? { keySlicesMs: r(st.keySlicesMs) } : {}),
  };
}

interface ScoredInput {
  file: string;
  header: DicomHeader | null;
  position: number | null;
  cnn: number;
  info: PreparedSlice;
}

interface SliceOutcome {
  probability: number;
  lungAreaMm2?: number;
  opacityPercent?: number;
  highOpacityPercent?: number;
  eligible?: boolean;
  ineligibleReason?: string;
}

type SeriesDecision = Pick<ScoredSeries, 'score' | 'category' | 'threshold' | 'indeterminateMargin' | 'fusion' | 'cnnScore' | 'k' | 'eligibleSlices' | 'opacity' | 'pattern'> & {
  slices: SliceOutcome[];
  /** Key slice indices, best first. */
  key: number[];
};

const pct = (part: number, whole: number): number => (whole > 0 ? Math.min(100, (100 * part) / whole) : 0);

/**
 * The series' outcome from its slices' CNN probabilities and lung measurements: fused when the model has a
 * fusion and every slice has lung measurements (HU with pixel spacing), the CNN alone otherwise.
 */
function decideSeries(s: PlannedSeries, scored: readonly ScoredInput[], meta: ModelMetadata): SeriesDecision | { reason: string } {
  const policy = seriesPolicy(meta);
  const fusion = meta.fusion;
  const measured = s.source === 'dicom' && scored.every((x) => x.info.lungs);
  if (fusion && measured) {
    const iop = scored[0]?.header?.imageOrientationPatient ?? null;
    const opacity = seriesOpacity(scored.map((x) => ({
      lungs: x.info.lungs as NonNullable<PreparedSlice['lungs']>, position: x.position, thicknessMm: x.header?.sliceThickness ?? null,
    })), iop, meta);
    const fused = fuseSeries(
      scored.map((x) => ({ cnn: x.cnn, lungAreaMm2: x.info.lungs?.total.lungMm2 ?? 0, opacityMm2: x.info.lungs?.total.opacityMm2 ?? 0 })),
      opacity.total.percentOpacity, fusion, policy.aggregation,
    );
    if (!fused) return { reason: `no lungs found (largest lung area on any slice below ${fusion.eligibility.minSeriesLungMm2} mm²): not a chest CT the model can score` };
    const pattern = seriesPattern(scored.map((x) => ({ ...(x.info.pattern ? { pattern: x.info.pattern } : {}), position: x.position })), iop, opacity.sliceSpacingMm);
    return {
      slices: scored.map((x, i) => {
        const f = fused.slices[i] as (typeof fused.slices)[number];
        const t = x.info.lungs?.total ?? { lungMm2: 0, opacityMm2: 0, highMm2: 0 };
        return {
          probability: f.probability,
          lungAreaMm2: t.lungMm2,
          opacityPercent: pct(t.opacityMm2, t.lungMm2),
          highOpacityPercent: pct(t.highMm2, t.lungMm2),
          eligible: f.eligible,
          ...(f.ineligibleReason ? { ineligibleReason: f.ineligibleReason } : {}),
        };
      }),
      key: fused.ranked.slice(0, policy.keySlices),
      score: fused.score,
      category: fused.category,
      threshold: fused.threshold,
      indeterminateMargin: fusion.indeterminateMargin,
      fusion: 'cnn+opacity',
      cnnScore: fused.cnnScore,
      k: fused.k,
      eligibleSlices: fused.ranked.length,
      opacity,
      ...(pattern ? { pattern } : {}),
    };
  }
  const agg = aggregateSeries(scored.map((x) => x.cnn), policy);
  return {
    slices: scored.map((x) => ({ probability: x.cnn })),
    key: agg.keySlices.map((k) => k.index),
    score: agg.score,
    category: agg.category,
    threshold: agg.threshold,
    indeterminateMargin: policy.indeterminateMargin,
    fusion: 'cnn-only',
    cnnScore: agg.score,
    k: agg.k,
    eligibleSlices: scored.length,
  };
}
