/**
 * /readyz: is this node able to do its work? Each check runs in parallel with its own time limit
 * and reports ok plus, when not ok, a sentence saying what failed:
 * - redis: PING answers;
 * - spool: the spool directory takes a file (write, fsync, delete) and its file system is at or
 *   under spool.maxDiskUsagePercent;
 * - model: the configured model's metadata is valid and the ONNX file matches its sha256 (the file
 *   the workers load; cached while the file's size and mtime stay the same);
 * - destinations: every configured destination answers C-ECHO (cached for 15 s).
 */
import { open, stat, unlink, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import type { Config } from '../config/schema.js';
import { resolvePath } from '../config/load.js';
import { diskUsagePercent } from '../dicom/spool/spool-layout.js';
import { loadModelMetadata } from '../model/metadata.js';
import { whenReady, withTimeout } from '../stores/redis.js';

export interface CheckResult {
  ok: boolean;
  error?: string;
  [k: string]: unknown;
}

export interface Readiness {
  ok: boolean;
  checks: {
    redis: CheckResult;
    spool: CheckResult;
    model: CheckResult;
    destinations: CheckResult & { results: Record<string, { ok: boolean; ms?: number; error?: string }> };
    /** The durable results store (present when the node has one). */
    database?: CheckResult;
  };
  /** One line per failed check. */
  failed: string[];
}

export type EchoFn = (destinationName: string) => Promise<{ ok: boolean; ms?: number; error?: string }>;

const DEST_CACHE_MS = 15_000;

export class ReadinessChecker {
  private modelCache: { key: string; result: CheckResult } | undefined;
  private destCache: { at: number; results: Record<string, { ok: boolean; ms?: number; error?: string }> } | undefined;
  private destRunning: Promise<Record<string, { ok: boolean; ms?: number; error?: string }>> | undefined;

  constructor(
    private readonly config: Config,
    private readonly redis: Redis,
    private readonly echo: EchoFn,
    /** The results store's check (src/db/health.ts): reachable, and how many results wait in the outbox. */
    private readonly database?: () => Promise<CheckResult>,
  ) {}

  async check(): Promise<Readiness> {
    const guard = <T extends CheckResult>(p: Promise<T>, ms: number, what: string): Promise<T | CheckResult> =>
      withTimeout(p, ms, what).catch((err: Error) => ({ ok: false, error: err.message }));
    const [redis, spool, model, destinations, database] = await Promise.all([
      guard(this.checkRedis(), 2_000, 'redis PING'),
      guard(this.checkSpool(), 5_000, 'spool check'),
      guard(this.checkModel(), 30_000, 'model check'),
      guard(this.checkDestinations(), Math.min(this.config.dispatch.timeoutSeconds, 10) * 1000 + 2_000, 'destination echo'),
      this.database ? guard(this.database(), 5_000, 'results store check') : undefined,
    ]);
    const dest = 'results' in destinations ? (destinations as Readiness['checks']['destinations']) : { ...destinations, results: {} };
    const checks = { redis, spool, model, destinations: dest, ...(database ? { database } : {}) };
    const failed = Object.entries(checks)
      .filter(([, c]) => !c.ok)
      .map(([name, c]) => `${name}: ${c.error ?? 'failed'}`);
    return { ok: failed.length === 0, checks, failed };
  }

  private async checkRedis(): Promise<CheckResult> {
    // Just started or reconnecting: give the handshake a moment before calling Redis unreachable.
    if (this.redis.status !== 'ready') await whenReady(this.redis, 1_500).catch(() => undefined);
    const unreachable = (why: string): CheckResult => ({
      ok: false,
      error: `redis not reachable at ${redactUrl(this.config.redis.url)} (${why})`,
    });
    if (this.redis.status !== 'ready') return unreachable(`connection ${this.redis.status}`);
    const t0 = Date.now();
    // The connection can drop between the status check and the PING ("Stream isn't writeable"): same answer.
    let pong: string;
    try {
      pong = await this.redis.ping();
    } catch (err) {
      return unreachable(err instanceof Error ? err.message : String(err));
    }
    return pong === 'PONG' ? { ok: true, ms: Date.now() - t0 } : { ok: false, error: `unexpected PING answer ${pong}` };
  }

  private async checkSpool(): Promise<CheckResult> {
    const dir = resolvePath(this.config.spool.dir);
    const probeDir = join(dir, '.tmp');
    const probe = join(probeDir, `readyz-${process.pid}-${Date.now()}.probe`);
    try {
      await mkdir(probeDir, { recursive: true });
      const fh = await open(probe, 'w');
      try {
        await fh.write('ok');
        await fh.sync();
      } finally {
        await fh.close();
      }
      await unlink(probe);
    } catch (err) {
      return { ok: false, dir, error: `spool ${dir} not writable: ${(err as Error).message}` };
    }
    const usage = Math.round(diskUsagePercent(dir) * 10) / 10;
    const max = this.config.spool.maxDiskUsagePercent;
    if (usage > max) return { ok: false, dir, diskUsagePercent: usage, error: `spool disk ${usage}% used, above the ${max}% watermark` };
    return { ok: true, dir, diskUsagePercent: usage, maxDiskUsagePercent: max };
  }

  private async checkModel(): Promise<CheckResult> {
    const path = resolvePath(this.config.model.path);
    let key: string;
    try {
      const st = await stat(path);
      key = `${path}:${st.size}:${st.mtimeMs}`;
    } catch (err) {
      return { ok: false, path, error: `model file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` };
    }
    if (this.modelCache?.key === key) return this.modelCache.result;
    let result: CheckResult;
    try {
      const { metadata } = await loadModelMetadata(path, { verifyHash: true });
      result = { ok: true, path, name: metadata.name, version: metadata.version, sha256: metadata.sha256 };
    } catch (err) {
      result = { ok: false, path, error: (err as Error).message };
    }
    this.modelCache = { key, result };
    return result;
  }

  private async checkDestinations(): Promise<Readiness['checks']['destinations']> {
    const dests = this.config.destinations;
    if (dests.length === 0) return { ok: true, note: 'no destinations configured', results: {} };
    let results = this.destCache && Date.now() - this.destCache.at < DEST_CACHE_MS ? this.destCache.results : undefined;
    if (!results) {
      this.destRunning ??= (async () => {
        const entries = await Promise.all(
          dests.map(async (d) => [d.name, await this.echo(d.name).catch((err: Error) => ({ ok: false, error: err.message }))] as const),
        );
        const r = Object.fromEntries(entries);
        this.destCache = { at: Date.now(), results: r };
        return r;
      })().finally(() => {
        this.destRunning = undefined;
      });
      results = await this.destRunning;
    }
    const bad = Object.entries(results).filter(([, r]) => !r.ok);
    return bad.length === 0
      ? { ok: true, results }
      : { ok: false, results, error: bad.map(([n, r]) => `${n} does not answer C-ECHO (${r.error ?? 'failed'})`).join('; ') };
  }
}

/** A Redis URL without its password. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^@/]*)@/, '//***@');
}
