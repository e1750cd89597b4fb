/** Worker thread of the prepare pool (slice-preparer.ts): decodes, analyses the lungs and preprocesses one slice per message. */
import { parentPort } from 'node:worker_threads';
import { isDecodeError } from '../dicom/decode/index.js';
import { sliceSize } from '../model/preprocess.js';
import { prepareSlice, type PrepareSpec, type SliceSource, type WorkerReply } from './slice-preparer.js';

interface Request {
  id: number;
  file: string;
  source: SliceSource;
  spec: PrepareSpec;
}

if (!parentPort) throw new Error('slice-preparer-worker must run as a worker thread');
const port = parentPort;
// One slice at a time (in arrival order): one decoded image in memory per thread, honest timings.
let chain: Promise<void> = Promise.resolve();
port.on('message', (req: Request) => {
  chain = chain.then(() => handle(req));
});

// The decoded HU of the slice in hand: reused from slice to slice (nothing keeps the image past its reply), so a
// 512×512 slice does not allocate, fault in and collect 1 MB each time; a larger slice gets its own array.
const hu = new Float32Array(1024 * 1024);

function handle(req: Request): Promise<void> {
  const out = new Float32Array(sliceSize(req.spec.preprocessing));
  return prepareSlice(req.file, req.source, req.spec, out, 0, hu).then(
    (result) => {
      const reply: WorkerReply = { id: req.id, ok: true, result, data: out };
      port.postMessage(reply, [out.buffer]);
    },
    (err: unknown) => {
      const reply: WorkerReply = isDecodeError(err)
        ? { id: req.id, ok: false, decode: true, code: err.code, message: err.message }
        : { id: req.id, ok: false, decode: false, message: (err as Error)?.message ?? String(err) };
      port.postMessage(reply);
    },
  );
}
