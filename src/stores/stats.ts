/**
 * Shared counters and histograms in Redis, for /metrics across processes: `mlsam listen`, `work`
 * and `admin` may run apart, so every producer writes here and the admin's /metrics reads it at
 * scrape time. Everything is one hash, `<prefix>:stats:counters`, field → number:
 *
 *   c|<name>|<labels>          counter value
 *   h|<name>|<labels>|<le>     histogram bucket (NOT cumulative; "+Inf" for beyond the last bound)
 *   h|<name>|<labels>|sum      histogram sum
 *   h|<name>|<labels>|count    histogram count
 *   g|<name>|<labels>          gauge (last value written)
 *
 * `<labels>` is `k=v,k=v` with keys sorted ("" for none). Writes are fire-and-forget (HINCRBYFLOAT
 * in a pipeline): they never throw into the caller's path and never wait on a dead Redis.
 *
 * Events that could be reported twice (the same result seen by a producer call and by the admin's
 * deriver, or two admin processes) are recorded through `recordOnce`: a Lua script adds the event
 * id to the sorted set `<prefix>:stats:seen` (ZADD NX) and increments only when the id is new, so
 * every event counts once whoever reports it. Seen ids older than 35 days are trimmed.
 */
import type { Redis } from 'ioredis';
import { loadLua } from './lua.js';
import type { AssociationRecord } from '../dicom/received-instance.js';
import type { DispatchAttempt, ResultRecord } from '../contracts/result-record.js';

export type Labels = Record<string, string>;

/** Bucket upper bounds (seconds) of the stage-duration histograms. */
export const DURATION_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900];

/** Counter names (without the mlsam_ prefix and _total suffix that /metrics adds). */
export type CounterName =
  | 'associations'
  | 'instances_received'
  | 'bytes_received'
  | 'series_completed'
  | 'series_ignored'
  | 'series_not_scored'
  | 'series_failed'
  | 'slices_scored'
  | 'scoring_seconds'
  | 'dispatch_attempts'
  | 'dispatch_successes'
  | 'dispatch_failures'
  | 'dispatch_retries';

export type HistogramName = 'stage_duration_seconds';

const SEEN_TTL_MS = 35 * 86_400_000;

const RECORD_ONCE = loadLua(import.meta.url, 'stats-once');

