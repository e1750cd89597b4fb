import { createHash } from 'node:crypto';
import { isAbsolute } from 'node:path';
import { z } from 'zod';
import type { JobsOptions } from 'bullmq';

/** BullMQ queue of complete series waiting to be scored. */
export const INFERENCE_QUEUE = 'inference';
/** Internal BullMQ queue: one debounced "series may be complete" job per series. */
export const SETTLE_QUEUE = 'series-settle';
/** BullMQ queue of result sets to send: one job per (result, destination). */
export const DISPATCH_QUEUE = 'dispatch';

const uid = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[0-9]+(\.[0-9]+)*$/, 'must be a DICOM UID');
const isoDate = z.string().datetime({ offset: true });

export const enqueuedBySchema = z.enum(['tracker', 'reconciler', 'admin']);
export type EnqueuedBy = z.infer<typeof enqueuedBySchema>;

/** One series of a study as the study's inference job carries it (fallback order, roles for the SR). */
export const studySeriesRoleSchema = z.strictObject({
  seriesInstanceUid: uid,
  seriesNumber: z.string(),
  seriesDescription: z.string(),
  role: z.enum(['chosen', 'candidate', 'ignored']),
  reason: z.string(),
});
export type StudySeriesRole = z.infer<typeof studySeriesRoleSchema>;

/** A candidate series to score when the chosen one cannot be scored. */
export const fallbackSeriesSchema = z.strictObject({
  seriesInstanceUid: uid,
  seriesDir: z.string().refine((p) => isAbsolute(p), 'must be an absolute path'),
  instanceCount: z.number().int().min(1),
  instancesHash: z.string().regex(/^[0-9a-f]{64}$/),
});

/** Study context of an inference job (results.perSeries false: one result per study). */
export const studyJobContextSchema = z.strictObject({
  /** sha256 hex over the study's "<series UID>:<instances hash>" pairs: the study's content. */
  contentHash: z.string().regex(/^[0-9a-f]{64}$/),
  roles: z.array(studySeriesRoleSchema),
  /** Candidates still to try, in preference order, if this series cannot be scored. */
  fallback: z.array(fallbackSeriesSchema),
  /** The series holding the study's previous result (its SR becomes the predecessor), when not this one. */
  previousSeries: uid.optional(),
  /** No candidate in the study: record 'not scored' with every series' reason, without scoring. */
  noCandidate: z.boolean().optional(),
});
export type StudyJobContext = z.infer<typeof studyJobContextSchema>;

/** Payload of an `inference` job: one series with a fixed content (its set of instances). */
export const inferenceJobSchema = z.strictObject({
  studyInstanceUid: uid,
  seriesInstanceUid: uid,
  /** Absolute path of the spooled series: `<spool.dir>/<StudyInstanceUID>/<SeriesInstanceUID>`. */
  seriesDir: z.string().refine((p) => isAbsolute(p), 'must be an absolute path'),
  instanceCount: z.number().int().min(1),
  /** sha256 hex of the sorted SOP Instance UIDs joined by "\n" (see instancesHash). */
  instancesHash: z.string().regex(/^[0-9a-f]{64}$/),
  callingAeTitle: z.string(),
  firstReceivedAt: isoDate,
  lastReceivedAt: isoDate,
  enqueuedBy: enqueuedBySchema,
  /** Present when the series is scored for its whole study. */
  study: studyJobContextSchema.optional(),
});
export type InferenceJobData = z.infer<typeof inferenceJobSchema>;

/** Payload of a `series-settle` job: one series (name "settle") or one study (name "settle-study"). */
export const settleJobSchema = z.union([z.strictObject({ seriesInstanceUid: uid }), z.strictObject({ studyInstanceUid: uid })]);
export type SettleJobData = z.infer<typeof settleJobSchema>;

/** Job id of the inference job of a study's content (one result per study). */
export function studyInferenceJobId(studyInstanceUid: string, contentHash: string): string {
  return `study-${studyInstanceUid}-${contentHash}`;
}

/** sha256 hex of the SOP Instance UIDs, sorted (code-unit order) and joined by "\n". */
export function instancesHash(sopInstanceUids: Iterable<string>): string {
  const sorted = [...new Set(sopInstanceUids)].sort();
  return createHash('sha256').update(sorted.join('\n')).digest('hex');
}

/**
 * Job id of the inference job for one (series, content): BullMQ keeps one job per id, so every
 * listener, the reconciler and a repeated settle all land on the same job for the same content,
 * and a series that grew gets a new id (it "reopens").
 */
export function inferenceJobId(seriesInstanceUid: string, hash: string): string {
  return `series-${seriesInstanceUid}-${hash}`;
}

/** Options of every inference job (the worker may rely on them: retries with backoff, kept history). */
export const INFERENCE_JOB_OPTIONS: JobsOptions = {
  attempts: 3,
  backoff: { type: 'exponential', delay: 30_000 },
  removeOnComplete: { age: 30 * 24 * 3600, count: 10_000 },
  removeOnFail: false,
};

/** Payload of a `dispatch` job: send one series' result objects (SR + SC files) to one destination. */
export const dispatchJobSchema = z.strictObject({
  studyInstanceUid: uid,
  seriesInstanceUid: uid,
  /** The scored content (inference job's instancesHash) these results belong to. */
  instancesHash: z.string().regex(/^[0-9a-f]{64}$/),
  /** config.destinations[].name */
  destination: z.string().min(1),
  /** Absolute paths of the Part-10 result files, in send order. */
  files: z.array(z.string().refine((p) => isAbsolute(p), 'must be an absolute path')).min(1),
  enqueuedBy: z.enum(['worker', 'admin']),
});
export type DispatchJobData = z.infer<typeof dispatchJobSchema>;

/**
 * Job id of a dispatch job: one per (series, content, model version, destination), so a re-run of
 * the same inference job, or a second enqueue, lands on the same job (and nothing is sent twice).
 */
export function dispatchJobId(seriesInstanceUid: string, hash: string, modelVersion: string, destination: string): string {
  return `dispatch-${seriesInstanceUid}-${hash.slice(0, 16)}-${modelVersion}-${destination}`.replace(/:/g, '_');
}
