/**
 * PNG/JPEG slices decode (sharp) to the same 8-bit gray PIL's convert('L') gives, which is what
 * training/preprocess.py load_display() feeds the model in Python.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeImageFile, sniffImage } from '../../src/scoring/image-file.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const covidCt = path.resolve(repoRoot, '..', 'shared', 'data', 'covid-ct');
const tmp = mkdtempSync(path.join(tmpdir(), 'mlsam-img-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function pick(re: RegExp): string {
  const row = readFileSync(path.join(covidCt, 'split.csv'), 'utf8')
    .split('\n')
    .find((l) => re.test(l)) as string;
  return path.join(covidCt, row.split(',')[0] as string);
}

function pilGray(file: string): Uint8Array {
  const out = path.join(tmp, `${path.basename(file)}.u8`);
  execFileSync('/usr/bin/python3', [
    '-c',
    [
      'import sys, numpy as np',
      'from PIL import Image',
      'im = Image.open(sys.argv[1])',
      "np.asarray(im.convert('L'), dtype=np.uint8).tofile(sys.argv[2])",
      'print(im.size[0], im.size[1])',
    ].join('\n'),
    file,
    out,
  ]);
  return new Uint8Array(readFileSync(out));
}

describe('decodeImageFile', () => {
  for (const [label, re, tol] of [
    ['PNG', /^CT_COVID\/.*\.png,1,test$/, 0],
    ['JPEG', /^CT_NonCOVID\/.*\.jpg,0,test$/, 2],
  ] as const) {
    it(`${label} equals PIL convert('L') (max diff ${tol})`, async () => {
      const file = pick(re);
      const img = await decodeImageFile(file);
      const ref = pilGray(file);
      expect(img.kind).toBe('display');
      expect(img.data.length).toBe(ref.length);
      let maxDiff = 0;
      for (let i = 0; i < ref.length; i++) maxDiff = Math.max(maxDiff, Math.abs((img.data[i] as number) - (ref[i] as number)));
      expect(maxDiff).toBeLessThanOrEqual(tol);
    });
  }

  it('colour is reduced to ITU-R 601 luma like PIL', async () => {
    const file = path.join(tmp, 'rgb.png');
    execFileSync('/usr/bin/python3', [
      '-c',
      [
        'import sys, numpy as np',
        'from PIL import Image',
        'rng = np.random.RandomState(7)',
        "Image.fromarray(rng.randint(0, 256, (37, 53, 3), dtype=np.uint8), 'RGB').save(sys.argv[1])",
      ].join('\n'),
      file,
    ]);
    const img = await decodeImageFile(file);
    const ref = pilGray(file);
    expect([img.width, img.height]).toEqual([53, 37]);
    expect(Array.from(img.data)).toEqual(Array.from(ref));
  });

  it('sniffs PNG and JPEG by content, and refuses a broken image with a reason', async () => {
    expect(sniffImage(readFileSync(pick(/\.png,/)).subarray(0, 16))).toBe('png');
    expect(sniffImage(readFileSync(pick(/\.jpg,/)).subarray(0, 16))).toBe('jpeg');
    expect(sniffImage(Buffer.from('hello world, not an image'))).toBeNull();
    const broken = path.join(tmp, 'broken.png');
    writeFileSync(broken, readFileSync(pick(/\.png,/)).subarray(0, 200));
    await expect(decodeImageFile(broken)).rejects.toThrow(/cannot decode image/);
  });
});
