import { afterEach, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config/schema.js';
import type { AssociationRecord } from '../../src/dicom/received-instance.js';
import { AssociationAudit } from '../../src/stores/audit.js';
import { closeRedis, createRedis } from '../../src/stores/redis.js';
import { cleanup, freePort, logger, testConfig } from '../queue/helpers.js';

const configs: Config[] = [];
afterEach(async () => {
  await Promise.all(configs.splice(0).map(cleanup));
});

const record = (i: number, startedAt: number): AssociationRecord => ({
  id: `assoc-${i}`,
  callingAeTitle: 'STORESCU',
  calledAeTitle: 'MLSAM',
  callingHost: '127.0.0.1',
  startedAt,
  endedAt: startedAt + 1500,
  instances: 10 + i,
  bytes: 1000 * i,
  outcome: 'accepted-released',
});

describe('association audit', () => {
  it('records associations with calling AE, host, instances, bytes and outcome, newest first', async () => {
    const config = await testConfig('audit');
    configs.push(config);
    const redis = createRedis(config.redis.url, 'command', logger);
    try {
      const audit = new AssociationAudit({ config, logger, redis });
      const now = Date.now();
      await audit.associationEnded(record(1, now - 2000));
      await audit.associationEnded({ ...record(2, now - 1000), outcome: 'rejected:calling-ae-not-recognized', instances: 0, bytes: 0 });
      const list = await audit.listAssociations(10);
      expect(list).toEqual([
        { ...record(2, now - 1000), outcome: 'rejected:calling-ae-not-recognized', instances: 0, bytes: 0 },
        record(1, now - 2000),
      ]);
      expect(await audit.listAssociations(1)).toHaveLength(1);
    } finally {
      await closeRedis(redis);
    }
  });

  it('trims entries older than the retention and beyond maxEntries', async () => {
    const config = await testConfig('audit-trim', { audit: { retentionDays: 1, maxEntries: 5 } });
    configs.push(config);
    const redis = createRedis(config.redis.url, 'command', logger);
    try {
      const audit = new AssociationAudit({ config, logger, redis });
      const now = Date.now();
      await audit.associationEnded(record(0, now - 2 * 86_400_000)); // two days old: beyond retention
      expect(await audit.listAssociations(100)).toEqual([]);
      for (let i = 1; i <= 8; i++) await audit.associationEnded(record(i, now - 10_000 + i));
      const list = await audit.listAssociations(100);
      expect(list.map((r) => r.id)).toEqual(['assoc-8', 'assoc-7', 'assoc-6', 'assoc-5', 'assoc-4']);
    } finally {
      await closeRedis(redis);
    }
  });

  it('never throws when Redis is unreachable', async () => {
    const config = await testConfig('audit-down', { redis: { url: `redis://127.0.0.1:${await freePort()}` } });
    configs.push(config);
    const redis = createRedis(config.redis.url, 'command', logger);
    try {
      const audit = new AssociationAudit({ config, logger, redis });
      const t0 = Date.now();
      await expect(audit.associationEnded(record(1, t0))).resolves.toBeUndefined();
      expect(Date.now() - t0).toBeLessThan(3_500);
    } finally {
      await closeRedis(redis);
    }
  });
});
