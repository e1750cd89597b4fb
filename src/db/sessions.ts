/**
 * Browser sessions of the dashboard, kept in the results store (SQLite or PostgreSQL) so that a
 * login survives a restart of the node and of Redis (which, as deployed, may keep nothing on disk),
 * and is shared by every admin host of one PostgreSQL store. Rows are keyed by the sha256 of the
 * session id: whoever reads the database cannot take over a session. Expired rows are void and
 * deleted. The signing secret of the session cookie is made once and kept in the settings table.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { ResultsDb } from './results-db.js';

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');

/** The settings row that holds the cookie-signing secret (made on first use). */
export const SESSION_SECRET_SETTING = 'http.session-secret';

export interface StoredSession {
  /** The session as the session plugin serialised it. */
  data: unknown;
  userName: string | null;
  expiresAt: Date;
}

export class Sessions {
  constructor(private readonly store: ResultsDb) {}

  async get(id: string, now = new Date()): Promise<StoredSession | undefined> {
    const row = await this.store.db
      .selectFrom('sessions')
      .select(['data', 'user_name', 'expires_at'])
      .where('id_hash', '=', sha256(id))
      .executeTakeFirst();
    if (!row) return undefined;
    if (row.expires_at <= now.toISOString()) {
      await this.destroy(id);
      return undefined;
    }
    return { data: JSON.parse(row.data) as unknown, userName: row.user_name, expiresAt: new Date(row.expires_at) };
  }

  async set(id: string, data: unknown, userName: string | null, expiresAt: Date, now = new Date()): Promise<void> {
    const json = JSON.stringify(data);
    const expires = expiresAt.toISOString();
    await this.store.db
      .insertInto('sessions')
      .values({ id_hash: sha256(id), user_name: userName, data: json, created_at: now.toISOString(), expires_at: expires })
      .onConflict((oc) => oc.column('id_hash').doUpdateSet({ user_name: userName, data: json, expires_at: expires }))
      .execute();
  }

  async destroy(id: string): Promise<void> {
    await this.store.db.deleteFrom('sessions').where('id_hash', '=', sha256(id)).execute();
  }

  /** Ends every session of a user (password changed, user removed); how many. */
  async endAllOf(userName: string): Promise<number> {
    const r = await this.store.db.deleteFrom('sessions').where('user_name', '=', userName).executeTakeFirst();
    return Number(r.numDeletedRows);
  }

  /** Deletes expired sessions; how many. */
  async purgeExpired(now = new Date()): Promise<number> {
    const r = await this.store.db.deleteFrom('sessions').where('expires_at', '<=', now.toISOString()).executeTakeFirst();
    return Number(r.numDeletedRows);
  }

  /** Open sessions of a user (for the tests and `mlsam users list`). */
  async countOf(userName: string, now = new Date()): Promise<number> {
    const r = await this.store.db
      .selectFrom('sessions')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('user_name', '=', userName)
      .where('expires_at', '>', now.toISOString())
      .executeTakeFirst();
    return Number(r?.n ?? 0);
  }

  /**
   * The secret that signs session cookies: made (48 random bytes) on the first call and kept in
   * the settings table, so that every restart and every admin host of the store signs alike.
   */
  async secret(): Promise<string> {
    const existing = await this.store.getSetting(SESSION_SECRET_SETTING);
    if (existing) return existing;
    const made = randomBytes(48).toString('base64url');
    await this.store.db
      .insertInto('settings')
      .values({ name: SESSION_SECRET_SETTING, value: made, updated_at: new Date().toISOString(), updated_by: 'mlsam-node' })
      .onConflict((oc) => oc.column('name').doNothing())
      .execute();
    // Another host may have made it first: the stored one wins.
    return (await this.store.getSetting(SESSION_SECRET_SETTING)) ?? made;
  }
}
