/**
 * The Segmentation's label runs on the source grid (src/model/seg-masks.ts sliceLabelRuns: one pass per working
 * row, replayed for the source rows under it) equal the pixel-by-pixel definition below, on real slices of the
 * shared COVID-CT-MD series and on random masks whose working grid is coarser, finer or as fine as the source.
 */
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { decodeDicomFile } from '../../src/dicom/decode/index.js';
import { loadModelMetadata, type ModelMetadata } from '../../src/model/metadata.js';
import type { Mask } from '../../src/model/morphology.js';
import type { SliceAnalysis } from '../../src/model/opacity.js';
import {
  countLabel,
  LESION_CONSOLIDATION,
  LESION_GROUND_GLASS,
  LUNG_IMAGE_LEFT,
  LUNG_IMAGE_RIGHT,
  sliceLabelRuns,
} from '../../src/model/seg-masks.js';
import { analyseDecoded } from '../../src/scoring/slice-preparer.js';
import { CTMD } from '../helpers/ctmd.js';
import { SHIPPED_METADATA } from '../helpers/model.js';

/** The definition: every source pixel takes the labels of the working pixel under its centre; equal neighbours merge. */
function plainLabelRuns(a: SliceAnalysis, width: number, height: number): { lung: number[]; lesion: number[] } {
  const { lung, side } = a.segmentation;
  const { opacity, high } = a.masks;
  const ww = lung.width;
  const wh = lung.height;
  const lungRuns: number[] = [];
  const lesionRuns: number[] = [];
  const push = (runs: number[], v: number): void => {
    if (runs.length && runs[runs.length - 2] === v) runs[runs.length - 1] = (runs[runs.length - 1] as number) + 1;
    else runs.push(v, 1);
  };
  for (let y = 0; y < height; y++) {
    const r = Math.min(wh - 1, Math.floor(((y + 0.5) * wh) / height));
    for (let x = 0; x < width; x++) {
      const i = r * ww + Math.min(ww - 1, Math.floor(((x + 0.5) * ww) / width));
      if (!lung.data[i]) {
        push(lungRuns, 0);
        push(lesionRuns, 0);
      } else {
        push(lungRuns, side[i] === 1 ? LUNG_IMAGE_RIGHT : LUNG_IMAGE_LEFT);
        push(lesionRuns, high.data[i] ? LESION_CONSOLIDATION : opacity.data[i] ? LESION_GROUND_GLASS : 0);
      }
    }
  }
  return { lung: lungRuns, lesion: lesionRuns };
}

function rng(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s / 2147483648;
  };
}

/** Random lung / side / opacity / high masks on a ww × wh working grid (blobs, so runs are long and short). */
function randomAnalysis(ww: number, wh: number, seed: number): SliceAnalysis {
  const rnd = rng(seed);
  const mask = (p: number, within?: Uint8Array): Mask => {
    const data = new Uint8Array(ww * wh);
    for (let k = 0; k < 5; k++) {
      const cx = rnd() * ww;
      const cy = rnd() * wh;
      const rr = 1 + rnd() * (ww / 3);
      for (let y = 0; y < wh; y++) for (let x = 0; x < ww; x++) if ((x - cx) ** 2 + (y - cy) ** 2 <= rr * rr) data[y * ww + x] = 1;
    }
    for (let i = 0; i < data.length; i++) {
      if (rnd() < p) data[i] = 1 - (data[i] as number);
      if (within && !within[i]) data[i] = 0;
    }
    return { width: ww, height: wh, data };
  };
  const lung = mask(0.05);
  const opacity = mask(0.1, lung.data);
  const high = mask(0.1, opacity.data);
  const side = new Int8Array(ww * wh);
  for (let i = 0; i < side.length; i++) side[i] = lung.data[i] ? (i % ww < ww / 2 ? 1 : 0) : -1;
  return { segmentation: { lung, side }, masks: { opacity, high } } as unknown as SliceAnalysis;
}

describe('sliceLabelRuns', () => {
  it('equals the pixel-by-pixel labels on random masks, working grid coarser, finer or equal', () => {
    const cases: [number, number, number, number][] = [
      [286, 286, 512, 512],
      [300, 251, 512, 512],
      [64, 48, 97, 131],
      [128, 128, 128, 128],
      [200, 180, 100, 90],
      [7, 5, 512, 3],
    ];
    for (const [k, [ww, wh, w, h]] of cases.entries()) {
      const a = randomAnalysis(ww, wh, 11 + k);
      const got = sliceLabelRuns(a, w, h);
      const want = plainLabelRuns(a, w, h);
      expect([...got.lung], `case ${k} lung`).toEqual(want.lung);
      expect([...got.lesion], `case ${k} lesion`).toEqual(want.lesion);
      expect(got.width).toBe(w);
      expect(got.height).toBe(h);
    }
  });

  describe('on the shared COVID-CT-MD series', () => {
    let meta: ModelMetadata;
    beforeAll(async () => {
      meta = (await loadModelMetadata(SHIPPED_METADATA)).metadata;
    });

    it('equals the pixel-by-pixel labels slice by slice (every 8th slice of each series)', async () => {
      let lesionPixels = 0;
      for (const name of ['P001', 'cap001', 'normal001']) {
        const dir = path.join(CTMD, name);
        const files = readdirSync(dir).sort();
        for (let i = 0; i < files.length; i += 8) {
          const d = await decodeDicomFile(path.join(dir, files[i]!));
          const a = analyseDecoded(d.image, { preprocessing: meta.preprocessing, quantification: meta.quantification! })!;
          const got = sliceLabelRuns(a, d.image.width, d.image.height);
          const want = plainLabelRuns(a, d.image.width, d.image.height);
          expect([...got.lung], `${name} ${files[i]} lung`).toEqual(want.lung);
          expect([...got.lesion], `${name} ${files[i]} lesion`).toEqual(want.lesion);
          lesionPixels += countLabel(got.lesion, LESION_GROUND_GLASS) + countLabel(got.lesion, LESION_CONSOLIDATION);
        }
      }
      // The slices compared hold opacity (P001 is a COVID-19 pneumonia), not only empty masks.
      expect(lesionPixels).toBeGreaterThan(1000);
    }, 120_000);
  });
});
