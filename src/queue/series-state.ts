/**
 * A series as the series tracker keeps it in Redis (hash `<prefix>:series:<uid>`, its instances in
 * `<prefix>:series:<uid>:instances`, listed by last arrival in `<prefix>:series-index`).
 */
import type { EnqueuedBy } from './jobs.js';
import type { IgnoreCode } from './routing.js';
import type { SeriesRole } from './series-selection.js';

export type SeriesStatus =
  | 'receiving'
  | 'queued'
  | 'ignored'
  /** Set by the inference worker (src/worker/inference) as the job runs and ends. */
  | 'scoring'
  | 'scored'
  | 'not-scored'
  | 'failed';

/** A series as the tracker keeps it in Redis (hash `<prefix>:series:<uid>`). */
export interface SeriesState {
  studyInstanceUid: string;
  seriesInstanceUid: string;
  seriesDir: string;
  callingAeTitle: string;
  firstReceivedAt: number;
  lastReceivedAt: number;
  status: SeriesStatus;
  /** Instances known now (grows while receiving). */
  instancesReceived: number;
  /** Content of the last settle: count and hash of the instances it saw. */
  instanceCount?: number;
  instancesHash?: string;
  scorableInstances?: number;
  excludedInstances?: number;
  /** Set when status is ignored. */
  ignoreCode?: IgnoreCode;
  reason?: string;
  /** Modality and BodyPartExamined values seen (at the last settle). */
  modalities?: string[];
  bodyParts?: string[];
  /** Study mode (results.perSeries false): the series' role in its study and why. */
  role?: SeriesRole;
  roleReason?: string;
  /** Study mode: what selection saw (SeriesNumber, description, orientation, thickness, spacing, coverage, kernel). */
  seriesNumber?: string;
  seriesDescription?: string;
  orientation?: string;
  sliceThicknessMm?: number;
  spacingMm?: number;
  coverageMm?: number;
  kernel?: string;
  /** Set when status is queued. */
  jobId?: string;
  /** Content hash of the last inference job added; kept while new instances arrive. */
  queuedHash?: string;
  enqueuedBy?: EnqueuedBy;
  settledAt?: number;
}

/**
 * Parses the series hash (undefined when the series is unknown). `instancesReceived` is the size of
 * its instances hash; `defaultSeriesDir` stands in for a record that lacks the folder.
 */
export function parseSeriesState(
  h: Record<string, string>,
  instancesReceived: number,
  defaultSeriesDir: (studyInstanceUid: string, seriesInstanceUid: string) => string,
): SeriesState | undefined {
  if (!h.studyInstanceUid || !h.seriesInstanceUid) return undefined;
  const n = (v: string | undefined): number | undefined => (v === undefined || v === '' ? undefined : Number(v));
  const state: SeriesState = {
    studyInstanceUid: h.studyInstanceUid,
    seriesInstanceUid: h.seriesInstanceUid,
    seriesDir: h.seriesDir ?? defaultSeriesDir(h.studyInstanceUid, h.seriesInstanceUid),
    callingAeTitle: h.callingAeTitle ?? '',
    firstReceivedAt: n(h.firstReceivedAt) ?? 0,
    lastReceivedAt: n(h.lastReceivedAt) ?? 0,
    status: (h.status as SeriesStatus | undefined) ?? 'receiving',
    instancesReceived,
  };
  if (h.instanceCount) state.instanceCount = Number(h.instanceCount);
  if (h.instancesHash) state.instancesHash = h.instancesHash;
  if (h.scorableInstances) state.scorableInstances = Number(h.scorableInstances);
  if (h.excludedInstances) state.excludedInstances = Number(h.excludedInstances);
  if (h.ignoreCode) state.ignoreCode = h.ignoreCode as IgnoreCode;
  if (h.reason) state.reason = h.reason;
  if (h.jobId) state.jobId = h.jobId;
  if (h.queuedHash) state.queuedHash = h.queuedHash;
  if (h.role) state.role = h.role as SeriesRole;
  if (h.roleReason) state.roleReason = h.roleReason;
  for (const f of ['seriesNumber', 'seriesDescription', 'orientation', 'kernel'] as const) if (h[f]) state[f] = h[f];
  for (const f of ['sliceThicknessMm', 'spacingMm', 'coverageMm'] as const) if (h[f]) state[f] = Number(h[f]);
  if (h.modalities !== undefined) state.modalities = h.modalities.split('\\');
  if (h.bodyParts !== undefined) state.bodyParts = h.bodyParts.split('\\');
  if (h.enqueuedBy) state.enqueuedBy = h.enqueuedBy as EnqueuedBy;
  if (h.settledAt) state.settledAt = Number(h.settledAt);
  return state;
}
