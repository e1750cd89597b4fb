/**
 * /metrics (Prometheus text format, prom-client). Counters and histograms are shared by every
 * process through Redis (src/stores/stats.ts) and read at scrape time, so `mlsam listen`, `work`
 * and `admin` may run apart. Before reading, the scrape "derives" events from the records the
 * stages write (result records, dispatch attempt logs, ignored series of the last two days):
 * each event is counted once whoever reports it (Stats.applyOnce), so producers may also call the
 * stats helpers directly without double counting.
 */
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { Config } from '../config/schema.js';
import { resolvePath } from '../config/load.js';
import { loadModelMetadata } from '../model/metadata.js';
import { listWorkers } from '../stores/worker-registry.js';
import { Keys } from '../stores/keys.js';
import type { DriftWatch } from '../drift/watch.js';
import { registerDriftGauges } from './drift-metrics.js';
import { dispatchAttemptSchema, parseStored, resultRecordSchema } from '../contracts/result-record.js';
import {
  dispatchIncrements,
  ignoredIncrements,
  type Increments,
  resultIncrements,
  Stats,
  type CounterName,
  type HistogramSnapshot,
  type StatsSnapshot,
} from '../stores/stats.js';

const COUNTERS: Record<CounterName, { help: string; labels: string[] }> = {
  associations: { help: 'DICOM associations ended, by outcome and calling AE', labels: ['outcome', 'calling_ae'] },
  instances_received: { help: 'Instances received (stored) over DICOM', labels: ['calling_ae'] },
  bytes_received: { help: 'Dataset bytes received over DICOM', labels: ['calling_ae'] },
  series_completed: { help: 'Series scored (result written)', labels: ['model', 'version'] },
  series_ignored: { help: 'Series not routed to the model (routing rules), by reason', labels: ['reason'] },
  series_not_scored: { help: 'Series the model could not score (input problem), by reason', labels: ['reason'] },
  series_failed: { help: 'Series whose scoring failed after all retries', labels: [] },
  slices_scored: { help: 'Slices scored by the model', labels: ['model', 'version'] },
  scoring_seconds: { help: 'Seconds spent decoding, preprocessing and running the model', labels: ['model', 'version'] },
  dispatch_attempts: { help: 'Attempts to send result objects to a destination', labels: ['destination'] },
  dispatch_successes: { help: 'Successful sends of a result set to a destination', labels: ['destination'] },
  dispatch_failures: { help: 'Failed attempts to send a result set to a destination', labels: ['destination'] },
  dispatch_retries: { help: 'Send attempts that were retries (attempt > 1)', labels: ['destination'] },
};

const DERIVE_WINDOW_MS = 2 * 86_400_000;
const DERIVE_EVERY_MS = 5_000;

export interface MetricsOptions {
  config: Config;
  redis: Redis;
  queues: Queue[];
  /** The drift watch (its gauges: src/admin/drift-metrics.ts). */
  drift?: DriftWatch;
}

export class Metrics {
  readonly registry = new Registry();
  private readonly stats: Stats;
  private readonly keys: Keys;
  private lastDerive = 0;
  /** Event ids this process already counted (skip the round trip next scrape). */
  private readonly counted = new Set<string>();
  private snapshot: StatsSnapshot | undefined;
  private readonly redisUp: Gauge;

  constructor(private readonly opts: MetricsOptions) {
    const { config } = opts;
    this.keys = new Keys(config.redis.keyPrefix);
    this.stats = new Stats(opts.redis, config.redis.keyPrefix);
    const reg = this.registry;
    collectDefaultMetrics({ register: reg, prefix: 'mlsam_admin_process_' });

    for (const [name, def] of Object.entries(COUNTERS) as [CounterName, { help: string; labels: string[] }][]) {
      const metrics = this;
      new Counter({
        name: `mlsam_${name}_total`,
        help: def.help,
        labelNames: def.labels,
        registers: [reg],
        collect() {
          this.reset();
          for (const c of metrics.snapshot?.counters ?? []) {
            if (c.name !== name || !(c.value > 0)) continue;
            const labels = Object.fromEntries(def.labels.map((l) => [l, c.labels[l] ?? '']));
            if (def.labels.length) this.inc(labels, c.value);
            else this.inc(c.value);
          }
        },
      });
    }

    const metrics = this;
    new Gauge({
      name: 'mlsam_slices_per_second',
      help: 'Mean scoring throughput: slices scored / scoring seconds (use rate() on the counters for a window)',
      registers: [reg],
      collect() {
        const sum = (n: string): number => (metrics.snapshot?.counters ?? []).filter((c) => c.name === n).reduce((s, c) => s + c.value, 0);
        const secs = sum('scoring_seconds');
        this.set(secs > 0 ? sum('slices_scored') / secs : 0);
      },
    });

    const queues = opts.queues;
    new Gauge({
      name: 'mlsam_queue_jobs',
      help: 'Jobs in each BullMQ queue by state',
      labelNames: ['queue', 'state'],
      registers: [reg],
      async collect() {
        this.reset();
        for (const q of queues) {
          const counts = await q.getJobCounts(
            'waiting',
            'active',
            'delayed',
            'failed',
            'completed',
            'paused',
            'prioritized',
            'waiting-children',
          );
          for (const [state, n] of Object.entries(counts)) this.set({ queue: q.name, state }, n);
        }
      },
    });

    new Gauge({
      name: 'mlsam_model_info',
      help: 'The configured model (value 1; name, version and sha256 as labels)',
      labelNames: ['name', 'version', 'sha256'],
      registers: [reg],
      async collect() {
        this.reset();
        try {
          const { metadata } = await loadModelMetadata(resolvePath(config.model.path), { verifyHash: false });
          this.set({ name: metadata.name, version: metadata.version, sha256: metadata.sha256 }, 1);
        } catch {
          /* readyz says why */
        }
      },
    });

    const redisForWorkers = opts.redis;
    new Gauge({
      name: 'mlsam_worker_info',
      help: 'Inference workers alive (value 1): the execution provider each really runs on, its model and host',
      labelNames: ['worker', 'provider', 'model', 'version'],
      registers: [reg],
      async collect() {
        this.reset();
        try {
          for (const w of await listWorkers(redisForWorkers, config.redis.keyPrefix)) {
            this.set({ worker: w.id, provider: w.provider, model: w.model, version: w.version }, 1);
          }
        } catch {
          /* Redis down: mlsam_redis_up says so */
        }
      },
    });

    const studyKeys = this.keys;
    new Gauge({
      name: 'mlsam_studies',
      help: 'Studies the tracker knows (the 10000 most recent), by status: receiving, queued (its chosen series is scored or being scored), ignored (no series for this model)',
      labelNames: ['status'],
      registers: [reg],
      async collect() {
        this.reset();
        try {
          const uids = await redisForWorkers.zrevrange(studyKeys.studyIndex(), 0, 9_999);
          const p = redisForWorkers.pipeline();
          for (const u of uids) p.hget(studyKeys.study(u), 'status');
          const counts = new Map<string, number>();
          for (const [, v] of (await p.exec()) ?? []) if (typeof v === 'string') counts.set(v, (counts.get(v) ?? 0) + 1);
          for (const [status, n] of counts) this.set({ status }, n);
        } catch {
          /* Redis down: mlsam_redis_up says so */
        }
      },
    });

    if (opts.drift) registerDriftGauges(reg, opts.drift);

    this.redisUp = new Gauge({ name: 'mlsam_redis_up', help: '1 when the shared counters could be read from Redis', registers: [reg] });
  }

