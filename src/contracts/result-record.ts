/**
 * The result record of a series: what the inference worker writes to Redis (key
 * `Keys.result(seriesUid)`, JSON) and the results stage, the dispatcher, the dashboard and the API read.
 * One record per series: the latest scored content. When a series grows and is scored again,
 * the old record's identity moves into `previous` (the new SR names the old one as predecessor).
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';

const uid = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[0-9]+(\.[0-9]+)*$/);

export const resultStatusSchema = z.enum([
  /** The worker is on it (progress in the BullMQ job). */
  'scoring',
  /** Scored; result objects written (see outputs). */
  'scored',
  /** Deterministic input problem: not scored, `reason` says why; no retries. */
  'not-scored',
  /** A transient failure exhausted its retries; `reason` holds the last error. */
  'failed',
]);
export type ResultStatus = z.infer<typeof resultStatusSchema>;

export const categorySchema = z.enum(['likely', 'indeterminate', 'unlikely']);

export const resultSliceSchema = z.strictObject({
  /** Position in scored order (0 = most superior). */
  index: z.number().int().min(0),
  sopInstanceUid: uid,
  sopClassUid: uid,
  /** Absolute path of the spooled instance. */
  file: z.string(),
  probability: z.number().min(0).max(1),
  /** mm along the slice normal. */
  position: z.number().nullable(),
  instanceNumber: z.number().int().nullable(),
  /** The CNN's own COVID-19-pattern probability (`probability` is the fused, final number). */
  cnnProbability: z.number().min(0).max(1).optional(),
  /** Lung area on this slice, mm² (HU input only). */
  lungAreaMm2: z.number().min(0).optional(),
  /** Opacity (ground glass + consolidation) as % of this slice's lung area (HU input only). */
  opacityPercent: z.number().min(0).max(100).optional(),
  /** High opacity (consolidation) as % of this slice's lung area (HU input only). */
  highOpacityPercent: z.number().min(0).max(100).optional(),
  /** False when the slice holds too little lung to drive the score or be a key slice; `ineligibleReason` says why. */
  eligible: z.boolean().optional(),
  ineligibleReason: z.string().optional(),
});
export type ResultSlice = z.infer<typeof resultSliceSchema>;

/** Volumes and percentages of one lung region (left, right or both). */
export const opacityMeasureSchema = z.strictObject({
  lungMl: z.number().min(0),
  /** Ground glass + consolidation, vessels suppressed. */
  opacityMl: z.number().min(0),
  /** Consolidation only. */
  highOpacityMl: z.number().min(0),
  /** opacityMl / lungMl × 100 (0 when there is no lung). */
  percentOpacity: z.number().min(0).max(100),
  /** highOpacityMl / lungMl × 100. */
  percentHighOpacity: z.number().min(0).max(100),
});
export type OpacityMeasure = z.infer<typeof opacityMeasureSchema>;

/** Series-level lung and opacity quantification from HU (absent for 8-bit inputs). */
export const seriesOpacitySchema = z.strictObject({
  /** Method id and HU ranges used, as in the model metadata's `quantification` block. */
  method: z.string(),
  opacityHu: z.tuple([z.number(), z.number()]),
  highOpacityHu: z.tuple([z.number(), z.number()]),
  /** Slab thickness each slice stands for (median spacing of the slice positions), mm. */
  sliceSpacingMm: z.number().positive().optional(),
  /** Median SliceThickness of the slices (mm), when known. */
  sliceThicknessMm: z.number().positive().optional(),
  /** Ground-glass opening radius used at that thickness (mm; wider on thick slices, see the model card). */
  groundGlassOpenMm: z.number().min(0).optional(),
  total: opacityMeasureSchema,
  left: opacityMeasureSchema,
  right: opacityMeasureSchema,
});
export type SeriesOpacity = z.infer<typeof seriesOpacitySchema>;

const share = z.number().min(0).max(1);
const zoneShares = z.strictObject({ upper: share, middle: share, lower: share });

