/**
 * The model at run time: an onnxruntime-node InferenceSession over the shipped ONNX file, fed
 * through the one preprocessing definition (preprocess.ts) in bounded batches. One input buffer of
 * `batchSize` slices is allocated once and reused, so memory does not grow with series size.
 */
import * as ort from 'onnxruntime-node';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import { loadModelMetadata, ModelError, type ModelMetadata } from './metadata.js';
import { preprocessSlice, sliceSize, type SliceImage } from './preprocess.js';

export type ProviderName = Config['model']['providers'][number];

/** Config provider names → onnxruntime-node execution provider names. */
const PROVIDERS: Record<ProviderName, string> = {
  cpu: 'cpu',
  cuda: 'cuda',
  tensorrt: 'tensorrt',
  dml: 'dml',
  coreml: 'coreml',
};

export function executionProviders(names: readonly ProviderName[]): string[] {
  return names.map((n) => PROVIDERS[n]);
}

export interface SessionOptions {
  providers?: readonly ProviderName[];
  /** Slices per ONNX run (default 16). */
  batchSize?: number;
  /** onnxruntime intra-op threads (default: onnxruntime's choice). */
  threads?: number;
  /** Verify the ONNX sha256 against the metadata (default true). */
  verifyHash?: boolean;
  logger?: Logger;
}

export interface SliceOutput {
  probability: number;
  /** Fused attention map, row-major, values in [0,1], attentionHeight x attentionWidth. */
  attention: Float32Array;
  attentionHeight: number;
  attentionWidth: number;
}

export interface RawOutput {
  data: Float32Array;
  dims: readonly number[];
}

export const DEFAULT_BATCH_SIZE = 16;

/** What ModelSession needs of an onnxruntime InferenceSession (the benchmark's no-op model implements it too). */
export type SessionRunner = Pick<ort.InferenceSession, 'run' | 'release' | 'outputNames'>;

export class ModelSession {
  private readonly input: Float32Array;
  private readonly perSlice: number;

  private constructor(
    private readonly session: SessionRunner,
    readonly metadata: ModelMetadata,
    readonly onnxPath: string,
    readonly batchSize: number,
    readonly providers: readonly string[],
  ) {
    this.perSlice = sliceSize(metadata.preprocessing);
    this.input = new Float32Array(batchSize * this.perSlice);
  }

  static async load(modelPath: string, opts: SessionOptions = {}): Promise<ModelSession> {
    const batchSize = opts.batchSize ?? DEFAULT_BATCH_SIZE;
    if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 1024) {
      throw new ModelError(`batch size must be an integer 1..1024, got ${batchSize}`);
    }
    const { metadata, onnxPath } = await loadModelMetadata(modelPath, { verifyHash: opts.verifyHash ?? true });
    const wanted = executionProviders(opts.providers ?? ['cpu']);
    const base: ort.InferenceSession.SessionOptions = { graphOptimizationLevel: 'all' };
    if (opts.threads) base.intraOpNumThreads = opts.threads;
    let session: ort.InferenceSession;
    let used = wanted;
    try {
      session = await ort.InferenceSession.create(onnxPath, { ...base, executionProviders: wanted });
    } catch (err) {
      if (wanted.length === 1 && wanted[0] === 'cpu') throw new ModelError(`cannot load model ${onnxPath}: ${(err as Error).message}`);
      opts.logger?.warn({ providers: wanted, err: (err as Error).message }, 'execution providers unavailable; falling back to cpu');
      used = ['cpu'];
      try {
        session = await ort.InferenceSession.create(onnxPath, { ...base, executionProviders: used });
      } catch (err2) {
        throw new ModelError(`cannot load model ${onnxPath}: ${(err2 as Error).message}`);
      }
    }
    const missing = [metadata.input.name].filter((n) => !session.inputNames.includes(n));
    const missingOut = ['prob', 'attention'].filter((n) => !session.outputNames.includes(n));
    if (missing.length || missingOut.length) {
      await session.release();
      throw new ModelError(
        `model ${onnxPath} lacks ${[...missing.map((m) => `input ${m}`), ...missingOut.map((m) => `output ${m}`)].join(', ')}`,
      );
    }
    opts.logger?.info({ model: metadata.name, version: metadata.version, providers: used, batchSize }, 'model loaded');
    return new ModelSession(session, metadata, onnxPath, batchSize, used);
  }

  /**
   * A session over another runner with this model's metadata and batch shape: `npm run bench` replaces the
   * network by a no-op of the same output shapes to measure what the CPU stages alone allow (the GPU-host ceiling).
   */
  static withRunner(
    runner: SessionRunner,
    metadata: ModelMetadata,
    opts: { batchSize?: number; providers?: readonly string[]; onnxPath?: string } = {},
  ): ModelSession {
    return new ModelSession(runner, metadata, opts.onnxPath ?? '', opts.batchSize ?? DEFAULT_BATCH_SIZE, opts.providers ?? ['none']);
  }

  get outputNames(): readonly string[] {
    return this.session.outputNames;
  }

  /** Run the network on an already preprocessed NCHW tensor of `n` slices; every output, raw. */
  async runRaw(input: Float32Array, n: number, outputs?: readonly string[]): Promise<Record<string, RawOutput>> {
    const { channels, height, width } = this.metadata.input;
    const tensor = new ort.Tensor('float32', input.subarray(0, n * channels * height * width), [n, channels, height, width]);
    const res = outputs
      ? await this.session.run({ [this.metadata.input.name]: tensor }, outputs as string[])
      : await this.session.run({ [this.metadata.input.name]: tensor });
    const out: Record<string, RawOutput> = {};
    for (const [k, v] of Object.entries(res)) {
      out[k] = { data: v.data as Float32Array, dims: v.dims };
      // Tensors hold no native memory after run in onnxruntime-node; nothing to dispose.
    }
    return out;
  }

  /** Preprocess and score up to batchSize slices. */
  async scoreSlices(images: readonly SliceImage[]): Promise<SliceOutput[]> {
    if (images.length === 0) return [];
    if (images.length > this.batchSize) throw new RangeError(`at most ${this.batchSize} slices per call, got ${images.length}`);
    images.forEach((img, i) => {
      preprocessSlice(img, this.metadata.preprocessing, this.input, i * this.perSlice);
    });
    return this.scorePrepared(this.input, images.length);
  }

  /** A fresh input buffer of batchSize preprocessed slices (for callers that double-buffer). */
  newInputBuffer(): Float32Array {
    return new Float32Array(this.batchSize * this.perSlice);
  }

  /** Score `n` (≤ batchSize) slices already preprocessed into `input` (preprocessSlice layout, slice i at i·sliceSize). */
  async scorePrepared(input: Float32Array, n: number): Promise<SliceOutput[]> {
    if (n === 0) return [];
    if (n > this.batchSize) throw new RangeError(`at most ${this.batchSize} slices per call, got ${n}`);
    const res = await this.runRaw(input, n, ['prob', 'attention']);
    const prob = res.prob as RawOutput;
    const att = res.attention as RawOutput;
    const h = att.dims[2] ?? 1;
    const w = att.dims[3] ?? att.data.length / n;
    const per = h * w;
    return Array.from({ length: n }, (_, i) => ({
      probability: prob.data[i] as number,
      attention: att.data.slice(i * per, (i + 1) * per),
      attentionHeight: h,
      attentionWidth: w,
    }));
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