export function labelString(labels: Labels | undefined): string {
  if (!labels) return '';
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}=${String(labels[k]).replace(/[,|=]/g, '_')}`)
    .join(',');
}

export function parseLabelString(s: string): Labels {
  const out: Labels = {};
  if (!s) return out;
  for (const part of s.split(',')) {
    const i = part.indexOf('=');
    if (i > 0) out[part.slice(0, i)] = part.slice(i + 1);
  }
  return out;
}

/** Hash increments of one histogram observation. */
function histogramFields(name: HistogramName, value: number, labels?: Labels): [string, number][] {
  const l = labelString(labels);
  const bound = DURATION_BUCKETS.find((b) => value <= b);
  return [
    [`h|${name}|${l}|${bound === undefined ? '+Inf' : String(bound)}`, 1],
    [`h|${name}|${l}|sum`, value],
    [`h|${name}|${l}|count`, 1],
  ];
}

export interface HistogramSnapshot {
  labels: Labels;
  /** Cumulative counts per upper bound, DURATION_BUCKETS order, then +Inf. */
  buckets: { le: number; count: number }[];
  sum: number;
  count: number;
}

export interface StatsSnapshot {
  counters: { name: string; labels: Labels; value: number }[];
  gauges: { name: string; labels: Labels; value: number }[];
  histograms: Record<string, HistogramSnapshot[]>;
}

/** One increment set, built by the record* helpers and applied by Stats. */
export class Increments {
  readonly fields: [string, number][] = [];
  counter(name: CounterName, by = 1, labels?: Labels): this {
    if (Number.isFinite(by) && by !== 0) this.fields.push([`c|${name}|${labelString(labels)}`, by]);
    return this;
  }
  observe(name: HistogramName, value: number, labels?: Labels): this {
    if (Number.isFinite(value) && value >= 0) this.fields.push(...histogramFields(name, value, labels));
    return this;
  }
}

export class Stats {
  readonly key: string;
  readonly seenKey: string;

  constructor(
    private readonly redis: Redis,
    readonly prefix: string,
  ) {
    this.key = `${prefix}:stats:counters`;
    this.seenKey = `${prefix}:stats:seen`;
    if (!('mlsamStatsOnce' in redis)) redis.defineCommand('mlsamStatsOnce', { numberOfKeys: 2, lua: RECORD_ONCE });
  }

  /** Applies increments now (fire and forget; never throws). */
  apply(inc: Increments): void {
    if (inc.fields.length === 0 || this.redis.status !== 'ready') return;
    try {
      const p = this.redis.pipeline();
      for (const [f, v] of inc.fields) p.hincrbyfloat(this.key, f, v);
      p.exec().catch(() => undefined);
    } catch {
      /* never into the caller's path */
    }
  }

  /**
   * Applies increments once per event id, whoever reports it (see the file comment). Resolves
   * 'counted' (new event), 'seen' (counted before) or 'error' (Redis failed); never rejects.
   */
  async applyOnce(eventId: string, inc: Increments): Promise<'counted' | 'seen' | 'error'> {
    if (this.redis.status !== 'ready') return 'error';
    try {
      const fn = (this.redis as unknown as Record<string, (...a: (string | number)[]) => Promise<number>>).mlsamStatsOnce;
      if (!fn) return 'error';
      const args = inc.fields.flat();
      return (await fn.call(this.redis, this.seenKey, this.key, eventId, Date.now(), SEEN_TTL_MS, ...args)) === 1 ? 'counted' : 'seen';
    } catch {
      return 'error';
    }
  }

  incr(name: CounterName, by = 1, labels?: Labels): void {
    this.apply(new Increments().counter(name, by, labels));
  }

  observe(name: HistogramName, value: number, labels?: Labels): void {
    this.apply(new Increments().observe(name, value, labels));
  }

  /** Sets a gauge (last writer wins). Never throws. */
  gauge(name: string, value: number, labels?: Labels): void {
    if (!Number.isFinite(value) || this.redis.status !== 'ready') return;
    this.redis.hset(this.key, `g|${name}|${labelString(labels)}`, String(value)).catch(() => undefined);
  }

  /** Every counter, gauge and histogram (rejects when Redis is unreachable). */
  async snapshot(): Promise<StatsSnapshot> {
    const raw = await this.redis.hgetall(this.key);
    const counters: StatsSnapshot['counters'] = [];
    const gauges: StatsSnapshot['gauges'] = [];
    const hist = new Map<string, { name: string; labels: string; buckets: Map<string, number>; sum: number; count: number }>();
    for (const [field, v] of Object.entries(raw)) {
      const value = Number(v);
      const parts = field.split('|');
      if (parts[0] === 'c' && parts.length === 3) counters.push({ name: parts[1]!, labels: parseLabelString(parts[2]!), value });
      else if (parts[0] === 'g' && parts.length === 3) gauges.push({ name: parts[1]!, labels: parseLabelString(parts[2]!), value });
      else if (parts[0] === 'h' && parts.length === 4) {
        const id = `${parts[1]}|${parts[2]}`;
        let h = hist.get(id);
        if (!h) {
          h = { name: parts[1]!, labels: parts[2]!, buckets: new Map(), sum: 0, count: 0 };
          hist.set(id, h);
        }
        if (parts[3] === 'sum') h.sum = value;
        else if (parts[3] === 'count') h.count = value;
        else h.buckets.set(parts[3]!, value);
      }
    }
    const histograms: Record<string, HistogramSnapshot[]> = {};
    for (const h of hist.values()) {
      let cum = 0;
      const buckets = DURATION_BUCKETS.map((le) => {
        cum += h.buckets.get(String(le)) ?? 0;
        return { le, count: cum };
      });
      buckets.push({ le: Infinity, count: cum + (h.buckets.get('+Inf') ?? 0) });
      histograms[h.name] ??= [];
      histograms[h.name]!.push({ labels: parseLabelString(h.labels), buckets, sum: h.sum, count: h.count });
    }
    return { counters, gauges, histograms };
  }
}

/** Association, instances and bytes received (called by the association audit). */
export function associationIncrements(rec: AssociationRecord): Increments {
  const outcome = rec.outcome.startsWith('rejected') ? 'rejected' : rec.outcome;
  return new Increments()
    .counter('associations', 1, { outcome, calling_ae: rec.callingAeTitle })
    .counter('instances_received', rec.instances, { calling_ae: rec.callingAeTitle })
    .counter('bytes_received', rec.bytes, { calling_ae: rec.callingAeTitle });
}

/**
 * Outcome counters and stage histograms of one finished result (scored / not-scored / failed);
 * undefined while it is still scoring. Event id: series + content + status + finish time.
 */
export function resultIncrements(rec: ResultRecord): { id: string; inc: Increments } | undefined {
  if (rec.status === 'scoring') return undefined;
  const inc = new Increments();
  const model = { model: rec.model.name, version: rec.model.version };
  if (rec.status === 'scored') {
    inc.counter('series_completed', 1, model);
    inc.counter('slices_scored', rec.slices.length, model);
    const t = rec.timings;
    const scoringMs = (t.decodeMs ?? 0) + (t.preprocessMs ?? 0) + (t.inferMs ?? 0);
    inc.counter('scoring_seconds', scoringMs / 1000, model);
  } else if (rec.status === 'not-scored') {
    inc.counter('series_not_scored', 1, { reason: reasonCode(rec.reason) });
  } else {
    inc.counter('series_failed', 1);
  }
  const stages: [string, number | undefined][] = [
    ['wait', rec.timings.waitMs],
    ['read', rec.timings.readMs],
    ['decode', rec.timings.decodeMs],
    ['preprocess', rec.timings.preprocessMs],
    ['infer', rec.timings.inferMs],
    ['aggregate', rec.timings.aggregateMs],
    ['results', rec.timings.resultsMs],
    ['total', rec.timings.totalMs],
  ];
  for (const [stage, ms] of stages) if (ms !== undefined) inc.observe('stage_duration_seconds', ms / 1000, { stage });
  return { id: `result:${rec.seriesInstanceUid}:${rec.instancesHash}:${rec.status}:${rec.finishedAt ?? rec.startedAt}`, inc };
}

/** Success / failure / retry counters and the dispatch-stage histogram of one send attempt. */
export function dispatchIncrements(seriesInstanceUid: string, a: DispatchAttempt): { id: string; inc: Increments } {
  const inc = new Increments().counter('dispatch_attempts', 1, { destination: a.destination });
  inc.counter(a.outcome === 'sent' ? 'dispatch_successes' : 'dispatch_failures', 1, { destination: a.destination });
  if (a.attempt > 1) inc.counter('dispatch_retries', 1, { destination: a.destination });
  inc.observe('stage_duration_seconds', a.ms / 1000, { stage: 'dispatch' });
  return { id: `dispatch:${seriesInstanceUid}:${a.destination}:${a.instancesHash}:${a.attempt}:${a.at}`, inc };
}

/** Ignored series (tracker status), once per content. */
export function ignoredIncrements(seriesInstanceUid: string, instancesHash: string, code: string): { id: string; inc: Increments } {
  return { id: `ignored:${seriesInstanceUid}:${instancesHash}`, inc: new Increments().counter('series_ignored', 1, { reason: code }) };
}

/** A short, low-cardinality label from a not-scored reason ("too few axial slices: 3 < 20" → "too_few_axial_slices"). */
export function reasonCode(reason: string | undefined): string {
  if (!reason) return 'unknown';
  const head = reason
    .split(/[:(\d]/)[0]!
    .trim()
    .toLowerCase();
  return (
    head
      .replace(/[^a-z]+/g, '_')
      .replace(/^_|_$/g, '')
      .slice(0, 40) || 'other'
  );
}
