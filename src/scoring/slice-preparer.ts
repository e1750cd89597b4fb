/**
 * Slice preparation for scoring: a file in, the model's input out. Reads and decodes the file,
 * analyses the lungs and opacity (model/opacity.ts, HU slices) and runs the model's tensor
 * preprocessing (model/preprocess.ts: window, crop, resize, normalise) into the batch buffer, in
 * this thread or in a small pool of worker threads (slice-preparer-worker.ts). scoreFiles() prepares batch b+1 while ONNX Runtime runs batch b; with a pool,
 * decoding also runs in parallel across cores. Both paths run the same prepareSlice(), so the
 * tensors (and the probabilities) are identical whichever is used.
 */
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { DecodeError, type DecodeErrorCode, decodeDicomImageFile } from '../dicom/decode/index.js';
import type { Logger } from '../log.js';
import type { Mask } from '../model/morphology.js';
import { analyseSlice, type QuantificationSpec, type RegionAreas, type SliceAnalysis } from '../model/opacity.js';
import { slicePattern, type SlicePattern } from '../model/pattern.js';
import { preprocessInto, sliceSize, type Crop, type Preprocessing, type SliceImage } from '../model/preprocess.js';
import { sliceLabelRuns, type SliceLabelRuns } from '../model/seg-masks.js';
import { decodeImageFile, type ImageFormat } from './image-file.js';

export type SliceSource = 'dicom' | ImageFormat;

/** What a slice is prepared with: the model's preprocessing and, for HU slices, its opacity quantification. */
export interface PrepareSpec {
  preprocessing: Preprocessing;
  /** Absent: no lung analysis (a model without it, or not wanted). */
  quantification?: QuantificationSpec;
  /** Keep each HU slice's lung and lesion labels on the source grid (run-length encoded) for the DICOM Segmentation. */
  labels?: boolean;
  /**
   * The key-slice pass: return the working-grid lung and opacity masks (`detail`) the attention is restricted to
   * and the finding outlined on; no distribution summary.
   */
  keyDetail?: boolean;
}

/** What the key-slice pass needs of a slice's analysis (PrepareSpec.keyDetail). */
export interface KeyDetailMasks {
  lung: Mask;
  opacity: Mask;
  /** mm per working pixel: [row, column]. */
  pxMm: [number, number];
}

/** Lung and opacity areas of one HU slice (image left / right as stored, not yet patient sides). */
export interface SliceLungs {
  total: RegionAreas;
  imageLeft: RegionAreas;
  imageRight: RegionAreas;
}

export interface PreparedSlice {
  /** Source image size (Columns × Rows). */
  width: number;
  height: number;
  /** Crop box the preprocessing used (inclusive) and which rule made it. */
  cropBox: Crop['box'];
  cropUsed: Crop['used'];
  /** HU slices with pixel spacing, when the spec has a quantification. */
  lungs?: SliceLungs;
  /** How the opacity is distributed on this slice (src/model/pattern.ts), with `lungs`. */
  pattern?: SlicePattern;
  /** HU slices analysed, when the spec asks for labels: lung side and lesion per source pixel. */
  labels?: SliceLabelRuns;
  /** Read + decode to HU / gray. */
  decodeMs: number;
  /** Lung segmentation and opacity masks (HU slices). */
  lungMs: number;
  /** Crop, resize, normalise. */
  preprocessMs: number;
  /** The distribution summary (`pattern`), with `lungs`. */
  patternMs?: number;
  /** HU slices analysed, when the spec asks for keyDetail. */
  detail?: KeyDetailMasks;
}

/** Prepares one slice into `out` at `offset` (sliceSize(spec.preprocessing) floats). */
export interface SlicePreparer {
  /** Worker threads used (0: this thread). */
  readonly threads: number;
  prepare(file: string, source: SliceSource, spec: PrepareSpec, out: Float32Array, offset: number): Promise<PreparedSlice>;
  close(): Promise<void>;
}

