/**
 * The silent-mode switch in the results store, on both engines: the precedence of the admin's
 * switches over the config file (a target's own setting, its `mode` in the file, the admin's
 * "all" switch, `dispatch.mode`), one audit entry per switch with the user and role, the switch
 * still there after the store is opened again (a restart), and while the store is unreachable the
 * last switches read (the copy in Redis) still hold.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config/schema.js';
import { DispatchModes, UnknownTargetError } from '../../src/db/dispatch-modes.js';
import { StoreHandle } from '../../src/db/handle.js';
import { migrateToLatest, openStore } from '../../src/db/database.js';
import { ResultsDb } from '../../src/db/results-db.js';
import { closeRedis, createRedis, whenReady } from '../../src/stores/redis.js';
import { cleanup, logger, testConfig } from '../queue/helpers.js';
import { createTestStore, ENGINES, type TestStore } from './helpers.js';

const LEAD = { name: 'it.lead', role: 'admin' };

async function open(url: string): Promise<ResultsDb> {
  const conn = openStore(url);
  await migrateToLatest(conn);
  return new ResultsDb(conn);
}

describe.each(ENGINES)('dispatch modes on %s', (engine) => {
  let ts: TestStore;
  let config: Config;
  let handle: StoreHandle;
  let redis: ReturnType<typeof createRedis>;
  let modes: DispatchModes;

  beforeAll(async () => {
    ts = await createTestStore(engine);
    config = await testConfig('dispatch-modes', {
      dispatch: { mode: 'silent' },
      destinations: [
        { name: 'pacs', aeTitle: 'PACS', host: '127.0.0.1', port: 104 },
        { name: 'pacs2', aeTitle: 'PACS2', host: '127.0.0.1', port: 105, mode: 'live' },
      ],
      notifications: [{ type: 'webhook', name: 'hook', url: 'http://127.0.0.1:9/x', secret: 'a-secret-of-16-chars' }],
    });
    handle = new StoreHandle(() => open(ts.url));
    redis = createRedis(config.redis.url, 'command', logger);
    await whenReady(redis, 5_000);
    modes = new DispatchModes({ config, logger, redis, store: handle });
  });
  afterAll(async () => {
    await handle?.close();
    if (redis) await closeRedis(redis);
    await ts?.drop();
    if (config) await cleanup(config);
  });

  it("the config file's modes until an admin switches; the admin's switch wins, per target and for all", async () => {
    let v = await modes.view();
    expect(v.readFrom).toBe('store');
    expect(v.targets.map((t) => [t.name, t.mode, t.source])).toEqual([
      ['pacs', 'silent', 'global config'],
      ['pacs2', 'live', 'config'],
      ['hook', 'silent', 'global config'],
    ]);
    expect(v.silent).toEqual(['pacs', 'hook']);

    await modes.set('live', LEAD, 'hook');
    v = await modes.view();
    expect(v.targets.find((t) => t.name === 'hook')).toMatchObject({ mode: 'live', source: 'setting', changedBy: 'it.lead' });
    expect(v.silent).toEqual(['pacs']);

    // "All": every target (pacs2's own mode in the file included) and the global switch.
    await modes.set('silent', LEAD);
    v = await modes.view();
    expect(v.global).toMatchObject({ mode: 'silent', source: 'setting' });
    expect(v.silent).toEqual(['pacs', 'pacs2', 'hook']);
    await modes.set('live', LEAD, 'pacs');
    expect(await modes.silent()).toEqual(['pacs2', 'hook']);

    await expect(modes.set('live', LEAD, 'nowhere')).rejects.toBeInstanceOf(UnknownTargetError);
  });

  it('each switch is one audit entry with the user and role; the switches survive a reopen', async () => {
    const db = await open(ts.url);
    try {
      const audit = (await db.listAudit()).filter((a) => a.action.startsWith('dispatch-')).reverse();
      expect(audit.map((a) => [a.action, a.user_name, JSON.parse(a.detail ?? '{}')])).toEqual([
        ['dispatch-release', 'it.lead', { role: 'admin', scope: 'target', targets: ['hook'] }],
        ['dispatch-silence', 'it.lead', { role: 'admin', scope: 'all', targets: ['pacs', 'pacs2', 'hook'] }],
        ['dispatch-release', 'it.lead', { role: 'admin', scope: 'target', targets: ['pacs'] }],
      ]);
    } finally {
      await db.conn.close();
    }
    const again = new StoreHandle(() => open(ts.url));
    try {
      expect(await new DispatchModes({ config, logger, redis, store: again }).silent()).toEqual(['pacs2', 'hook']);
    } finally {
      await again.close();
    }
  });

  it('with the store unreachable, the last switches read (copied to Redis) hold, not the file', async () => {
    const down = new StoreHandle(async () => {
      throw new Error('connect ECONNREFUSED 127.0.0.1:1');
    });
    const v = await new DispatchModes({ config, logger, redis, store: down }).view();
    expect(v.readFrom).toBe('redis copy');
    expect(v.error).toMatch(/ECONNREFUSED/);
    expect(v.silent).toEqual(['pacs2', 'hook']);
  });
});
