/**
 * A lazily opened, self-healing handle on the results store for request handlers: the first use
 * opens and migrates it; a failed open is retried on the next use (at most every retryMs), so the
 * dashboard answers 503 while the database is away and works again once it is back.
 */
import type { ResultsDb } from './results-db.js';

export class StoreUnavailableError extends Error {
  readonly statusCode = 503;
  constructor(message: string) {
    super(`results store unavailable: ${message}`);
  }
}

export class StoreHandle {
  private db: ResultsDb | undefined;
  private opening: Promise<ResultsDb> | undefined;
  private failedAt = 0;
  private lastError: string | undefined;

  constructor(
    private readonly open: () => Promise<ResultsDb>,
    private readonly retryMs = 1_000,
  ) {}

  async get(): Promise<ResultsDb> {
    if (this.db) return this.db;
    if (this.lastError && Date.now() - this.failedAt < this.retryMs) throw new StoreUnavailableError(this.lastError);
    this.opening ??= this.open()
      .then((db) => {
        this.db = db;
        this.lastError = undefined;
        return db;
      })
      .catch((err: Error) => {
        this.lastError = err.message;
        this.failedAt = Date.now();
        throw new StoreUnavailableError(err.message);
      })
      .finally(() => (this.opening = undefined));
    return this.opening;
  }

  /** Runs fn on the store; a connection-level failure drops the handle so the next call reopens. */
  async use<T>(fn: (db: ResultsDb) => Promise<T>): Promise<T> {
    const db = await this.get();
    try {
      return await fn(db);
    } catch (err) {
      const msg = (err as Error).message;
      if (/ECONNREFUSED|terminat|Connection|closed|not open|timeout/i.test(msg)) {
        if (this.db === db) this.db = undefined;
        void db.conn.close().catch(() => undefined);
        this.lastError = msg;
        this.failedAt = Date.now();
        throw new StoreUnavailableError(msg);
      }
      throw err;
    }
  }

  async close(): Promise<void> {
    const db = this.db ?? (await this.opening?.catch(() => undefined));
    this.db = undefined;
    await db?.conn.close().catch(() => undefined);
  }
}
