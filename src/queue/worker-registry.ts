/**
 * Inference workers announce themselves in Redis (one key per worker process, refreshed every
 * HEARTBEAT_MS, expiring after TTL_MS), so /metrics, /api/workers and the dashboard can say which
 * execution provider each worker really runs on, from whichever host the admin runs.
 */
import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import { z } from 'zod';

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

const keyOf = (prefix: string, id: string): string => `${prefix}:workers:${id}`;

/** Keeps this process's worker key alive until stop(); never throws into the worker. */
export class WorkerHeartbeat {
  private timer: NodeJS.Timeout | undefined;
  private readonly info: Omit<WorkerInfo, 'seenAt'>;

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    info: Omit<WorkerInfo, 'id' | 'host' | 'pid' | 'startedAt' | 'seenAt'>,
  ) {
    const host = hostname();
    this.info = { ...info, id: `${host}:${process.pid}`, host, pid: process.pid, startedAt: new Date().toISOString() };
  }

  start(): void {
    const beat = (): void => {
      const value: WorkerInfo = { ...this.info, seenAt: new Date().toISOString() };
      this.redis.set(keyOf(this.prefix, this.info.id), JSON.stringify(value), 'PX', TTL_MS).catch(() => undefined);
    };
    beat();
    this.timer = setInterval(beat, HEARTBEAT_MS);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.redis.del(keyOf(this.prefix, this.info.id)).catch(() => undefined);
  }
}

/** Inference workers seen in the last TTL, sorted by id. */
export async function listWorkers(redis: Redis, prefix: string): Promise<WorkerInfo[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', `${prefix}:workers:*`, 'COUNT', 200);
    cursor = next;
    keys.push(...batch);
  } while (cursor !== '0');
  if (keys.length === 0) return [];
  const values = await redis.mget(...keys);
  const out: WorkerInfo[] = [];
  for (const v of values) {
    if (!v) continue;
    const parsed = workerInfoSchema.safeParse(JSON.parse(v));
    if (parsed.success) out.push(parsed.data);
  }
  return out.sort((a, b) => a.id.localeCompare(b.id));
}