/** `huInto`: where a DICOM slice's modality values go when it is large enough (a thread's reused buffer). */
export async function decodeSlice(file: string, source: SliceSource, huInto?: Float32Array): Promise<SliceImage> {
  if (source === 'dicom') return decodeDicomImageFile(file, huInto ? { into: huInto } : {});
  return decodeImageFile(file);
}

/** The lung analysis of a decoded slice, when it has HU, a pixel spacing and the spec asks for it. */
export function analyseDecoded(img: SliceImage, spec: PrepareSpec): SliceAnalysis | undefined {
  const lungs = spec.preprocessing.lungs;
  if (img.kind !== 'hu' || !img.pixelSpacing || !spec.quantification || !lungs) return undefined;
  return analyseSlice(img.data, img.width, img.height, img.pixelSpacing, lungs, spec.quantification, img.sliceThicknessMm);
}

export interface FullPreparation {
  image: SliceImage;
  analysis?: SliceAnalysis;
  crop: Crop;
  decodeMs: number;
  lungMs: number;
  preprocessMs: number;
}

/**
 * Decode + analyse + preprocess, keeping the image and masks. `huInto`: the decoded values go there when it is
 * large enough; the image then lives in it, so only a caller that is done with the image before its next call
 * may pass one (a prepare thread).
 */
export async function prepareFull(
  file: string,
  source: SliceSource,
  spec: PrepareSpec,
  out: Float32Array,
  offset: number,
  huInto?: Float32Array,
): Promise<FullPreparation> {
  const t0 = performance.now();
  const image = await decodeSlice(file, source, huInto);
  const t1 = performance.now();
  const analysis = analyseDecoded(image, spec);
  const t2 = performance.now();
  const crop = preprocessInto(image, spec.preprocessing, out, offset, analysis?.segmentation);
  const t3 = performance.now();
  return { image, ...(analysis ? { analysis } : {}), crop, decodeMs: t1 - t0, lungMs: t2 - t1, preprocessMs: t3 - t2 };
}

/** Decode + analyse + preprocess one slice: the one implementation both preparers run. */
export async function prepareSlice(
  file: string,
  source: SliceSource,
  spec: PrepareSpec,
  out: Float32Array,
  offset: number,
  huInto?: Float32Array,
): Promise<PreparedSlice> {
  const f = await prepareFull(file, source, spec, out, offset, huInto);
  const a = f.analysis;
  const t0 = performance.now();
  const pattern = a && !spec.keyDetail ? slicePattern({ ...a.segmentation, ...a.masks }, a.grid.pxMm) : undefined;
  const patternMs = performance.now() - t0;
  return {
    width: f.image.width,
    height: f.image.height,
    cropBox: f.crop.box,
    cropUsed: f.crop.used,
    ...(a
      ? { lungs: { total: a.total, imageLeft: a.imageLeft, imageRight: a.imageRight }, ...(pattern ? { pattern, patternMs } : {}) }
      : {}),
    ...(a && spec.labels ? { labels: sliceLabelRuns(a, f.image.width, f.image.height) } : {}),
    ...(a && spec.keyDetail ? { detail: { lung: a.segmentation.lung, opacity: a.masks.opacity, pxMm: a.grid.pxMm } } : {}),
    decodeMs: f.decodeMs,
    lungMs: f.lungMs,
    preprocessMs: f.preprocessMs,
  };
}

/** Prepares on the JS thread, one slice at a time (no overlap with onnxruntime-node's run, which is synchronous). */
export function inThreadPreparer(): SlicePreparer {
  let chain: Promise<unknown> = Promise.resolve();
  return {
    threads: 0,
    prepare(file, source, spec, out, offset) {
      const p = chain.then(() => prepareSlice(file, source, spec, out, offset));
      chain = p.catch(() => undefined);
      return p;
    },
    close: async () => undefined,
  };
}

/**
 * Default prepare threads: one per core. Decoding, the lung analysis and preprocessing cost more CPU than the
 * model on a CPU host (measured on 2 cores: 2 threads beat 1 and the JS thread), and on a GPU host they are all
 * the CPU does, so the pool gets every core (config worker.prepareThreads overrides it).
 */
