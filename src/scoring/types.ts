/** What scoreFiles (score.ts) takes and gives: its options, progress, and the result's shape (the `mlsam score --json` output). */
import type { Logger } from '../log.js';
import type { SeriesCategory } from '../model/aggregate.js';
import type { ModelSession, ProviderName } from '../model/session.js';
import type { ImageFormat } from './image-file.js';
import type { KeySliceDetail } from './key-slices.js';
import type { SlicePreparer } from './slice-preparer.js';
import type { SeriesOpacityResult } from './series-opacity.js';
import type { SeriesPattern } from './series-pattern.js';
import type { DroppedSlice } from './select-slices.js';
import type { SliceLabelRuns } from '../model/seg-masks.js';
import type { SeriesZones } from '../model/zones.js';

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
  /** HU series: a slice is eligible when its lung area is at least this fraction of the series' largest. */
  minLungFraction?: number;
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
