/**
 * Inference workers announce themselves in Redis (one key per worker process, refreshed every
 * HEARTBEAT_MS, expiring after TTL_MS, and its id in a sorted set by last heartbeat so listing
 * never scans the keyspace), so /metrics, /api/workers and the dashboard can say which execution
 * provider each worker really runs on, from whichever host the admin runs.
 */
import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { Keys } from './keys.js';
import { parseStored } from '../contracts/result-record.js';

export const HEARTBEAT_MS = 30_000;
const TTL_MS = 3 * HEARTBEAT_MS;

export const workerInfoSchema = z.strictObject({
  id: z.string(),
  host: z.string(),
  pid: z.number().int(),
  /** Execution provider the ONNX sessions really run on ("cpu", "cuda"). */
  provider: z.string(),
  /** Providers asked for in config (model.providers). */
  requestedProviders: z.array(z.string()),
  model: z.string(),
  version: z.string(),
  concurrency: z.number().int(),
  startedAt: z.string(),
  seenAt: z.string(),
});
export type WorkerInfo = z.infer<typeof workerInfoSchema>;

/** Keeps this process's worker key alive until stop(); never throws into the worker. */
export class WorkerHeartbeat {
  private timer: NodeJS.Timeout | undefined;
  private readonly info: Omit<WorkerInfo, 'seenAt'>;
  private readonly keys: Keys;

  constructor(
    private readonly redis: Redis,
    prefix: string,
    info: Omit<WorkerInfo, 'id' | 'host' | 'pid' | 'startedAt' | 'seenAt'>,
  ) {
    this.keys = new Keys(prefix);
    const host = hostname();
    this.info = { ...info, id: `${host}:${process.pid}`, host, pid: process.pid, startedAt: new Date().toISOString() };
  }

  start(): void {
    const beat = (): void => {
      const now = Date.now();
      const value: WorkerInfo = { ...this.info, seenAt: new Date(now).toISOString() };
      this.redis
        .multi()
        .set(this.keys.worker(this.info.id), JSON.stringify(value), 'PX', TTL_MS)
        .zadd(this.keys.workers(), now, this.info.id)
        .exec()
        .catch(() => undefined);
    };
    beat();
    this.timer = setInterval(beat, HEARTBEAT_MS);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.redis
      .multi()
      .del(this.keys.worker(this.info.id))
      .zrem(this.keys.workers(), this.info.id)
      .exec()
      .catch(() => undefined);
  }
}

/** Inference workers seen in the last TTL, sorted by id. */
export async function listWorkers(redis: Redis, prefix: string): Promise<WorkerInfo[]> {
  const keys = new Keys(prefix);
  await redis.zremrangebyscore(keys.workers(), '-inf', Date.now() - TTL_MS);
  const ids = await redis.zrange(keys.workers(), 0, -1);
  if (ids.length === 0) return [];
  const values = await redis.mget(...ids.map((id) => keys.worker(id)));
  return values
    .map((v) => parseStored(workerInfoSchema, v))
    .filter((w): w is WorkerInfo => w !== undefined)
    .sort((a, b) => a.id.localeCompare(b.id));
}
