/**
 * Score files with the shipped model: the engine behind `mlsam score` and the inference worker.
 *
 * 1. discover.ts: walk the given files and folders; sniff each file: DICOM, PNG, JPEG, or skipped with a reason.
 * 2. plan.ts: DICOM: read headers only, group by SeriesInstanceUID, select and order slices (select-slices.ts).
 *    PNG/JPEG: each image file is its own one-slice series.
 * 3. batches.ts: per series, decode + lung analysis (HU) + preprocess + run in batches of `batchSize` slices
 *    (memory is bounded by the batch, not the series: only scalars per slice are kept).
 * 4. decide.ts: HU series with a fusion in the model: eligibility by lung area, fused slice probabilities, series
 *    opacity, fused score (src/model/fusion.ts). Otherwise the CNN alone (top-k mean, src/model/aggregate.ts).
 * 5. Here: key slices, when asked for: decoded and run once more, one at a time, for their attention map (inside
 *    the lungs only) and the region of the finding (attention peak, outline of the largest opacity); the result.
 */
import { sliceSize } from '../model/preprocess.js';
import { ModelSession } from '../model/session.js';
import { scoreBatches } from './batches.js';
import { decideSeries, type ScoredInput, type SeriesDecision, type SliceOutcome } from './decide.js';
import { discoverInputs } from './discover.js';
import { keySliceDetails } from './key-slices.js';
import { type PlannedSeries, planSeries } from './plan.js';
import { createPreparer, defaultDecodeThreads, type PrepareSpec, type PreparedSlice } from './slice-preparer.js';
import { sliceSpacing } from './series-opacity.js';
import type { SliceLabelRuns } from '../model/seg-masks.js';
import { seriesZones } from '../model/zones.js';
import type {
  KeySliceResult,
  ScoredSeries,
  ScoredSlice,
  ScoreOptions,
  ScoreResult,
  SeriesLabels,
  SkippedFile,
  StageTimings,
  UnscoredSeries,
} from './types.js';

export type {
  KeySliceResult,
  ScoredSeries,
  ScoredSlice,
  ScoreOptions,
  ScoreProgress,
  ScoreResult,
  SeriesLabels,
  SeriesOpacity,
  SkippedFile,
  StageTimings,
  UnscoredSeries,
} from './types.js';
export { listFiles } from './discover.js';

/** Score every series found under `paths`. */
export async function scoreFiles(paths: readonly string[], opts: ScoreOptions = {}): Promise<ScoreResult> {
  const t0 = performance.now();
  const log = opts.logger;
  const skipped: SkippedFile[] = [];
  const notScored: UnscoredSeries[] = [];
  const { files, inputs } = await discoverInputs(paths, skipped);
  const series = planSeries(inputs, notScored, opts.minSlices ?? 1);
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
      const progress = (done: number) =>
        opts.onProgress?.({
          series: s.seriesInstanceUid ?? s.slices[0]?.file ?? '',
          seriesIndex: si,
          seriesCount: series.length,
          done,
          total: s.slices.length,
        });
      const { scored, dropped } = await scoreBatches(s, { session, preparer, spec, perSlice, buffers, stages, progress });
      if (scored.length === 0) {
        notScored.push({
          seriesInstanceUid: s.seriesInstanceUid,
          file: s.source === 'dicom' ? undefined : s.slices[0]?.file,
          reason: 'no slice could be decoded',
          dropped,
        });
        continue;
      }
      const tAgg = performance.now();
      const decided = decideSeries(s, scored, meta);
      stages.aggregateMs += performance.now() - tAgg;
      if ('reason' in decided) {
        notScored.push({
          seriesInstanceUid: s.seriesInstanceUid,
          file: s.source === 'dicom' ? undefined : s.slices[0]?.file,
          reason: decided.reason,
          dropped,
        });
        continue;
      }
      scoredCount += scored.length;
      const keyBase: KeySliceResult[] = decided.key.map((idx) => {
        const x = scored[idx] as ScoredInput;
        const sl = decided.slices[idx] as SliceOutcome;
        return {
          sopInstanceUid: x.header?.sopInstanceUid ?? null,
          file: x.file,
          probability: sl.probability,
          cnnProbability: x.cnn,
          index: idx,
          ...(sl.opacityPercent !== undefined ? { opacityPercent: sl.opacityPercent, highOpacityPercent: sl.highOpacityPercent } : {}),
        };
      });
      let keySlices = keyBase;
      if (opts.keyAttention && keyBase.length) {
        const tKey = performance.now();
        const details = await keySliceDetails(
          session,
          preparer,
          keyBase.map((k) => ({ file: k.file, source: s.source })),
          spec,
        );
        stages.keySlicesMs = (stages.keySlicesMs ?? 0) + performance.now() - tKey;
        keySlices = keyBase.map((k, i) => ({ ...k, ...details[i] }));
      }
      slicesOut.push(...scoredSlices(s, scored, decided));
      seriesOut.push(scoredSeries(s, scored, decided, keySlices, dropped, opts.keepLabels === true));
      const secs = (performance.now() - ts) / 1000;
      log?.info(
        {
          seriesInstanceUid: s.seriesInstanceUid,
          slices: scored.length,
          dropped: dropped.length,
          score: decided.score,
          category: decided.category,
          fusion: decided.fusion,
          seconds: +secs.toFixed(2),
          slicesPerSecond: +(scored.length / secs).toFixed(1),
        },
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
    timing: {
      seconds: +seconds.toFixed(3),
      slicesScored: scoredCount,
      slicesPerSecond: +(scoredCount / seconds).toFixed(2),
      stages: roundStages(stages),
    },
  };
}

