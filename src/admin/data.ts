/**
 * What the dashboard and the API show, read from Redis (tracker state, result records, dispatch
 * state and log, BullMQ jobs) and, for PHI, SR text and heatmaps, from the spool. One place that
 * turns the stages' records into one status per series.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Job, Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Config } from '../config/schema.js';
import { personNameValue, stringValue } from '../dicom/decode/header.js';
import { parseDicom } from '../dicom/decode/read.js';
import { Keys } from '../stores/keys.js';
import {
  parseStored,
  resultKey,
  resultRecordSchema,
  type DispatchAttempt,
  type DispatchState,
  type ResultRecord,
} from '../contracts/result-record.js';
import type { SeriesTracker } from '../queue/series-tracker.js';
import type { SeriesState } from '../queue/series-state.js';
import { listSeriesInstances } from '../dicom/spool/reader.js';
import { DispatchStore } from '../stores/dispatch-state.js';
import { resultDestinations } from '../config/schema.js';

/** One status per series, in pipeline order. */
export type DisplayStatus =
  | 'receiving'
  | 'waiting'
  | 'queued'
  | 'scoring'
  | 'scored'
  | 'dispatching'
  | 'sent'
  /** Scored, and held for at least one destination in silent mode (nothing else pending). */
  | 'held'
  | 'failed'
  | 'ignored'
  | 'not-scored';

export const STATUS_TEXT: Record<DisplayStatus, string> = {
  receiving: 'receiving',
  waiting: 'waiting for the quiet period',
  queued: 'queued',
  scoring: 'scoring',
  scored: 'scored',
  dispatching: 'sending',
  sent: 'sent',
  held: 'held (silent mode)',
  failed: 'failed',
  ignored: 'ignored',
  'not-scored': 'not scored',
};

/** An arrival within this many ms counts as "receiving" (then "waiting for the quiet period"). */
const RECEIVING_MS = 5_000;

export interface StageTimings {
  waitMs?: number;
  readMs?: number;
  decodeMs?: number;
  lungMs?: number;
  preprocessMs?: number;
  inferMs?: number;
  aggregateMs?: number;
  keySlicesMs?: number;
  resultsMs?: number;
  totalMs?: number;
  /** Sum of the successful dispatch attempts' durations. */
  dispatchMs?: number;
}

/** What identifies a series to a person, from its first spooled instance (no PHI). */
export interface SeriesInfo {
  /** StudyDate as DICOM writes it (YYYYMMDD). */
  studyDate?: string;
  seriesDescription?: string;
  modality?: string;
  seriesNumber?: string;
  bodyPartExamined?: string;
}

export interface SeriesSummary {
  seriesInstanceUid: string;
  studyInstanceUid: string;
  callingAeTitle: string;
  /** Study date, description, modality, series number (absent once the inputs are gone). */
  info: SeriesInfo;
  /** Patient name and ID: only when config.http.showPhi. */
  patient?: PatientInfo;
  status: DisplayStatus;
  statusText: string;
  /** Why ignored / not scored / failed. */
  reason?: string;
  /** 0..100 while scoring (the BullMQ job's progress). */
  progress?: number;
  /** Seconds left of the quiet period while waiting. */
  quietRemainingSeconds?: number;
  instancesReceived: number;
  /** Slices the model scored. */
  sliceCount?: number;
  score?: number;
  category?: string;
  threshold?: number;
  /** Half-width of the indeterminate band around the threshold (the category's band is shown with it). */
  indeterminateMargin?: number;
  model?: { name: string; version: string };
  timings: StageTimings;
  firstReceivedAt?: string;
  lastReceivedAt?: string;
  finishedAt?: string;
  jobId?: string;
  instancesHash?: string;
  destinations: { destination: string; status: DispatchState['status']; attempts: number; lastError?: string }[];
}

export interface PatientInfo {
  patientName: string;
  patientId: string;
}

export interface SeriesDetail extends SeriesSummary {
  tracker?: SeriesState;
  result?: ResultRecord;
  dispatch: DispatchState[];
  attempts: DispatchAttempt[];
  job?: { id: string; state: string; attemptsMade: number; failedReason?: string; progress?: unknown; enqueuedBy?: string };
}

export interface AdminDataOptions {
  config: Config;
  redis: Redis;
  tracker: SeriesTracker;
  inferenceQueue: Queue;
}

const iso = (ms: number | undefined): string | undefined => (ms ? new Date(ms).toISOString() : undefined);

