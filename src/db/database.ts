/**
 * Opens the results store named by config.storage.url: `sqlite:<file>` (better-sqlite3, embedded,
 * no set-up: the file and its folder are created) or `postgres://…` (a small pg pool), migrated to
 * the latest version before use. One Kysely<Database> for both: the queries in src/db are the same.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, Migrator, PostgresDialect, SqliteDialect, sql } from 'kysely';
import pg from 'pg';
import { resolvePath } from '../config/load.js';
import { migrationProvider, type Engine } from './migrations.js';
import type { Database } from './tables.js';

export interface StoreConnection {
  db: Kysely<Database>;
  engine: Engine;
  /** The URL without its password (for logs and /readyz). */
  where: string;
  close(): Promise<void>;
}

export interface OpenOptions {
  /** Pool connect timeout (PostgreSQL), ms. */
  connectTimeoutMs?: number;
  /** Called with errors of idle pooled connections (the database went away); they are not thrown. */
  onPoolError?: (err: Error) => void;
}

export function engineOf(url: string): Engine {
  if (url.startsWith('sqlite:')) return 'sqlite';
  if (/^postgres(ql)?:\/\//.test(url)) return 'postgres';
  throw new Error(`storage.url ${redactDbUrl(url)}: not sqlite:<file> or postgres://`);
}

export function redactDbUrl(url: string): string {
  return url.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');
}

/** Opens without migrating (migrateToLatest does that; the CLI and the node call both). */
export function openStore(url: string, opts: OpenOptions = {}): StoreConnection {
  const engine = engineOf(url);
  if (engine === 'sqlite') {
    const file = resolvePath(url.slice('sqlite:'.length));
    mkdirSync(dirname(file), { recursive: true });
    const conn = new BetterSqlite3(file);
    conn.pragma('journal_mode = WAL');
    conn.pragma('busy_timeout = 5000');
    conn.pragma('foreign_keys = ON');
    const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: conn }) });
    return { db, engine, where: `sqlite:${file}`, close: () => db.destroy() };
  }
  const pool = new pg.Pool({
    connectionString: url,
    max: 5,
    connectionTimeoutMillis: opts.connectTimeoutMs ?? 3_000,
    idleTimeoutMillis: 30_000,
  });
  pool.on('error', (err) => opts.onPoolError?.(err));
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  return { db, engine, where: redactDbUrl(url), close: () => db.destroy() };
}

/** Applies every migration not yet applied; throws with the failing migration's name. */
export async function migrateToLatest(conn: StoreConnection): Promise<string[]> {
  const migrator = new Migrator({ db: conn.db, provider: migrationProvider(conn.engine) });
  const { error, results } = await migrator.migrateToLatest();
  const failed = results?.find((r) => r.status === 'Error');
  if (error || failed) {
    const why = error instanceof Error ? error.message : String(error ?? 'failed');
    throw new Error(`results store ${conn.where}: migration ${failed?.migrationName ?? ''} failed: ${why}`);
  }
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}

/** A round trip to the database (for /readyz). */
export async function pingStore(conn: StoreConnection): Promise<void> {
  await sql`select 1`.execute(conn.db);
}