/** The result's slices of one series, in its scored order. */
function scoredSlices(s: PlannedSeries, scored: readonly ScoredInput[], decided: SeriesDecision): ScoredSlice[] {
  return scored.map((x, index) => {
    const sl = decided.slices[index] as SliceOutcome;
    return {
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
        ? {
            lungAreaMm2: sl.lungAreaMm2,
            opacityPercent: sl.opacityPercent,
            highOpacityPercent: sl.highOpacityPercent,
            eligible: sl.eligible,
          }
        : {}),
      ...(sl.ineligibleReason ? { ineligibleReason: sl.ineligibleReason } : {}),
    };
  });
}

/** The result's entry of one scored series. */
function scoredSeries(
  s: PlannedSeries,
  scored: readonly ScoredInput[],
  decided: SeriesDecision,
  keySlices: KeySliceResult[],
  dropped: ScoredSeries['dropped'],
  keepLabels: boolean,
): ScoredSeries {
  const iop = scored[0]?.header?.imageOrientationPatient ?? null;
  const zones = decided.opacity
    ? seriesZones(
        scored.map((x) => ({
          position: x.position,
          imageLeft: (x.info.lungs as NonNullable<PreparedSlice['lungs']>).imageLeft,
          imageRight: (x.info.lungs as NonNullable<PreparedSlice['lungs']>).imageRight,
        })),
        sliceSpacing(scored.map((x) => x.position)),
        iop,
      )
    : undefined;
  const labels: SeriesLabels | undefined =
    keepLabels && s.source === 'dicom' && scored.every((x) => x.info.labels)
      ? {
          imageOrientationPatient: iop,
          pixelSpacing: scored[0]?.header?.pixelSpacing ?? null,
          sliceThicknessMm: scored[0]?.header?.sliceThickness ?? null,
          slices: scored.map((x) => ({
            sopInstanceUid: x.header?.sopInstanceUid ?? null,
            sopClassUid: x.header?.sopClassUid ?? null,
            imagePositionPatient: x.header?.imagePositionPatient ?? null,
            labels: x.info.labels as SliceLabelRuns,
          })),
        }
      : undefined;
  return {
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
    ...(decided.minLungFraction !== undefined ? { minLungFraction: decided.minLungFraction } : {}),
    keySlices,
    ...(decided.opacity ? { opacity: decided.opacity } : {}),
    ...(decided.pattern ? { pattern: decided.pattern } : {}),
    ...(zones ? { zones } : {}),
    ...(labels ? { labels } : {}),
    dropped,
  };
}

function roundStages(st: StageTimings): StageTimings {
  const r = (x: number) => +x.toFixed(1);
  return {
    readMs: r(st.readMs),
    decodeMs: r(st.decodeMs),
    lungMs: r(st.lungMs),
    ...(st.patternMs !== undefined ? { patternMs: r(st.patternMs) } : {}),
    preprocessMs: r(st.preprocessMs),
    inferMs: r(st.inferMs),
    aggregateMs: r(st.aggregateMs),
    ...(st.keySlicesMs !== undefined ? { keySlicesMs: r(st.keySlicesMs) } : {}),
  };
}
