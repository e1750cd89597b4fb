/**
 * Discovery (src/scoring/discover.ts) reads many files at once; what it returns must not depend on which read
 * finishes first: files, inputs and skipped entries in name order, folders walked depth first, links followed.
 */
import { mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeSyntheticSeries } from '../../src/dicom/testing/synthetic-series.js';
import { discoverInputs } from '../../src/scoring/discover.js';
import type { SkippedFile } from '../../src/scoring/types.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'mlsam-discover-'));
  // 40 small DICOM slices, a sub-folder with 3 more, text files between them, an empty file, a link to a slice
  await writeSyntheticSeries({ dir: path.join(dir, 'a'), count: 40, rows: 16, columns: 16 });
  await writeSyntheticSeries({ dir: path.join(dir, 'a', 'sub'), count: 3, rows: 16, columns: 16 });
  for (let i = 0; i < 25; i++) await writeFile(path.join(dir, 'a', `note-${String(i).padStart(2, '0')}.txt`), `not an image ${i}\n`);
  await writeFile(path.join(dir, 'a', 'empty.dcm'), '');
  await symlink(path.join(dir, 'a', 'sub'), path.join(dir, 'a', 'zz-link'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('discoverInputs', () => {
  it('returns files, inputs and skipped files in name order, whatever order the reads finish in', async () => {
    const runs: { files: string[]; inputs: string[]; skipped: SkippedFile[] }[] = [];
    for (let r = 0; r < 3; r++) {
      const skipped: SkippedFile[] = [];
      const { files, inputs } = await discoverInputs([path.join(dir, 'a')], skipped);
      runs.push({ files, inputs: inputs.map((i) => i.file), skipped });
    }
    const first = runs[0]!;
    const names = first.files.map((f) => path.relative(dir, f));
    // depth first, name order (sub/ sorts after the files it follows by name, the link after everything)
    const sorted = [...names].sort((a, b) => {
      const key = (s: string) => s.replace(/^a\/zz-link\//, 'a/~link/').replace(/^a\/sub\//, 'a/sub~/');
      return key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0;
    });
    expect(names).toEqual(sorted);
    expect(first.files).toHaveLength(40 + 3 + 25 + 1 + 3);
    // inputs: the 46 DICOM files (the link's 3 again) in file order; skipped: the 25 notes and the empty file, in order
    expect(first.inputs).toEqual(first.files.filter((f) => f.endsWith('.dcm') && !f.endsWith('empty.dcm')));
    expect(first.inputs).toHaveLength(46);
    expect(first.skipped.map((s) => path.basename(s.file))).toEqual([
      'empty.dcm',
      ...Array.from({ length: 25 }, (_, i) => `note-${String(i).padStart(2, '0')}.txt`),
    ]);
    expect(first.skipped.every((s) => s.reason.length > 0)).toBe(true);
    for (const r of runs.slice(1)) expect(r).toEqual(first);
  });

  it('reports a missing path and goes on with the others', async () => {
    const skipped: SkippedFile[] = [];
    const { inputs } = await discoverInputs([path.join(dir, 'nope'), path.join(dir, 'a', 'sub')], skipped);
    expect(inputs).toHaveLength(3);
    expect(skipped).toEqual([{ file: path.join(dir, 'nope'), reason: expect.stringMatching(/^cannot read: /) }]);
  });
});