  /** Prometheus text: prom-client metrics + the shared histograms. */
  async render(): Promise<{ contentType: string; body: string }> {
    try {
      await this.derive();
      this.snapshot = await this.stats.snapshot();
      this.redisUp.set(1);
    } catch {
      this.snapshot = undefined;
      this.redisUp.set(0);
    }
    let body = await this.registry.metrics();
    body += renderHistograms(
      'mlsam_stage_duration_seconds',
      'Duration of each pipeline stage per series (wait, read, decode, preprocess, infer, aggregate, results, total, dispatch)',
      this.snapshot?.histograms.stage_duration_seconds ?? [],
    );
    return { contentType: this.registry.contentType, body };
  }

  /** Counts events from the stages' records (once each; see the file comment). */
  async derive(force = false): Promise<void> {
    if (!force && Date.now() - this.lastDerive < DERIVE_EVERY_MS) return;
    this.lastDerive = Date.now();
    const r = this.opts.redis;
    const since = Date.now() - DERIVE_WINDOW_MS;
    const [resultUids, seriesUids] = await Promise.all([
      r.zrangebyscore(this.keys.resultIndex(), since, '+inf', 'LIMIT', 0, 2000),
      r.zrangebyscore(this.keys.seriesIndex(), since, '+inf', 'LIMIT', 0, 5000),
    ]);
    const events: { id: string; inc: Increments }[] = [];
    if (resultUids.length) {
      const p = r.pipeline();
      for (const uid of resultUids) {
        p.get(this.keys.result(uid));
        p.lrange(this.keys.dispatchLog(uid), 0, 99);
      }
      const res = (await p.exec()) ?? [];
      resultUids.forEach((uid, i) => {
        const rec = res[i * 2]?.[1] as string | null;
        const log = (res[i * 2 + 1]?.[1] as string[] | null) ?? [];
        const parsed = parseStored(resultRecordSchema, rec);
        const ev = parsed ? resultIncrements(parsed) : undefined;
        if (ev) events.push(ev);
        for (const raw of log) {
          const a = parseStored(dispatchAttemptSchema, raw);
          if (a) events.push(dispatchIncrements(uid, a));
        }
      });
    }
    if (seriesUids.length) {
      const p = r.pipeline();
      for (const uid of seriesUids) p.hmget(this.keys.series(uid), 'status', 'instancesHash', 'ignoreCode');
      const res = (await p.exec()) ?? [];
      seriesUids.forEach((uid, i) => {
        const [status, hash, code] = (res[i]?.[1] as (string | null)[] | null) ?? [];
        if (status === 'ignored' && hash) events.push(ignoredIncrements(uid, hash, code ?? 'unknown'));
      });
    }
    const fresh = events.filter((e) => !this.counted.has(e.id));
    await Promise.all(
      fresh.map(async (e) => {
        if ((await this.stats.applyOnce(e.id, e.inc)) !== 'error') this.counted.add(e.id);
      }),
    );
    if (this.counted.size > 100_000) this.counted.clear();
  }
}

const escLabel = (v: string): string => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');

export function renderHistograms(name: string, help: string, series: HistogramSnapshot[]): string {
  const lines = [`# HELP ${name} ${help}`, `# TYPE ${name} histogram`];
  for (const h of series) {
    const base = Object.entries(h.labels).map(([k, v]) => `${k}="${escLabel(v)}"`);
    const lbl = (extra?: string): string => {
      const all = extra ? [...base, extra] : base;
      return all.length ? `{${all.join(',')}}` : '';
    };
    for (const b of h.buckets) lines.push(`${name}_bucket${lbl(`le="${b.le === Infinity ? '+Inf' : b.le}"`)} ${b.count}`);
    lines.push(`${name}_sum${lbl()} ${h.sum}`);
    lines.push(`${name}_count${lbl()} ${h.count}`);
  }
  return `${lines.join('\n')}\n`;
}