/**
 * How the opacity is distributed, and the pattern category after the RSNA consensus (HU input only): an automated
 * description, never a diagnosis. Rule and features: docs/pattern-rule.md, src/model/pattern*.ts.
 */
export const seriesPatternSchema = z.strictObject({
  category: z.enum(['typical', 'indeterminate', 'atypical', 'no-opacity']),
  /** Rule name and version, e.g. "rsna-distribution-v1". */
  rule: z.string(),
  /** The criteria that decided the category, in words. */
  criteria: z.array(z.string()),
  features: z.strictObject({
    opacityMl: z.number().min(0),
    percentOpacity: z.number().min(0).max(100),
    groundGlassShare: share,
    rightOpacityMl: z.number().min(0),
    leftOpacityMl: z.number().min(0),
    minorityLungShare: share,
    peripheralShare: share,
    lungPeripheralShare: share,
    dorsalShare: share,
    lungDorsalShare: share,
    zoneShare: zoneShares,
    lungZoneShare: zoneShares,
    foci: z.number().int().min(0),
    smallFoci: z.number().int().min(0),
    smallFociShare: share,
    largestFocusMl: z.number().min(0),
    largestFocusShare: share,
    roundness: share.nullable(),
  }),
});
export type SeriesPatternRecord = z.infer<typeof seriesPatternSchema>;
/** One lung zone (src/model/zones.ts): volumes, percentages and its Pan et al. extent bin. */
export const zoneMeasureSchema = z.strictObject({
  lungMl: z.number().min(0),
  opacityMl: z.number().min(0),
  highOpacityMl: z.number().min(0),
  percentOpacity: z.number().min(0).max(100),
  percentHighOpacity: z.number().min(0).max(100),
  /** 0 none, 1 < 5 %, 2 5–25 %, 3 26–49 %, 4 50–75 %, 5 > 75 % opacified. */
  score: z.number().int().min(0).max(5),
  /** Scored-order indices of the zone's first and last slice (−1 when empty) and its slice count. */
  firstSlice: z.number().int().min(-1),
  lastSlice: z.number().int().min(-1),
  slices: z.number().int().min(0),
});
const lungZonesSchema = z.strictObject({ upper: zoneMeasureSchema, middle: zoneMeasureSchema, lower: zoneMeasureSchema });

/** Upper, middle and lower thirds of each lung's craniocaudal extent and the zone score 0–30 (HU input only). */
export const seriesZonesSchema = z.strictObject({
  rule: z.literal('lung-thirds-v1'),
  right: lungZonesSchema,
  left: lungZonesSchema,
  score: z.number().int().min(0).max(30),
});
export type SeriesZonesRecord = z.infer<typeof seriesZonesSchema>;

/**
 * Where on a key slice the finding is, in DICOM SCOORD image coordinates of the source image
 * (column, row; (0,0) is the top-left corner of the top-left pixel, so pixel (c, r) has its centre
 * at (c + 0.5, r + 0.5)). Always inside the lung mask.
 */
export const keyRegionSchema = z.strictObject({
  /** Attention peak inside the lungs (or the opacity centroid where no attention map exists). */
  peak: z.tuple([z.number(), z.number()]),
  /** Closed outline (first point = last point) of the largest opacity region, flat [x0, y0, x1, y1, …]; absent when the slice has none. */
  polygon: z.array(z.number()).optional(),
  /** Area inside `polygon`, mm². */
  polygonAreaMm2: z.number().min(0).optional(),
});
export type KeyRegion = z.infer<typeof keyRegionSchema>;

export const attentionMapSchema = z.strictObject({
  width: z.number().int().min(1),
  height: z.number().int().min(1),
  /** Row-major values 0..1, width × height. */
  data: z.array(z.number()),
  /** Source image size (Columns × Rows). */
  imageWidth: z.number().int().min(1),
  imageHeight: z.number().int().min(1),
  /** Inclusive pixel box of the source image the map covers (the preprocessing's crop). */
  cropBox: z.strictObject({ x0: z.number().int(), y0: z.number().int(), x1: z.number().int(), y1: z.number().int() }),
});
export type AttentionMap = z.infer<typeof attentionMapSchema>;

