/**
 * One series through the model, batch by batch: decode + lung analysis + preprocess (the preparer's
 * threads) pipelined with ONNX Runtime's inference. Memory is bounded by the batch, not the series:
 * a few input buffers, used in turn, and only scalars per slice are kept.
 */
import type { ModelSession } from '../model/session.js';
import { isDecodeError } from '../dicom/decode/index.js';
import type { ScoredInput } from './decide.js';
import type { PlannedSeries, PlannedSlice } from './plan.js';
import type { PrepareSpec, PreparedSlice, SlicePreparer } from './slice-preparer.js';
import type { DroppedSlice } from './select-slices.js';
import type { StageTimings } from './types.js';

export interface BatchRun {
  session: ModelSession;
  preparer: SlicePreparer;
  spec: PrepareSpec;
  /** Floats per slice in an input buffer. */
  perSlice: number;
  /** Input buffers of the session's batch size, reused across series; more are added when the pool needs them. */
  buffers: Float32Array[];
  /** Busy time per stage, added to. */
  stages: StageTimings;
  /** Slices done so far of the series. */
  progress: (done: number) => void;
}

function errorReason(err: unknown): string {
  if (isDecodeError(err)) return `undecodable (${err.code}): ${err.message}`;
  return `undecodable: ${(err as Error).message ?? String(err)}`;
}

interface Prepared {
  input: Float32Array;
  ok: PlannedSlice[];
  infos: PreparedSlice[];
}

/** The CNN's probability of every slice that could be prepared, in the series' order; the others in `dropped` with their reason. */
export async function scoreBatches(s: PlannedSeries, run: BatchRun): Promise<{ scored: ScoredInput[]; dropped: DroppedSlice[] }> {
  const { session, preparer, spec, perSlice, stages } = run;
  const scored: ScoredInput[] = [];
  const dropped = [...s.dropped];
  /** Decode + preprocess a batch into `input`; failed slices are dropped with their reason. */
  const prepareBatch = async (batch: PlannedSlice[], input: Float32Array): Promise<Prepared> => {
    const settled = await Promise.allSettled(batch.map((sl, i) => preparer.prepare(sl.file, s.source, spec, input, i * perSlice)));
    const ok: PlannedSlice[] = [];
    const infos: PreparedSlice[] = [];
    settled.forEach((r, i) => {
      const sl = batch[i] as PlannedSlice;
      if (r.status === 'fulfilled') {
        const j = ok.length;
        if (j !== i) input.copyWithin(j * perSlice, i * perSlice, (i + 1) * perSlice);
        ok.push(sl);
        infos.push(r.value);
        stages.decodeMs += r.value.decodeMs;
        stages.lungMs += r.value.lungMs;
        if (r.value.patternMs !== undefined) stages.patternMs = (stages.patternMs ?? 0) + r.value.patternMs;
        stages.preprocessMs += r.value.preprocessMs;
      } else {
        dropped.push({ file: sl.file, sopInstanceUid: sl.header?.sopInstanceUid ?? null, reason: errorReason(r.reason) });
      }
    });
    return { input, ok, infos };
  };
  const bs = session.batchSize;
  const buffers = run.buffers;
  // Pipelined: while onnxruntime runs batch b, the next batches are decoded and preprocessed (in the
  // prepare pool, or on the JS thread). Enough batches are in flight to keep every prepare thread busy
  // (one ahead, more when the pool has more threads than a batch has slices), each in its own input
  // buffer: memory is bounded by (ahead + 1) batches, whatever the series length.
  const ahead = Math.max(1, Math.ceil(preparer.threads / bs));
  while (buffers.length < ahead + 1) buffers.push(session.newInputBuffer());
  const pending: Promise<Prepared>[] = [];
  let launched = 0;
  const launch = (): void => {
    if (launched >= s.slices.length) return;
    const buf = buffers[(launched / bs) % (ahead + 1)] as Float32Array;
    pending.push(prepareBatch(s.slices.slice(launched, launched + bs), buf));
    launched += bs;
  };
  launch();
  for (let b = 0; b < s.slices.length; b += bs) {
    const { input, ok, infos } = await (pending.shift() as Promise<Prepared>);
    const tInfer = performance.now();
    const running = session.scorePrepared(input, ok.length);
    while (pending.length < ahead && launched < s.slices.length) launch();
    // a failed run must not leave the next batches' preparation unobserved
    const outs = await running.catch(async (err: unknown) => {
      await Promise.allSettled(pending);
      throw err;
    });
    stages.inferMs += performance.now() - tInfer;
    for (const [i, o] of outs.entries()) scored.push({ ...(ok[i] as PlannedSlice), cnn: o.probability, info: infos[i] as PreparedSlice });
    run.progress(Math.min(b + bs, s.slices.length));
  }
  return { scored, dropped };
}
