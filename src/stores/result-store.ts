/**
 * The per-series result record in Redis (Keys.result(uid), JSON, validated by resultRecordSchema
 * before every write) and its listing index (Keys.resultIndex(), scored by update time).
 */
import type { Redis } from 'ioredis';
import type { Keys } from './keys.js';
import { loadLua } from './lua.js';
import { parseStored, resultKey, resultRecordSchema, type ResultRecord } from '../contracts/result-record.js';

/** Earlier results kept in `previous`. */
export const MAX_PREVIOUS = 20;
/** `dropped` entries kept. */
export const MAX_DROPPED = 1000;

/**
 * Writes the record, indexes it and mirrors its status into the tracker's series hash. ARGV[3]
 * 'own' writes only while the record still belongs to this job (a newer job for grown content
 * may have taken it over: a stale job must not overwrite the newer result); 'take' always writes.
 * The series hash status is set only when the hash exists and is not receiving new instances.
 */
const WRITE_RECORD = loadLua(import.meta.url, 'write-result');

export class ResultStore {
  constructor(
    private readonly redis: Redis,
    readonly keys: Keys,
  ) {
    redis.defineCommand('mlsamWriteResult', { numberOfKeys: 3, lua: WRITE_RECORD });
  }

  /** The current record, or null (missing or not a valid record). */
  async read(seriesUid: string): Promise<ResultRecord | null> {
    return parseStored(resultRecordSchema, await this.redis.get(this.keys.result(seriesUid))) ?? null;
  }

  /**
   * Validates and writes. mode 'take': this job takes the record over (job start);
   * 'own': only if the record still belongs to record.jobId. Returns false when superseded.
   */
  async write(record: ResultRecord, mode: 'take' | 'own'): Promise<boolean> {
    const valid = resultRecordSchema.parse(record);
    const uid = valid.seriesInstanceUid;
    const cmd = (this.redis as unknown as Record<string, (...a: (string | number)[]) => Promise<number>>).mlsamWriteResult as (
      ...a: (string | number)[]
    ) => Promise<number>;
    const n = await cmd.call(
      this.redis,
      this.keys.result(uid),
      this.keys.resultIndex(),
      this.keys.series(uid),
      JSON.stringify(valid),
      valid.jobId,
      mode,
      Date.now(),
      uid,
      valid.status,
    );
    return n === 1;
  }
}

/**
 * `previous` of a new record (`instancesHash`: the new record's resultKey): when the content hash changed, the old record's identity goes first
 * (with its SR UIDs, so the new SR can name it as predecessor); same content keeps the old list.
 */
export function previousOf(existing: ResultRecord | null, instancesHash: string): ResultRecord['previous'] {
  if (!existing) return undefined;
  const existingKey = resultKey(existing);
  if (existingKey === instancesHash) return existing.previous;
  const sr = existing.outputs?.find((o) => o.kind === 'sr');
  const entry = {
    instancesHash: existingKey,
    modelVersion: existing.model.version,
    ...(sr ? { srSopInstanceUid: sr.sopInstanceUid, srSeriesInstanceUid: sr.seriesInstanceUid } : {}),
    ...(existing.finishedAt ? { finishedAt: existing.finishedAt } : {}),
  };
  const older = (existing.previous ?? []).filter((p) => p.instancesHash !== instancesHash && p.instancesHash !== existingKey);
  return [entry, ...older].slice(0, MAX_PREVIOUS);
}
