/**
 * The session store of the dashboard on both engines (SQLite file, real PostgreSQL): a session
 * written by one connection is read by another (a restart, or another admin host of the store),
 * keyed by the sha256 of its id (the id itself is nowhere in the database); an expired session reads
 * as none and is deleted; a new password or a removed user ends the user's sessions; the cookie
 * secret is made once and then the same for every connection.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrateToLatest, openStore } from '../../src/db/database.js';
import { ResultsDb } from '../../src/db/results-db.js';
import { SESSION_SECRET_SETTING, Sessions } from '../../src/db/sessions.js';
import { Users } from '../../src/db/users.js';
import { createTestStore, ENGINES, type TestStore } from './helpers.js';

async function connect(url: string): Promise<ResultsDb> {
  const conn = openStore(url);
  await migrateToLatest(conn);
  return new ResultsDb(conn);
}

describe.each(ENGINES)('session store (%s)', (engine) => {
  let ts: TestStore;
  let a: ResultsDb;
  let b: ResultsDb;

  beforeAll(async () => {
    ts = await createTestStore(engine);
    a = await connect(ts.url);
    b = await connect(ts.url);
    await new Users(a).add('dr.lee', 'lee-password-1', 'radiologist', 'test');
  }, 60_000);
  afterAll(async () => {
    await a?.conn.close();
    await b?.conn.close();
    await ts?.drop();
  });

  it('keeps a session across connections, keyed by the hash of its id; expired ones read as none', async () => {
    const later = new Date(Date.now() + 3_600_000);
    await new Sessions(a).set('id-one', { user: { name: 'dr.lee', via: 'local' }, _csrf: 's3cret' }, 'dr.lee', later);
    const got = await new Sessions(b).get('id-one');
    expect(got).toMatchObject({ userName: 'dr.lee', data: { user: { name: 'dr.lee' }, _csrf: 's3cret' } });
    expect(got!.expiresAt.toISOString()).toBe(later.toISOString());
    const rows = await b.db.selectFrom('sessions').selectAll().execute();
    expect(rows.map((r) => r.id_hash)).toEqual([createHash('sha256').update('id-one').digest('hex')]);
    expect(JSON.stringify(rows)).not.toContain('id-one');
    // Written again (the session changed): one row, new data.
    await new Sessions(a).set('id-one', { user: { name: 'dr.lee', via: 'local' }, _csrf: 'other' }, 'dr.lee', later);
    expect((await new Sessions(b).get('id-one'))!.data).toMatchObject({ _csrf: 'other' });

    await new Sessions(a).set('id-old', {}, null, new Date(Date.now() - 1000));
    expect(await new Sessions(b).get('id-old')).toBeUndefined();
    expect(await b.db.selectFrom('sessions').select('id_hash').execute()).toHaveLength(1);
    await new Sessions(a).set('id-old2', {}, null, new Date(Date.now() - 1000));
    expect(await new Sessions(a).purgeExpired()).toBe(1);
  });

  it('a new password and the removal of the user end their sessions', async () => {
    const later = new Date(Date.now() + 3_600_000);
    await new Sessions(a).set('id-two', {}, 'dr.lee', later);
    expect(await new Sessions(b).countOf('dr.lee')).toBe(2);
    await new Users(b).passwd('dr.lee', 'lee-password-2', 'test');
    expect(await new Sessions(a).countOf('dr.lee')).toBe(0);
    await new Sessions(a).set('id-three', {}, 'dr.lee', later);
    await new Users(b).remove('dr.lee', 'test');
    expect(await new Sessions(a).get('id-three')).toBeUndefined();
  });

  it('makes the cookie secret once; every connection then reads the same', async () => {
    const [x, y] = await Promise.all([new Sessions(a).secret(), new Sessions(b).secret()]);
    expect(x).toBe(y);
    expect(x.length).toBeGreaterThanOrEqual(64);
    expect(await new Sessions(a).secret()).toBe(x);
    expect(await a.getSetting(SESSION_SECRET_SETTING)).toBe(x);
  });
});
