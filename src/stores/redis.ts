import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from '../log.js';

/**
 * Two kinds of Redis connection:
 * - `command`: used on the receive path (tracker, audit, producers). Fails fast: no offline queue,
 *   one retry, short timeouts, so a dead Redis never blocks or buffers instances in memory.
 * - `worker`: for BullMQ Workers (blocking commands): BullMQ requires maxRetriesPerRequest null.
 */
export type RedisRole = 'command' | 'worker';

export function createRedis(url: string, role: RedisRole, logger?: Logger): Redis {
  const common: RedisOptions = {
    connectTimeout: 2_000,
    lazyConnect: false,
    // Reconnect forever with a capped backoff: Redis coming back must be picked up.
    retryStrategy: (times) => Math.min(100 * times, 2_000),
  };
  const opts: RedisOptions =
    role === 'command'
      ? { ...common, enableOfflineQueue: false, maxRetriesPerRequest: 1, commandTimeout: 3_000 }
      : { ...common, maxRetriesPerRequest: null, enableReadyCheck: true };
  const client = new Redis(url, opts);
  let lastErrorLog = 0;
  client.on('error', (err: Error) => {
    // ioredis emits one error per reconnect attempt: log at most every 10 s.
    const now = Date.now();
    if (now - lastErrorLog > 10_000) {
      lastErrorLog = now;
      logger?.warn({ err: err.message, role }, 'redis connection error');
    }
  });
  return client;
}

/** A warn() that logs at most once per `intervalMs` (Redis outages produce an error per retry). */
export function throttledWarn(logger: Logger, intervalMs = 10_000): (fields: Record<string, unknown>, msg: string) => void {
  let last = 0;
  let suppressed = 0;
  return (fields, msg) => {
    const now = Date.now();
    if (now - last < intervalMs) {
      suppressed++;
      return;
    }
    logger.warn({ ...fields, ...(suppressed ? { suppressed } : {}) }, msg);
    last = now;
    suppressed = 0;
  };
}

/** Closes a client without waiting on a dead server. */
export async function closeRedis(client: Redis): Promise<void> {
  if (client.status === 'end') return;
  // Disconnecting between TCP connect and ioredis' ready check makes ioredis reject its INFO
  // without a handler (offline queue off): let a connection in progress finish first.
  if (client.status === 'connect' || client.status === 'connecting') await whenReady(client, 1_000).catch(() => undefined);
  try {
    if (client.status === 'ready') await Promise.race([client.quit(), delay(1_000)]);
  } catch {
    /* ignore */
  }
  client.disconnect();
}

/** The error of a Redis call made while Redis is unreachable (a pass over many series stops at it). */
export function isRedisUnavailable(err: unknown): boolean {
  return /connect|writeable|timed out|ECONNREFUSED/i.test((err as Error)?.message ?? '');
}

/**
 * Waits (briefly) until the client is connected: covers the start-up window and short reconnects
 * without an offline queue. Rejects after `ms` so callers on the receive path give up quickly.
 */
export async function whenReady(client: Redis, ms = 1_000): Promise<void> {
  if (client.status === 'ready') return;
  if (client.status === 'end') throw new Error('redis connection closed');
  // One 'ready' listener per client, however many callers wait.
  let ready = nextReady.get(client);
  if (!ready) {
    ready = new Promise<void>((resolve) =>
      client.once('ready', () => {
        nextReady.delete(client);
        resolve();
      }),
    );
    nextReady.set(client, ready);
  }
  await withTimeout(ready, ms, 'redis not connected');
}

const nextReady = new WeakMap<Redis, Promise<void>>();

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/** Resolves with `p`, or rejects after `ms`: the receive path never waits long on Redis. */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: timed out after ${ms} ms`)), ms);
    timer.unref();
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}