/** Statuses that change by themselves soon: the dashboard updates every second while one is shown. */
export const ACTIVE_STATUSES: ReadonlySet<DisplayStatus> = new Set(['receiving', 'waiting', 'queued', 'scoring', 'dispatching']);

/** Series headers already read (they do not change); bounded. */
const HEADER_CACHE_MAX = 5000;

/** BullMQ progress (a number 0..100, a fraction, or an object) as a percentage. */
export function progressPercent(p: unknown): number | undefined {
  if (typeof p === 'number' && Number.isFinite(p)) return Math.max(0, Math.min(100, p <= 1 && p > 0 && !Number.isInteger(p) ? p * 100 : p));
  if (p && typeof p === 'object') {
    const o = p as Record<string, unknown>;
    if (typeof o.percent === 'number') return progressPercent(o.percent);
    const done = [o.done, o.scored, o.slicesDone, o.current].find((v) => typeof v === 'number') as number | undefined;
    const total = [o.total, o.slices, o.slicesTotal].find((v) => typeof v === 'number') as number | undefined;
    if (done !== undefined && total) return Math.max(0, Math.min(100, (done / total) * 100));
  }
  return undefined;
}

export class AdminData {
  readonly keys: Keys;
  private readonly dispatchStore: DispatchStore;
  private readonly headers = new Map<string, SeriesHeader>();

  constructor(private readonly opts: AdminDataOptions) {
    this.keys = new Keys(opts.config.redis.keyPrefix);
    this.dispatchStore = new DispatchStore(opts.redis, opts.config.redis.keyPrefix);
  }

  get config(): Config {
    return this.opts.config;
  }

  /** The series tracker (studies: src/admin/studies.ts). */
  get tracker(): SeriesTracker {
    return this.opts.tracker;
  }

  async getResult(seriesUid: string): Promise<ResultRecord | undefined> {
    const raw = await this.opts.redis.get(this.keys.result(seriesUid));
    if (!raw) return undefined;
    // A record from a newer writer with extra fields: show what we know rather than nothing.
    return parseStored(resultRecordSchema, raw) ?? (JSON.parse(raw) as ResultRecord);
  }

  async getDispatch(seriesUid: string): Promise<DispatchState[]> {
    return (await this.dispatchStore.states(seriesUid)).sort((a, b) => a.destination.localeCompare(b.destination));
  }

  getAttempts(seriesUid: string, limit = 100): Promise<DispatchAttempt[]> {
    return this.dispatchStore.attempts(seriesUid, limit);
  }

  /** The most recent series (by last arrival or last result update), newest first. */
  async listSeries(limit = 100): Promise<SeriesSummary[]> {
    const r = this.opts.redis;
    const [a, b] = await Promise.all([
      r.zrevrange(this.keys.seriesIndex(), 0, limit - 1, 'WITHSCORES'),
      r.zrevrange(this.keys.resultIndex(), 0, limit - 1, 'WITHSCORES'),
    ]);
    const latest = new Map<string, number>();
    for (const list of [a, b]) {
      for (let i = 0; i + 1 < list.length; i += 2) {
        const uid = list[i]!;
        latest.set(uid, Math.max(latest.get(uid) ?? 0, Number(list[i + 1])));
      }
    }
    const uids = [...latest.entries()]
      .sort((x, y) => y[1] - x[1])
      .slice(0, limit)
      .map(([u]) => u);
    const out = await Promise.all(uids.map((u) => this.summary(u)));
    return out.filter((s): s is SeriesSummary => s !== undefined);
  }

  async summary(seriesUid: string): Promise<SeriesSummary | undefined> {
    const d = await this.load(seriesUid);
    return d ? d.summary : undefined;
  }

  async detail(seriesUid: string): Promise<SeriesDetail | undefined> {
    const d = await this.load(seriesUid);
    if (!d) return undefined;
    const attempts = await this.getAttempts(seriesUid);
    const detail: SeriesDetail = { ...d.summary, dispatch: d.dispatch, attempts };
    if (d.tracker) detail.tracker = d.tracker;
    if (d.result) detail.result = d.result;
    if (d.job) {
      detail.job = {
        id: d.job.id ?? '',
        state: await d.job.getState(),
        attemptsMade: d.job.attemptsMade,
        ...(d.job.failedReason ? { failedReason: d.job.failedReason } : {}),
        ...(d.job.progress !== undefined ? { progress: d.job.progress } : {}),
        enqueuedBy: (d.job.data as { enqueuedBy?: string }).enqueuedBy,
      };
    }
    // Slices' spool paths are internal; the API keeps them (admins may need them), PHI-free.
    return detail;
  }

