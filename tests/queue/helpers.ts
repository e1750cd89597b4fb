import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { loadConfig } from '../../src/config/load.js';
import { dropRedisPrefix } from '../../src/demo/processes.js';
import type { Config } from '../../src/config/schema.js';
import { createLogger } from '../../src/log.js';

export { freePort } from '../helpers/process.js';

export const REDIS_URL = 'redis://127.0.0.1:6379';
export const logger = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');

export function uniquePrefix(tag: string): string {
  return `test-${tag}-${process.pid}-${randomBytes(4).toString('hex')}`;
}

export type DeepPartial<T> = { [K in keyof T]?: T[K] extends object ? (T[K] extends unknown[] ? T[K] : DeepPartial<T[K]>) : T[K] };

/** Default config with a unique key prefix, a fresh temp spool and the given overrides. */
export async function testConfig(tag: string, over: DeepPartial<Config> = {}): Promise<Config> {
  const spool = await mkdtemp(join(tmpdir(), `mlsam-${tag}-`));
  const base = {
    dicom: { host: '127.0.0.1', port: 0 },
    redis: { url: REDIS_URL, keyPrefix: uniquePrefix(tag) },
    spool: { dir: spool },
    log: { level: 'silent' },
  };
  // loadConfig deep-merges and validates the overrides; the JSON round-trip keeps them plain data.
  const overrides: unknown = JSON.parse(JSON.stringify(deepMerge(base, over)));
  return loadConfig({ env: {}, overrides: overrides as NonNullable<Parameters<typeof loadConfig>[0]>['overrides'] });
}

function deepMerge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const x = out[k];
    out[k] =
      x && v && typeof x === 'object' && typeof v === 'object' && !Array.isArray(v)
        ? deepMerge(x as Record<string, unknown>, v as Record<string, unknown>)
        : v;
  }
  return out;
}

/** Deletes every key under a test prefix (never FLUSHDB: Redis is shared). */
export const dropPrefix = dropRedisPrefix;

export async function cleanup(config: Config): Promise<void> {
  await dropPrefix(config.redis.url, config.redis.keyPrefix);
  await rm(config.spool.dir, { recursive: true, force: true });
}

export async function waitFor<T>(fn: () => Promise<T | undefined | false>, timeoutMs: number, what: string, everyMs = 100): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await sleep(everyMs);
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A private redis-server (no persistence) a test may kill; stop it by PID. */
export class PrivateRedis {
  private proc: ChildProcess | undefined;
  constructor(readonly port: number) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    this.proc = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
      stdio: 'ignore',
    });
    await waitFor(
      async () => {
        const r = new Redis(this.url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
        r.on('error', () => undefined);
        try {
          await r.connect();
          return (await r.ping()) === 'PONG';
        } finally {
          r.disconnect();
        }
      },
      10_000,
      `redis-server on ${this.port}`,
    );
  }

  async kill(): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await exited;
    this.proc = undefined;
  }
}