export const keySliceSchema = z.strictObject({
  index: z.number().int().min(0),
  sopInstanceUid: uid,
  probability: z.number().min(0).max(1),
  /** Attention over `cropBox`, already zero outside the lung mask. */
  attention: attentionMapSchema.optional(),
  cnnProbability: z.number().min(0).max(1).optional(),
  opacityPercent: z.number().min(0).max(100).optional(),
  highOpacityPercent: z.number().min(0).max(100).optional(),
  region: keyRegionSchema.optional(),
});
export type ResultKeySlice = z.infer<typeof keySliceSchema>;

export const timingsSchema = z.strictObject({
  /** From the series' last arrival to the job start (includes the quiet period). */
  waitMs: z.number().min(0).optional(),
  readMs: z.number().min(0).optional(),
  decodeMs: z.number().min(0).optional(),
  /** Lung segmentation and opacity masks (HU slices). */
  lungMs: z.number().min(0).optional(),
  preprocessMs: z.number().min(0).optional(),
  inferMs: z.number().min(0).optional(),
  aggregateMs: z.number().min(0).optional(),
  /** The key-slice pass: attention inside the lungs, finding regions. */
  keySlicesMs: z.number().min(0).optional(),
  resultsMs: z.number().min(0).optional(),
  totalMs: z.number().min(0).optional(),
});

export const outputFileSchema = z.strictObject({
  kind: z.enum(['sr', 'kos', 'heatmap', 'summary', 'seg', 'gsps']),
  /** Absolute path of the Part-10 file in the spool's results area. */
  path: z.string(),
  sopClassUid: uid,
  sopInstanceUid: uid,
  seriesInstanceUid: uid,
  /** For heatmaps and presentation states: the source slice's SOP Instance UID. */
  sourceSopInstanceUid: uid.optional(),
});
export type OutputFile = z.infer<typeof outputFileSchema>;

export const previousResultSchema = z.strictObject({
  instancesHash: z.string(),
  modelVersion: z.string(),
  srSopInstanceUid: uid.optional(),
  srSeriesInstanceUid: uid.optional(),
  finishedAt: z.string().optional(),
});

/** One series of the study in a study result: its role and why (results.perSeries false). */
export const studySeriesRoleRecordSchema = z.strictObject({
  seriesInstanceUid: uid,
  seriesNumber: z.string(),
  seriesDescription: z.string(),
  role: z.enum(['chosen', 'candidate', 'ignored']),
  reason: z.string(),
});

/** The study a result answers for (one result per study). */
export const studyResultSchema = z.strictObject({
  /** sha256 hex over the study's "<series UID>:<instances hash>" pairs. */
  contentHash: z.string().regex(/^[0-9a-f]{64}$/),
  roles: z.array(studySeriesRoleRecordSchema),
});