export function defaultDecodeThreads(): number {
  return Math.max(1, availableParallelism());
}

/** The compiled worker script (dist/scoring/slice-preparer-worker.js); null when not built. */
function workerScript(): string | null {
  const here = fileURLToPath(import.meta.url);
  const candidates = [path.join(path.dirname(here), 'slice-preparer-worker.js')];
  // Running from the TypeScript sources (tests): use the built twin.
  if (here.endsWith('.ts')) candidates.push(path.resolve(path.dirname(here), '..', '..', 'dist', 'scoring', 'slice-preparer-worker.js'));
  return candidates.find((c) => existsSync(c)) ?? null;
}

/** A preparer with `threads` worker threads; 0, or no built worker script, prepares in this thread. */
export function createPreparer(threads: number, logger?: Logger): SlicePreparer {
  if (threads <= 0) return inThreadPreparer();
  const script = workerScript();
  if (!script) {
    logger?.warn('slice-preparer-worker.js not built: decoding in the main thread');
    return inThreadPreparer();
  }
  return new PreparePool(script, threads);
}

interface Task {
  id: number;
  file: string;
  source: SliceSource;
  spec: PrepareSpec;
  out: Float32Array;
  offset: number;
  resolve: (p: PreparedSlice) => void;
  reject: (e: unknown) => void;
}

export type WorkerReply =
  | { id: number; ok: true; result: PreparedSlice; data: Float32Array }
  | { id: number; ok: false; decode: boolean; code?: string; message: string };

/**
 * Tasks are posted to a thread as soon as they are asked for (to the thread with the fewest
 * outstanding): onnxruntime-node runs a batch synchronously on the JS thread, so a pool that waited
 * for replies before handing out the next slice would sit idle during inference.
 */
class PreparePool implements SlicePreparer {
  private readonly workers = new Map<Worker, Map<number, Task>>();
  private nextId = 1;
  private closed = false;

  constructor(
    private readonly script: string,
    readonly threads: number,
  ) {
    for (let i = 0; i < threads; i++) this.spawn();
  }

  private spawn(): void {
    const w = new Worker(this.script);
    const tasks = new Map<number, Task>();
    this.workers.set(w, tasks);
    w.unref();
    w.on('message', (msg: WorkerReply) => {
      const task = tasks.get(msg.id);
      if (!task) return;
      tasks.delete(msg.id);
      if (msg.ok) {
        task.out.set(msg.data, task.offset);
        task.resolve(msg.result);
      } else if (msg.decode) {
        task.reject(new DecodeError((msg.code ?? 'codec-failed') as DecodeErrorCode, msg.message));
      } else {
        task.reject(new Error(msg.message));
      }
    });
    w.on('error', (err) => {
      // A crashed thread fails its slices (dropped with the reason); a fresh thread replaces it.
      this.workers.delete(w);
      for (const t of tasks.values()) t.reject(new Error(`decode thread failed: ${err.message}`));
      tasks.clear();
      if (!this.closed) this.spawn();
    });
  }

  prepare(file: string, source: SliceSource, spec: PrepareSpec, out: Float32Array, offset: number): Promise<PreparedSlice> {
    if (this.closed) return Promise.reject(new Error('preparer closed'));
    if (out.length < offset + sliceSize(spec.preprocessing)) return Promise.reject(new RangeError('output buffer too small'));
    let best: [Worker, Map<number, Task>] | undefined;
    for (const e of this.workers) if (!best || e[1].size < best[1].size) best = e;
    if (!best) return Promise.reject(new Error('no decode thread'));
    const [w, tasks] = best;
    return new Promise((resolve, reject) => {
      const id = this.nextId++;
      tasks.set(id, { id, file, source, spec, out, offset, resolve, reject });
      w.postMessage({ id, file, source, spec });
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.workers];
    this.workers.clear();
    for (const [, tasks] of all) {
      for (const t of tasks.values()) t.reject(new Error('preparer closed'));
      tasks.clear();
    }
    await Promise.all(all.map(([w]) => w.terminate()));
  }
}
