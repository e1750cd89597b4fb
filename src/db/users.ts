/**
 * Local users of the dashboard and API: roles admin (everything), radiologist (read, feedback),
 * viewer (read only); passwords hashed with bcrypt (bcryptjs, cost 11); API tokens for
 * integrations (random 32 bytes, only their sha256 stored). A new password or the removal of a user
 * ends their browser sessions. Every change lands in the audit table.
 */
import { createHash, randomBytes } from 'node:crypto';
import bcrypt from 'bcryptjs';
import { z } from 'zod';
import type { ResultsDb } from './results-db.js';

export const ROLES = ['admin', 'radiologist', 'viewer'] as const;
export type UserRole = (typeof ROLES)[number];
export const roleSchema = z.enum(ROLES, { error: (iss) => `role ${JSON.stringify(iss.input)} is not one of ${ROLES.join(', ')}` });
export const userNameSchema = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[A-Za-z0-9._@-]+$/, 'user names use letters, digits and . _ @ -');
/** At least 10 characters (NIST SP 800-63B asks for 8; a hospital network deserves more). */
export const passwordSchema = z.string().min(10, 'a password needs at least 10 characters').max(200);

const COST = 11;
const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');
/**
 * Compared against when the user does not exist, so that an unknown name takes as long as a wrong password. Made
 * once per process, in the background when the first Users is built (not at import: every process that loads
 * this module, the inference worker included, paid ~0.2 s of blocking CPU for it at start).
 */
let dummyHash: Promise<string> | undefined;
const dummy = (): Promise<string> => {
  dummyHash ??= bcrypt.hash('not a password of anyone', COST);
  return dummyHash;
};

export interface UserIdentity {
  name: string;
  role: UserRole;
}

export class Users {
  constructor(private readonly store: ResultsDb) {
    void dummy();
  }

  async add(name: string, password: string, role: UserRole, by: string): Promise<void> {
    userNameSchema.parse(name);
    passwordSchema.parse(password);
    roleSchema.parse(role);
    const now = new Date().toISOString();
    const hash = await bcrypt.hash(password, COST);
    await this.store.db.transaction().execute(async (trx) => {
      const exists = await trx.selectFrom('users').select('name').where('name', '=', name).executeTakeFirst();
      if (exists) throw new Error(`user ${name} exists already (mlsam users passwd changes the password)`);
      await trx.insertInto('users').values({ name, password_hash: hash, role, created_at: now, updated_at: now }).execute();
      await trx
        .insertInto('audit')
        .values({
          at: now,
          user_name: by,
          action: 'user-add',
          study_instance_uid: null,
          series_instance_uid: null,
          detail: JSON.stringify({ name, role }),
        })
        .execute();
    });
  }

  async passwd(name: string, password: string, by: string): Promise<void> {
    passwordSchema.parse(password);
    const now = new Date().toISOString();
    const hash = await bcrypt.hash(password, COST);
    await this.store.db.transaction().execute(async (trx) => {
      const r = await trx.updateTable('users').set({ password_hash: hash, updated_at: now }).where('name', '=', name).executeTakeFirst();
      if (Number(r.numUpdatedRows) !== 1) throw new Error(`no user ${name}`);
      // A new password ends the user's browser sessions (src/db/sessions.ts).
      await trx.deleteFrom('sessions').where('user_name', '=', name).execute();
      await trx
        .insertInto('audit')
        .values({
          at: now,
          user_name: by,
          action: 'user-passwd',
          study_instance_uid: null,
          series_instance_uid: null,
          detail: JSON.stringify({ name }),
        })
        .execute();
    });
  }

  async setRole(name: string, role: UserRole, by: string): Promise<void> {
    roleSchema.parse(role);
    const now = new Date().toISOString();
    await this.store.db.transaction().execute(async (trx) => {
      const r = await trx.updateTable('users').set({ role, updated_at: now }).where('name', '=', name).executeTakeFirst();
      if (Number(r.numUpdatedRows) !== 1) throw new Error(`no user ${name}`);
      await trx
        .insertInto('audit')
        .values({
          at: now,
          user_name: by,
          action: 'user-role',
          study_instance_uid: null,
          series_instance_uid: null,
          detail: JSON.stringify({ name, role }),
        })
        .execute();
    });
  }

  async remove(name: string, by: string): Promise<void> {
    const now = new Date().toISOString();
    await this.store.db.transaction().execute(async (trx) => {
      await trx.deleteFrom('api_tokens').where('user_name', '=', name).execute();
      await trx.deleteFrom('sessions').where('user_name', '=', name).execute();
      const r = await trx.deleteFrom('users').where('name', '=', name).executeTakeFirst();
      if (Number(r.numDeletedRows) !== 1) throw new Error(`no user ${name}`);
      await trx
        .insertInto('audit')
        .values({
          at: now,
          user_name: by,
          action: 'user-remove',
          study_instance_uid: null,
          series_instance_uid: null,
          detail: JSON.stringify({ name }),
        })
        .execute();
    });
  }

  async list(): Promise<{ name: string; role: string; created_at: string; updated_at: string }[]> {
    return this.store.db.selectFrom('users').select(['name', 'role', 'created_at', 'updated_at']).orderBy('name').execute();
  }

  /** The user's identity when the password matches; undefined otherwise (same time either way). */
  async verify(name: string, password: string): Promise<UserIdentity | undefined> {
    const u = await this.store.db.selectFrom('users').select(['name', 'password_hash', 'role']).where('name', '=', name).executeTakeFirst();
    const ok = await bcrypt.compare(password, u?.password_hash ?? (await dummy()));
    return ok && u ? { name: u.name, role: roleSchema.parse(u.role) } : undefined;
  }

  /** The user's current identity (role) by name; undefined when there is no such user. */
  async find(name: string): Promise<UserIdentity | undefined> {
    const u = await this.store.db.selectFrom('users').select(['name', 'role']).where('name', '=', name).executeTakeFirst();
    return u ? { name: u.name, role: roleSchema.parse(u.role) } : undefined;
  }

  /** A new API token for the user (shown once; `Authorization: Bearer <token>`). */
  async createToken(name: string, label: string, by: string): Promise<string> {
    const token = `mlsam_${randomBytes(32).toString('base64url')}`;
    const now = new Date().toISOString();
    await this.store.db.transaction().execute(async (trx) => {
      const u = await trx.selectFrom('users').select('name').where('name', '=', name).executeTakeFirst();
      if (!u) throw new Error(`no user ${name}`);
      await trx
        .insertInto('api_tokens')
        .values({ token_hash: sha256(token), user_name: name, label, created_at: now })
        .execute();
      await trx
        .insertInto('audit')
        .values({
          at: now,
          user_name: by,
          action: 'token-add',
          study_instance_uid: null,
          series_instance_uid: null,
          detail: JSON.stringify({ name, label }),
        })
        .execute();
    });
    return token;
  }

  async verifyToken(token: string): Promise<UserIdentity | undefined> {
    const r = await this.store.db
      .selectFrom('api_tokens')
      .innerJoin('users', 'users.name', 'api_tokens.user_name')
      .select(['users.name as name', 'users.role as role'])
      .where('api_tokens.token_hash', '=', sha256(token))
      .executeTakeFirst();
    return r ? { name: r.name, role: roleSchema.parse(r.role) } : undefined;
  }
}
