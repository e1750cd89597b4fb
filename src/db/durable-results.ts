/**
 * Writes every finished result into the relational store without ever holding the pipeline up:
 * the row goes to the database directly; when the database does not answer (down, slow, migrating),
 * it waits in a Redis list (the outbox, `<prefix>:db:outbox`) and a catch-up loop writes it later,
 * oldest first, removing each entry only after its write succeeded (the write is an idempotent
 * upsert, so a crash between the two repeats it harmlessly). Results are still computed and
 * dispatched meanwhile; status() says what is wrong for /readyz.
 */
import type { Redis } from 'ioredis';
import type { Logger } from '../log.js';
import { withTimeout } from '../stores/redis.js';
import type { ResultsDb } from './results-db.js';
import type { NewResultRow } from './tables.js';

export interface DurableResultsOptions {
  redis: Redis;
  keyPrefix: string;
  /** Opens (and migrates) the database; retried by the catch-up loop until it succeeds. */
  open: () => Promise<ResultsDb>;
  logger: Logger;
  /** Catch-up period, ms. */
  catchUpMs: number;
  /** One database write may take this long before the row goes to the outbox. */
  writeTimeoutMs?: number;
}

export interface StoreStatus {
  ok: boolean;
  where?: string;
  /** Rows waiting in the outbox. */
  pending: number;
  error?: string;
}

export const outboxKey = (prefix: string): string => `${prefix}:db:outbox`;

export class DurableResults {
  private db: ResultsDb | undefined;
  private opening: Promise<ResultsDb> | undefined;
  private lastError: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private draining: Promise<number> | undefined;
  private readonly key: string;
  private readonly writeTimeoutMs: number;

  constructor(private readonly opts: DurableResultsOptions) {
    this.key = outboxKey(opts.keyPrefix);
    this.writeTimeoutMs = opts.writeTimeoutMs ?? 5_000;
  }

  /** Starts the catch-up loop (first run at once). */
  start(): void {
    const tick = (): void => {
      void this.catchUp()
        .catch(() => undefined)
        .finally(() => {
          if (this.timer !== undefined) this.timer = setTimeout(tick, this.opts.catchUpMs).unref();
        });
    };
    this.timer = setTimeout(tick, 0).unref();
  }

  async stop(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.draining?.catch(() => undefined);
    await this.db?.conn.close().catch(() => undefined);
    this.db = undefined;
  }

  private async database(): Promise<ResultsDb> {
    if (this.db) return this.db;
    this.opening ??= this.opts.open().finally(() => (this.opening = undefined));
    this.db = await withTimeout(this.opening, this.writeTimeoutMs * 2, 'results store open');
    return this.db;
  }

  /** Stores one row now, or parks it in the outbox (never throws for a database problem). */
  async record(row: NewResultRow): Promise<'stored' | 'queued'> {
    // Older rows of the outbox go first: a direct write while some wait could be overtaken by a stale one.
    const waiting = await this.opts.redis.llen(this.key);
    if (waiting === 0) {
      try {
        const db = await this.database();
        await withTimeout(db.saveResult(row), this.writeTimeoutMs, 'results store write');
        this.lastError = undefined;
        return 'stored';
      } catch (err) {
        this.fail(err);
      }
    }
    await this.opts.redis.rpush(this.key, JSON.stringify(row));
    this.opts.logger.warn(
      { series: row.series_instance_uid, waiting: waiting + 1, err: this.lastError },
      'results store unavailable: result kept in the outbox',
    );
    return 'queued';
  }

  /** Writes what waits in the outbox, oldest first; returns how many were written. */
  catchUp(): Promise<number> {
    this.draining ??= this.drain().finally(() => (this.draining = undefined));
    return this.draining;
  }

  private async drain(): Promise<number> {
    let written = 0;
    let db: ResultsDb;
    try {
      db = await this.database();
    } catch (err) {
      this.fail(err);
      return 0;
    }
    for (;;) {
      const raw = await this.opts.redis.lindex(this.key, 0);
      if (raw === null) break;
      let row: NewResultRow | undefined;
      try {
        row = JSON.parse(raw) as NewResultRow;
      } catch {
        row = undefined;
      }
      if (row) {
        try {
          await withTimeout(db.saveResult(row), this.writeTimeoutMs, 'results store write');
        } catch (err) {
          this.fail(err);
          return written;
        }
      } else {
        this.opts.logger.error('results store outbox: unreadable entry dropped');
      }
      // Remove exactly that entry (the head), even if a writer pushed behind it meanwhile.
      await this.opts.redis.lrem(this.key, 1, raw);
      written++;
    }
    if (written > 0) this.opts.logger.info({ written }, 'results store caught up');
    this.lastError = undefined;
    return written;
  }

  private fail(err: unknown): void {
    const msg = err instanceof Error ? err.message : String(err);
    if (msg !== this.lastError) this.opts.logger.warn({ err: msg }, 'results store write failed');
    this.lastError = msg;
    // A broken SQLite handle or pool is reopened on the next try.
    if (/closed|not open|terminat|ECONNREFUSED|timed out|Connection/i.test(msg) && this.db) {
      const old = this.db;
      this.db = undefined;
      void old.conn.close().catch(() => undefined);
    }
  }

  /** Deletes stored results older than `days` (0 keeps all); feedback and audit stay. */
  async prune(days: number): Promise<number> {
    if (days <= 0) return 0;
    const db = await this.database();
    return db.pruneResults(days);
  }

  async status(): Promise<StoreStatus> {
    const pending = await this.opts.redis.llen(this.key).catch(() => -1);
    const where = this.db?.conn.where;
    if (this.lastError) {
      return {
        ok: false,
        ...(where ? { where } : {}),
        pending,
        error: `results store not writable (${this.lastError}); ${pending} result(s) wait in Redis and will be written when it is back`,
      };
    }
    return { ok: true, ...(where ? { where } : {}), pending };
  }
}
