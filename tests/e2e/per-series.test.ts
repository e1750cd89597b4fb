/**
 * `results.perSeries: true` against a real `mlsam serve` daemon and DCMTK: two chest CT phantom
 * series of ONE study (src/demo/phantom.ts, different lesions) sent with `storescu` in one
 * association are each scored as a series — two inference jobs with series job ids, no study job —
 * and each gets its own result set: its own SR (referencing its own series, not the other) and KOS,
 * in result series of its own. No series gets a study role: there is no selection in this mode.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ResultRecord } from '../../src/contracts/result-record.js';
import { freePort } from '../../src/demo/child-process.js';
import { writePhantomSeries, type PhantomSeries } from '../../src/demo/phantom.js';
import { run } from '../helpers/dcmtk.js';
import { ServeNode } from '../helpers/serve-node.js';
import { waitFor } from '../queue/helpers.js';

let serve: ServeNode;
let nodePort: number;
let a: PhantomSeries;
let b: PhantomSeries;

beforeAll(async () => {
  serve = await ServeNode.open('e2e-perseries');
  nodePort = await freePort();
  const studyInstanceUid = '1.2.826.0.1.3680043.9.7777.29.1';
  a = await writePhantomSeries({ dir: join(serve.work, 'a'), slices: 30, size: 256, seed: 1, studyInstanceUid });
  b = await writePhantomSeries({ dir: join(serve.work, 'b'), slices: 30, size: 256, seed: 2, studyInstanceUid });
  await serve.start({
    dicom: { aeTitle: 'MLSAM', host: '127.0.0.1', port: nodePort },
    series: { quietPeriodSeconds: 2, routing: { minSlices: 10 } },
    results: { perSeries: true },
    http: { host: '127.0.0.1', port: 0 },
  });
}, 180_000);

afterAll(async () => {
  await serve?.close();
});

/** Every Series Instance UID in an SR (its own, and those of the evidence it references), as dcmdump prints them. */
async function srReferencedSeries(path: string): Promise<string[]> {
  const r = await run('dcmdump', ['+P', '0020,000e', path]);
  if (r.code !== 0) throw new Error(`dcmdump ${path}: ${r.stderr}`);
  return [...r.stdout.matchAll(/\(0020,000e\) UI \[([0-9.]+)\]/g)].map((m) => m[1]!);
}

describe('results.perSeries: true', () => {
  it('gives two series of one study a result set each, with its own SR', async () => {
    const sent = await run(
      'storescu',
      ['-aet', 'PACS', '-aec', 'MLSAM', '127.0.0.1', String(nodePort), ...[a, b].flatMap((s) => s.instances.map((i) => i.path))],
      {
        timeoutMs: 120_000,
      },
    );
    expect(sent.code, sent.stderr).toBe(0);
    const recs = await waitFor(
      async () => {
        serve.checkRunning();
        const both = await Promise.all([a, b].map((s) => serve.record(s.seriesInstanceUid)));
        return both.every((r) => r?.outputs?.length) ? (both as ResultRecord[]) : undefined;
      },
      300_000,
      'a result set for each series',
      500,
    );
    for (const [rec, s] of recs.map((r, i) => [r, [a, b][i]!] as const)) {
      expect(rec.status, rec.reason).toBe('scored');
      expect(rec.seriesInstanceUid).toBe(s.seriesInstanceUid);
      expect(rec.study).toBeUndefined();
      expect(rec.jobId).toMatch(new RegExp(`^series-${s.seriesInstanceUid.replaceAll('.', '\\.')}-[0-9a-f]{64}$`));
      expect(rec.outputs!.filter((o) => o.kind === 'sr')).toHaveLength(1);
      expect(rec.outputs!.filter((o) => o.kind === 'kos')).toHaveLength(1);
    }
    const [srA, srB] = recs.map((r) => r.outputs!.find((o) => o.kind === 'sr')!);
    expect(srA!.sopInstanceUid).not.toBe(srB!.sopInstanceUid);
    expect(srA!.seriesInstanceUid).not.toBe(srB!.seriesInstanceUid);
    // Each SR is about its own series only.
    const refsA = await srReferencedSeries(srA!.path);
    const refsB = await srReferencedSeries(srB!.path);
    expect(refsA).toContain(a.seriesInstanceUid);
    expect(refsA).not.toContain(b.seriesInstanceUid);
    expect(refsB).toContain(b.seriesInstanceUid);
    expect(refsB).not.toContain(a.seriesInstanceUid);
    // Series jobs only, and no study selection.
    const jobs = await serve.redis.keys(`${serve.prefix}:inference:*`);
    expect(jobs.filter((k) => /:inference:study-/.test(k))).toEqual([]);
    expect(jobs.filter((k) => /:inference:series-[0-9.]+-[0-9a-f]{64}$/.test(k))).toHaveLength(2);
    for (const s of [a, b]) expect(await serve.redis.hget(serve.keys.series(s.seriesInstanceUid), 'role')).toBeNull();
    expect(await serve.redis.hget(serve.keys.study(a.studyInstanceUid), 'chosenSeries')).toBeNull();
  }, 400_000);
});