export const resultRecordSchema = z.strictObject({
  studyInstanceUid: uid,
  seriesInstanceUid: uid,
  instancesHash: z.string().regex(/^[0-9a-f]{64}$/),
  jobId: z.string(),
  seriesDir: z.string(),
  callingAeTitle: z.string(),
  status: resultStatusSchema,
  /** Why not scored / failed. */
  reason: z.string().optional(),
  model: z.strictObject({ name: z.string(), version: z.string(), sha256: z.string() }),
  /** Execution provider the ONNX session really runs on ("cpu", "cuda"). */
  provider: z.string(),
  instanceCount: z.number().int().min(0),
  score: z.number().min(0).max(1).optional(),
  category: categorySchema.optional(),
  threshold: z.number().optional(),
  indeterminateMargin: z.number().optional(),
  /** Slices the series score used (top-k mean). */
  k: z.number().int().optional(),
  /** The CNN's share of the score: its calibrated COVID-19-pattern probability over the slices the score used (the top-k mean itself when fusion is 'cnn-only'). */
  cnnScore: z.number().min(0).max(1).optional(),
  /** How slice probabilities and the series score were made: 'cnn+opacity' (HU input) or 'cnn-only' (no HU). */
  fusion: z.enum(['cnn+opacity', 'cnn-only']).optional(),
  /** Lung and opacity quantification (HU input only). */
  opacity: seriesOpacitySchema.optional(),
  /** How the opacity is distributed and its pattern category (HU input only; never a diagnosis). */
  pattern: seriesPatternSchema.optional(),
  /** Lung zones and the zone score (HU input only). */
  zones: seriesZonesSchema.optional(),
  /** Scored slices, in scored order. */
  slices: z.array(resultSliceSchema),
  keySlices: z.array(keySliceSchema),
  /** Instances not scored, with reasons (capped at 1000 entries). */
  dropped: z.array(z.strictObject({ sopInstanceUid: z.string().nullable(), reason: z.string() })),
  timings: timingsSchema,
  startedAt: z.string(),
  finishedAt: z.string().optional(),
  attemptsMade: z.number().int().min(0),
  /** Result objects, once written by src/results. */
  outputs: z.array(outputFileSchema).optional(),
  /** Earlier results of this series (older content), newest first. */
  previous: z.array(previousResultSchema).optional(),
  /** Present when this series' result is its study's one result (results.perSeries false). */
  study: studyResultSchema.optional(),
});
export type ResultRecord = z.infer<typeof resultRecordSchema>;

/**
 * The identity of a result's content: the instances hash for a per-series result; for a study
 * result, sha256 of the instances hash and the study's content hash (the same series scored again
 * because its study grew is a new result, with its own UIDs and dispatch). Result UIDs, the
 * results folder, dispatch jobs and dispatch states use it.
 */
export function resultKey(record: Pick<ResultRecord, 'instancesHash' | 'study'>): string {
  if (!record.study) return record.instancesHash;
  return createHash('sha256').update(`${record.instancesHash}\n${record.study.contentHash}`).digest('hex');
}

/** State of sending the latest result to one destination (hash `Keys.dispatch(seriesUid)`). */
export const dispatchStateSchema = z.strictObject({
  destination: z.string(),
  instancesHash: z.string(),
  /**
   * held: the target is in silent mode, nothing was sent (no job, or the job stopped before sending);
   * withheld: held, then released without sending (release with sendHeld false); never sent.
   */
  status: z.enum(['pending', 'sending', 'sent', 'failed', 'held', 'withheld']),
  attempts: z.number().int().min(0),
  instancesSent: z.number().int().min(0),
  warnings: z.number().int().min(0),
  lastError: z.string().optional(),
  lastAttemptAt: z.string().optional(),
  sentAt: z.string().optional(),
  jobId: z.string(),
  /** When the result was held (silent mode). */
  heldAt: z.string().optional(),
  /** Who asked for the send that was held: the pipeline (sent at most once on release) or an admin's re-send (run again on release). */
  heldBy: z.enum(['worker', 'admin']).optional(),
  /** When a held result was released: sent (status pending → sent) or withheld. */
  releasedAt: z.string().optional(),
});
export type DispatchState = z.infer<typeof dispatchStateSchema>;

/** One try to send (list `Keys.dispatchLog(seriesUid)`). */
export const dispatchAttemptSchema = z.strictObject({
  destination: z.string(),
  instancesHash: z.string(),
  attempt: z.number().int().min(1),
  at: z.string(),
  ms: z.number().min(0),
  outcome: z.enum(['sent', 'failed']),
  sent: z.number().int().min(0),
  warnings: z.number().int().min(0),
  failed: z.number().int().min(0),
  error: z.string().optional(),
});
export type DispatchAttempt = z.infer<typeof dispatchAttemptSchema>;

/**
 * A stored JSON value (result record, dispatch state, attempt) validated against its schema:
 * undefined when it is not JSON or not valid, so every reader skips a damaged entry the same way.
 */
export function parseStored<T>(schema: z.ZodType<T>, raw: string | null | undefined): T | undefined {
  if (!raw) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return undefined;
  }
  const r = schema.safeParse(value);
  return r.success ? r.data : undefined;
}