  private async load(
    seriesUid: string,
  ): Promise<{ summary: SeriesSummary; tracker?: SeriesState; result?: ResultRecord; dispatch: DispatchState[]; job?: Job } | undefined> {
    const [tracker, result, dispatch] = await Promise.all([
      this.opts.tracker.getSeries(seriesUid),
      this.getResult(seriesUid),
      this.getDispatch(seriesUid),
    ]);
    if (!tracker && !result) return undefined;
    const jobId = tracker?.jobId ?? result?.jobId;
    const job = jobId ? await this.opts.inferenceQueue.getJob(jobId).catch(() => undefined) : undefined;
    const summary = await this.compose(seriesUid, tracker, result, dispatch, job ?? undefined);
    return { summary, ...(tracker ? { tracker } : {}), ...(result ? { result } : {}), dispatch, ...(job ? { job } : {}) };
  }

  /** Study/series attributes (and patient, for showPhi) of a series, read once from its first spooled instance. */
  private async header(seriesUid: string, seriesDir: string | undefined): Promise<SeriesHeader | undefined> {
    const cached = this.headers.get(seriesUid);
    if (cached || !seriesDir) return cached;
    const h = await readSeriesHeader(seriesDir).catch(() => undefined);
    if (!h) return undefined;
    if (this.headers.size >= HEADER_CACHE_MAX) this.headers.delete(this.headers.keys().next().value as string);
    this.headers.set(seriesUid, h);
    return h;
  }

  private async compose(
    seriesUid: string,
    tracker: SeriesState | undefined,
    result: ResultRecord | undefined,
    dispatch: DispatchState[],
    job: Job | undefined,
  ): Promise<SeriesSummary> {
    const cfg = this.opts.config;
    const now = Date.now();
    // The result belongs to the tracker's current content unless the series grew since.
    const currentHash = tracker?.instancesHash;
    const resultCurrent = result && (!currentHash || result.instancesHash === currentHash || tracker?.status !== 'queued');
    let status: DisplayStatus;
    let reason: string | undefined;
    let progress: number | undefined;
    let quietRemainingSeconds: number | undefined;
    const trackerStatus = tracker?.status as string | undefined;
    const jobState = job ? await job.getState().catch(() => 'unknown') : undefined;

    if (trackerStatus === 'receiving') {
      const since = now - (tracker?.lastReceivedAt ?? 0);
      status = since < RECEIVING_MS ? 'receiving' : 'waiting';
      quietRemainingSeconds = Math.max(0, Math.round(cfg.series.quietPeriodSeconds - since / 1000));
    } else if (trackerStatus === 'ignored') {
      status = 'ignored';
      reason = tracker?.reason;
    } else if (
      resultCurrent &&
      result.status !== 'scoring' &&
      !(jobState === 'active' || jobState === 'waiting' || jobState === 'delayed')
    ) {
      if (result.status === 'not-scored') {
        status = 'not-scored';
        reason = result.reason;
      } else if (result.status === 'failed') {
        status = 'failed';
        reason = result.reason;
      } else {
        status = this.dispatchStatus(result, dispatch);
        const failed = dispatch.find((d) => d.status === 'failed' && d.instancesHash === resultKey(result));
        if (failed) reason = `send to ${failed.destination} failed: ${failed.lastError ?? 'unknown error'}`;
      }
    } else if (jobState === 'active' || result?.status === 'scoring' || trackerStatus === 'scoring') {
      status = 'scoring';
      progress = progressPercent(job?.progress);
    } else if (jobState === 'failed' || trackerStatus === 'failed') {
      status = 'failed';
      reason = job?.failedReason ?? tracker?.reason;
    } else if (trackerStatus === 'not-scored') {
      status = 'not-scored';
      reason = tracker?.reason;
    } else {
      status = 'queued';
    }

    const t = resultCurrent ? result.timings : {};
    const timings: StageTimings = { ...t };
    const sent = dispatch.filter((d) => d.status === 'sent');
    if (resultCurrent && sent.length > 0) {
      const attempts = await this.getAttempts(seriesUid, 50);
      const ms = attempts.filter((a) => a.outcome === 'sent' && a.instancesHash === resultKey(result)).reduce((s, a) => s + a.ms, 0);
      if (ms > 0) timings.dispatchMs = ms;
    }
    const header = await this.header(seriesUid, tracker?.seriesDir ?? result?.seriesDir);
    const summary: SeriesSummary = {
      seriesInstanceUid: seriesUid,
      studyInstanceUid: tracker?.studyInstanceUid ?? result?.studyInstanceUid ?? '',
      callingAeTitle: tracker?.callingAeTitle || result?.callingAeTitle || '',
      info: header?.info ?? {},
      ...(cfg.http.showPhi && header?.patient ? { patient: header.patient } : {}),
      status,
      statusText: STATUS_TEXT[status],
      instancesReceived: tracker?.instancesReceived ?? result?.instanceCount ?? 0,
      timings,
      destinations: dispatch.map((d) => ({
        destination: d.destination,
        status: d.status,
        attempts: d.attempts,
        ...(d.lastError ? { lastError: d.lastError } : {}),
      })),
    };
    if (reason) summary.reason = reason;
    if (progress !== undefined) summary.progress = progress;
    if (quietRemainingSeconds !== undefined && status === 'waiting') summary.quietRemainingSeconds = quietRemainingSeconds;
    const first = iso(tracker?.firstReceivedAt);
    const last = iso(tracker?.lastReceivedAt);
    if (first) summary.firstReceivedAt = first;
    if (last) summary.lastReceivedAt = last;
    const jobId = job?.id ?? tracker?.jobId ?? result?.jobId;
    if (jobId) summary.jobId = jobId;
    const hash = currentHash ?? result?.instancesHash;
    if (hash) summary.instancesHash = hash;
    if (resultCurrent && result) {
      if (result.slices.length > 0) summary.sliceCount = result.slices.length;
      if (result.score !== undefined) summary.score = result.score;
      if (result.category) summary.category = result.category;
      if (result.threshold !== undefined) summary.threshold = result.threshold;
      if (result.indeterminateMargin !== undefined) summary.indeterminateMargin = result.indeterminateMargin;
      summary.model = { name: result.model.name, version: result.model.version };
      if (result.finishedAt) summary.finishedAt = result.finishedAt;
    }
    return summary;
  }

