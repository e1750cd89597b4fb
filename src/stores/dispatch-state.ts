/**
 * Dispatch bookkeeping in Redis (the only place dispatch state lives; the ResultRecord is not
 * touched): per series a hash destination → DispatchState of the latest requested dispatch, and a
 * capped list of DispatchAttempt (newest first) of every try.
 */
import type { Redis } from 'ioredis';
import { Keys } from './keys.js';
import { whenReady } from './redis.js';
import {
  dispatchAttemptSchema,
  dispatchStateSchema,
  parseStored,
  type DispatchAttempt,
  type DispatchState,
} from '../contracts/result-record.js';

/** Entries kept in a series' dispatch log. */
export const DISPATCH_LOG_CAP = 200;
/** How long a call waits for a (re)connecting Redis before it fails. */
export const READY_MS = 3_000;

/**
 * Writes the state only if the destination's current state belongs to the same job (or there is
 * none): a retry of an older result's job never overwrites the state of a newer result.
 */
const SET_IF_SAME_JOB = `
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  local ok, obj = pcall(cjson.decode, cur)
  if ok and type(obj) == 'table' and obj.jobId ~= ARGV[2] then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
`;

export class DispatchStore {
  readonly keys: Keys;

  constructor(
    private readonly redis: Redis,
    prefix: string,
  ) {
    this.keys = new Keys(prefix);
  }

  /** A command connection has no offline queue: wait (briefly) for it to be connected. */
  private ready(): Promise<void> {
    return whenReady(this.redis, READY_MS);
  }

  /** Sets the state unconditionally (a new dispatch was requested: it becomes the latest). */
  async setState(seriesUid: string, state: DispatchState): Promise<void> {
    await this.ready();
    const s = dispatchStateSchema.parse(state);
    await this.redis.hset(this.keys.dispatch(seriesUid), s.destination, JSON.stringify(s));
  }

  /** Sets the state if the stored one is of the same job (or absent); true when written. */
  async updateState(seriesUid: string, state: DispatchState): Promise<boolean> {
    await this.ready();
    const s = dispatchStateSchema.parse(state);
    const r = await this.redis.eval(SET_IF_SAME_JOB, 1, this.keys.dispatch(seriesUid), s.destination, s.jobId, JSON.stringify(s));
    return r === 1;
  }

  async getState(seriesUid: string, destination: string): Promise<DispatchState | undefined> {
    await this.ready();
    const raw = await this.redis.hget(this.keys.dispatch(seriesUid), destination);
    return parseStored(dispatchStateSchema, raw);
  }

  /** Every destination's state for the series. */
  async states(seriesUid: string): Promise<DispatchState[]> {
    await this.ready();
    return parseDispatchStates(await this.redis.hgetall(this.keys.dispatch(seriesUid)));
  }

  /** Prepends one attempt to the series' log, keeping the newest DISPATCH_LOG_CAP. */
  async logAttempt(seriesUid: string, attempt: DispatchAttempt): Promise<void> {
    await this.ready();
    const a = dispatchAttemptSchema.parse(attempt);
    const key = this.keys.dispatchLog(seriesUid);
    await this.redis
      .multi()
      .lpush(key, JSON.stringify(a))
      .ltrim(key, 0, DISPATCH_LOG_CAP - 1)
      .exec();
  }

  /** The series' attempts, newest first. */
  async attempts(seriesUid: string, limit = DISPATCH_LOG_CAP): Promise<DispatchAttempt[]> {
    await this.ready();
    const raw = await this.redis.lrange(this.keys.dispatchLog(seriesUid), 0, limit - 1);
    return raw.map((r) => parseStored(dispatchAttemptSchema, r)).filter((a): a is DispatchAttempt => a !== undefined);
  }
}

/** The valid entries of a `Keys.dispatch(uid)` hash (destination → DispatchState JSON). */
export function parseDispatchStates(hash: Record<string, string>): DispatchState[] {
  return Object.values(hash)
    .map((raw) => parseStored(dispatchStateSchema, raw))
    .filter((s): s is DispatchState => s !== undefined);
}
