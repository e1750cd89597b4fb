/**
 * The masks of one analysed HU slice on the SOURCE pixel grid, run-length encoded, for the DICOM Segmentation:
 * which lung (image side) each pixel belongs to, and whether it is ground glass or consolidation.
 *
 * The lung analysis runs on a coarser working grid (model metadata `lungs.workMm`); a source pixel takes the
 * value of the working pixel under its centre (nearest neighbour), the rule maskAttention in regions.ts uses.
 * Over a lung or an opacity the source-grid area then equals the working-grid area the SR's volumes are
 * summed from, up to the rounding at the region's edge.
 *
 * Runs: flat [value, length, value, length, …] in row-major order, summing to width × height; small enough to
 * keep for every slice of a series (one pair per change along a row) and to post between threads.
 */
import type { SliceAnalysis } from './opacity.js';

/** Lung label values: image sides as stored (the patient's side follows from ImageOrientationPatient). */
export const LUNG_IMAGE_LEFT = 1;
export const LUNG_IMAGE_RIGHT = 2;
/** Lesion label values: consolidation is the high-opacity part; ground glass is the rest of the opacity. */
export const LESION_GROUND_GLASS = 1;
export const LESION_CONSOLIDATION = 2;

export interface SliceLabelRuns {
  /** Source image size (Columns × Rows). */
  width: number;
  height: number;
  /** 0 not lung, LUNG_IMAGE_LEFT, LUNG_IMAGE_RIGHT. */
  lung: Uint32Array;
  /** 0 none, LESION_GROUND_GLASS, LESION_CONSOLIDATION. */
  lesion: Uint32Array;
}

class RunWriter {
  private buf = new Uint32Array(256);
  private n = 0;
  private value = -1;
  private length = 0;

  push(v: number, count = 1): void {
    if (v === this.value) {
      this.length += count;
      return;
    }
    this.flush();
    this.value = v;
    this.length = count;
  }

  private flush(): void {
    if (this.length === 0) return;
    if (this.n + 2 > this.buf.length) {
      const b = new Uint32Array(this.buf.length * 2);
      b.set(this.buf);
      this.buf = b;
    }
    this.buf[this.n++] = this.value;
    this.buf[this.n++] = this.length;
  }

  done(): Uint32Array {
    this.flush();
    this.length = 0;
    return this.buf.slice(0, this.n);
  }
}

/**
 * Lung and lesion labels of `a` (working grid) on a `width` × `height` source grid.
 *
 * The nearest-neighbour maps are monotonic, so the source columns under one working column are contiguous and
 * consecutive source rows under one working row are the same row of labels: each working row is turned into
 * runs once (one step per working column, weighted by its number of source columns) and replayed for every
 * source row under it. Same runs as the pixel-by-pixel definition (the writers merge equal neighbours either
 * way); tests/model/seg-masks.test.ts keeps the two equal on real slices.
 */
export function sliceLabelRuns(a: SliceAnalysis, width: number, height: number): SliceLabelRuns {
  const { lung, side } = a.segmentation;
  const { opacity, high } = a.masks;
  const ww = lung.width;
  const wh = lung.height;
  const perCol = new Int32Array(ww);
  for (let x = 0; x < width; x++) {
    const c = Math.min(ww - 1, Math.floor(((x + 0.5) * ww) / width));
    perCol[c] = (perCol[c] as number) + 1;
  }
  const lungRow = new Uint32Array(2 * ww);
  const lesionRow = new Uint32Array(2 * ww);
  let nLung = 0;
  let nLesion = 0;
  const lungRuns = new RunWriter();
  const lesionRuns = new RunWriter();
  let prev = -1;
  for (let y = 0; y < height; y++) {
    const r = Math.min(wh - 1, Math.floor(((y + 0.5) * wh) / height));
    if (r !== prev) {
      prev = r;
      nLung = 0;
      nLesion = 0;
      const row = r * ww;
      for (let c = 0; c < ww; c++) {
        const n = perCol[c] as number;
        if (n === 0) continue;
        const i = row + c;
        let lv = 0;
        let sv = 0;
        if (lung.data[i]) {
          lv = side[i] === 1 ? LUNG_IMAGE_RIGHT : LUNG_IMAGE_LEFT;
          sv = high.data[i] ? LESION_CONSOLIDATION : opacity.data[i] ? LESION_GROUND_GLASS : 0;
        }
        if (nLung > 0 && lungRow[nLung - 2] === lv) lungRow[nLung - 1] = (lungRow[nLung - 1] as number) + n;
        else {
          lungRow[nLung++] = lv;
          lungRow[nLung++] = n;
        }
        if (nLesion > 0 && lesionRow[nLesion - 2] === sv) lesionRow[nLesion - 1] = (lesionRow[nLesion - 1] as number) + n;
        else {
          lesionRow[nLesion++] = sv;
          lesionRow[nLesion++] = n;
        }
      }
    }
    for (let k = 0; k < nLung; k += 2) lungRuns.push(lungRow[k] as number, lungRow[k + 1] as number);
    for (let k = 0; k < nLesion; k += 2) lesionRuns.push(lesionRow[k] as number, lesionRow[k + 1] as number);
  }
  return { width, height, lung: lungRuns.done(), lesion: lesionRuns.done() };
}

/** Pixels (row-major indices) whose label is `value`, as [start, length] runs; sums their count too. */
export function runsOf(runs: Uint32Array, value: number): { starts: number[]; lengths: number[]; count: number } {
  const starts: number[] = [];
  const lengths: number[] = [];
  let p = 0;
  let count = 0;
  for (let k = 0; k + 1 < runs.length; k += 2) {
    const len = runs[k + 1] as number;
    if (runs[k] === value) {
      starts.push(p);
      lengths.push(len);
      count += len;
    }
    p += len;
  }
  return { starts, lengths, count };
}

/** Number of pixels labelled `value`. */
export function countLabel(runs: Uint32Array, value: number): number {
  let c = 0;
  for (let k = 0; k + 1 < runs.length; k += 2) if (runs[k] === value) c += runs[k + 1] as number;
  return c;
}

/** The labels of a run set, one byte per pixel (row-major, width × height). */
export function expandRuns(runs: Uint32Array, n: number): Uint8Array {
  const out = new Uint8Array(n);
  let p = 0;
  for (let k = 0; k + 1 < runs.length && p < n; k += 2) {
    const v = runs[k] as number;
    const len = Math.min(runs[k + 1] as number, n - p);
    if (v !== 0) out.fill(v, p, p + len);
    p += len;
  }
  return out;
}