  /**
   * A scored series: "sent" when every configured destination got the current result, "failed" when
   * one gave up, "held" when the others are held (silent mode) or withheld, "sending" while any is
   * pending; with no destinations configured, "scored" is final.
   */
  private dispatchStatus(result: ResultRecord, dispatch: DispatchState[]): DisplayStatus {
    const dests = resultDestinations(this.opts.config).map((d) => d.name);
    if (dests.length === 0) return 'scored';
    const current = dispatch.filter((d) => d.instancesHash === resultKey(result));
    if (current.some((d) => d.status === 'failed')) return 'failed';
    if (dests.every((n) => current.some((d) => d.destination === n && d.status === 'sent'))) return 'sent';
    // Held (silent mode) or withheld at release, the rest sent: nothing is under way.
    const settled = (n: string) => current.some((d) => d.destination === n && ['sent', 'held', 'withheld'].includes(d.status));
    if (dests.every(settled) && current.some((d) => d.status === 'held' || d.status === 'withheld')) return 'held';
    return 'dispatching';
  }
}

interface SeriesHeader {
  info: SeriesInfo;
  patient: PatientInfo;
}

/** Study date, series description, modality, series number, body part and patient of the first spooled instance of a series. */
export async function readSeriesHeader(seriesDir: string): Promise<SeriesHeader | undefined> {
  const sops = await listSeriesInstances(seriesDir);
  const first = sops.sort()[0];
  if (!first) return undefined;
  const ds = parseDicom(await readFile(join(seriesDir, `${first}.dcm`)), { headerOnly: true }).dataset;
  const at = (tag: string): string | undefined => stringValue(ds, tag) ?? undefined;
  const info: SeriesInfo = {};
  const fields: [keyof SeriesInfo, string][] = [
    ['studyDate', '00080020'],
    ['seriesDescription', '0008103E'],
    ['modality', '00080060'],
    ['seriesNumber', '00200011'],
    ['bodyPartExamined', '00180015'],
  ];
  for (const [k, tag] of fields) {
    const v = at(tag);
    if (v !== undefined) info[k] = v;
  }
  const name = personNameValue(ds, '00100010') ?? '';
  return { info, patient: { patientName: name.replace(/\^+$/, '').replace(/\^/g, ' '), patientId: at('00100020') ?? '' } };
}
