import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { instancesHash, inferenceJobId, inferenceJobSchema } from '../../src/queue/jobs.js';
import { routeSeries, type RoutableInstance } from '../../src/queue/routing.js';

const rules = loadConfig({ env: {} }).series.routing;
const slices = (n: number, over: Partial<RoutableInstance> = {}): RoutableInstance[] =>
  Array.from({ length: n }, () => ({ modality: 'CT', bodyPartExamined: 'CHEST', imageType: ['ORIGINAL', 'PRIMARY', 'AXIAL'], ...over }));

describe('routing rules', () => {
  it('scores a chest CT series with enough slices', () => {
    expect(routeSeries(slices(rules.minSlices), rules)).toEqual({
      route: 'score',
      scorableInstances: rules.minSlices,
      excludedInstances: 0,
    });
  });

  it('accepts a missing body part because "" is in the default list', () => {
    expect(routeSeries(slices(30, { bodyPartExamined: '' }), rules).route).toBe('score');
    expect(routeSeries(slices(30, { bodyPartExamined: 'lung' }), rules).route).toBe('score');
  });

  it('ignores other modalities and names them', () => {
    const d = routeSeries(slices(30, { modality: 'MR' }), rules);
    expect(d).toMatchObject({ route: 'ignore', code: 'modality' });
    expect(d.route === 'ignore' && d.reason).toContain('MR');
  });

  it('ignores other body parts, and an empty body part when "" is not allowed', () => {
    expect(routeSeries(slices(30, { bodyPartExamined: 'HEAD' }), rules)).toMatchObject({ route: 'ignore', code: 'body-part' });
    const strict = { ...rules, bodyParts: ['CHEST'] };
    const d = routeSeries(slices(30, { bodyPartExamined: '' }), strict);
    expect(d).toMatchObject({ route: 'ignore', code: 'body-part' });
    expect(d.route === 'ignore' && d.reason).toContain('""');
  });

  it('does not count localizers as slices', () => {
    const scout = slices(2, { imageType: ['ORIGINAL', 'PRIMARY', 'LOCALIZER'] });
    expect(routeSeries(scout, rules)).toMatchObject({ route: 'ignore', code: 'only-excluded-image-types', excludedInstances: 2 });
    const mixed = [...slices(rules.minSlices - 1), ...scout];
    expect(routeSeries(mixed, rules)).toMatchObject({
      route: 'ignore',
      code: 'too-few-slices',
      scorableInstances: rules.minSlices - 1,
      excludedInstances: 2,
    });
    expect(routeSeries([...slices(rules.minSlices), ...scout], rules)).toMatchObject({ route: 'score', excludedInstances: 2 });
  });

  it('ignores series below the minimum slice count and an empty series', () => {
    expect(routeSeries(slices(3), { ...rules, minSlices: 4 })).toMatchObject({ route: 'ignore', code: 'too-few-slices' });
    expect(routeSeries([], rules)).toMatchObject({ route: 'ignore', code: 'empty' });
  });
});

describe('inference job payload', () => {
  it('hashes the sorted, de-duplicated SOP Instance UIDs', () => {
    const a = instancesHash(['1.2.3.10', '1.2.3.9', '1.2.3.9']);
    expect(a).toBe(instancesHash(['1.2.3.9', '1.2.3.10']));
    expect(a).toMatch(/^[0-9a-f]{64}$/);
    expect(a).not.toBe(instancesHash(['1.2.3.9']));
  });

  it('derives one job id per (series, content) without ":"', () => {
    const id = inferenceJobId('1.2.3', instancesHash(['1.2.3.4']));
    expect(id).not.toContain(':');
    expect(id).toBe(inferenceJobId('1.2.3', instancesHash(['1.2.3.4'])));
    expect(id).not.toBe(inferenceJobId('1.2.3', instancesHash(['1.2.3.4', '1.2.3.5'])));
  });

  it('validates payloads', () => {
    const ok = {
      studyInstanceUid: '1.2.3',
      seriesInstanceUid: '1.2.3.4',
      seriesDir: '/spool/1.2.3/1.2.3.4',
      instanceCount: 2,
      instancesHash: instancesHash(['1', '2']),
      callingAeTitle: 'PACS',
      firstReceivedAt: new Date(0).toISOString(),
      lastReceivedAt: new Date().toISOString(),
      enqueuedBy: 'tracker',
    };
    expect(inferenceJobSchema.parse(ok)).toEqual(ok);
    expect(inferenceJobSchema.safeParse({ ...ok, seriesDir: 'relative/dir' }).success).toBe(false);
    expect(inferenceJobSchema.safeParse({ ...ok, instanceCount: 0 }).success).toBe(false);
    expect(inferenceJobSchema.safeParse({ ...ok, enqueuedBy: 'someone' }).success).toBe(false);
    expect(inferenceJobSchema.safeParse({ ...ok, seriesInstanceUid: '1.2.x' }).success).toBe(false);
  });
});
