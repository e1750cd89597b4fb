import { afterAll, describe, expect, it } from 'vitest';
import { closeRedis, createRedis } from '../../src/stores/redis.js';
import { DURATION_BUCKETS, Increments, Stats } from '../../src/stores/stats.js';
import { dropPrefix, freePort, uniquePrefix, waitFor } from '../queue/helpers.js';

const url = 'redis://127.0.0.1:6379';
const prefix = uniquePrefix('stats');
afterAll(() => dropPrefix(url, prefix));

describe('shared stats (Redis)', () => {
  it('counts, observes into cumulative buckets, and counts an event once however often it is reported', async () => {
    const redis = createRedis(url, 'command');
    await waitFor(async () => redis.status === 'ready', 5_000, 'redis');
    try {
      const a = new Stats(redis, prefix);
      const b = new Stats(redis, prefix); // a second process, same Redis
      a.incr('instances_received', 5, { calling_ae: 'PACS' });
      b.incr('instances_received', 2, { calling_ae: 'PACS' });
      a.observe('stage_duration_seconds', 0.3, { stage: 'infer' });
      b.observe('stage_duration_seconds', 7, { stage: 'infer' });
      b.observe('stage_duration_seconds', 5000, { stage: 'infer' });
      const ev = new Increments().counter('series_completed', 1, { model: 'm', version: '1' });
      expect(await a.applyOnce('result:1', ev)).toBe('counted');
      expect(await b.applyOnce('result:1', ev)).toBe('seen');
      expect(await a.applyOnce('result:2', ev)).toBe('counted');
      const snap = await waitFor(
        async () => {
          const s = await a.snapshot();
          return s.counters.find((c) => c.name === 'instances_received')?.value === 7 ? s : undefined;
        },
        3_000,
        'counters',
      );
      expect(snap.counters.find((c) => c.name === 'series_completed')).toEqual({
        name: 'series_completed',
        labels: { model: 'm', version: '1' },
        value: 2,
      });
      const h = snap.histograms.stage_duration_seconds![0]!;
      expect(h.labels).toEqual({ stage: 'infer' });
      expect(h.count).toBe(3);
      expect(h.sum).toBeCloseTo(5007.3);
      const at = (le: number): number => h.buckets.find((x) => x.le === le)!.count;
      expect(at(0.25)).toBe(0);
      expect(at(0.5)).toBe(1);
      expect(at(10)).toBe(2);
      expect(at(DURATION_BUCKETS[DURATION_BUCKETS.length - 1]!)).toBe(2);
      expect(at(Infinity)).toBe(3);
    } finally {
      await closeRedis(redis);
    }
  });

  it('never throws into the caller when Redis is down', async () => {
    const dead = createRedis(`redis://127.0.0.1:${await freePort()}`, 'command');
    try {
      const s = new Stats(dead, prefix);
      expect(() => s.incr('associations', 1)).not.toThrow();
      expect(() => s.observe('stage_duration_seconds', 1)).not.toThrow();
      expect(() => s.gauge('x', 1)).not.toThrow();
      expect(await s.applyOnce('e', new Increments().counter('associations'))).toBe('error');
    } finally {
      await closeRedis(dead);
    }
  });
});
