/**
 * Results held for a target in silent mode: per target a sorted set of series UIDs by the time
 * held (`Keys.heldDispatch(target)`); the series' DispatchState for the target says "held" and
 * names the dispatch job id the result would have (src/queue/jobs.ts dispatchJobId). A release
 * claims each entry with ZREM, which answers 1 to exactly one caller: a result is sent (or
 * withheld) once, however many releases or re-checks run at the same time.
 */
import type { Redis } from 'ioredis';
import { Keys } from './keys.js';
import { whenReady } from './redis.js';
import { READY_MS } from './dispatch-state.js';

export class HeldDispatch {
  readonly keys: Keys;

  constructor(
    private readonly redis: Redis,
    prefix: string,
  ) {
    this.keys = new Keys(prefix);
  }

  async hold(target: string, seriesUid: string, at = Date.now()): Promise<void> {
    await whenReady(this.redis, READY_MS);
    await this.redis.zadd(this.keys.heldDispatch(target), at, seriesUid);
  }

  /** True for the one caller that takes the entry off the list. */
  async claim(target: string, seriesUid: string): Promise<boolean> {
    await whenReady(this.redis, READY_MS);
    return (await this.redis.zrem(this.keys.heldDispatch(target), seriesUid)) === 1;
  }

  /** The series held for the target, oldest first. */
  async list(target: string, limit = 100_000): Promise<string[]> {
    await whenReady(this.redis, READY_MS);
    return this.redis.zrange(this.keys.heldDispatch(target), 0, limit - 1);
  }

  async count(target: string): Promise<number> {
    await whenReady(this.redis, READY_MS);
    return this.redis.zcard(this.keys.heldDispatch(target));
  }
}
