/**
 * onnxruntime-node reproduces PyTorch: the export (training/export.py → make_fixtures.py) wrote
 * golden outputs for fixed inputs into tests/fixtures/model/golden.json; every output must match
 * within its tolerance (1e-4). Also: the metadata loader refuses a model whose sha256 differs, and
 * a real DICOM slice decoded and preprocessed in TypeScript gets PyTorch's probability.
 */
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeDicomFile } from '../../src/dicom/decode/index.js';
import { loadModelMetadata, ModelError } from '../../src/model/metadata.js';
import { ModelSession } from '../../src/model/session.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const dataRoot = path.resolve(repoRoot, '..', 'shared', 'data');
const fixDir = path.join(repoRoot, 'tests', 'fixtures', 'model');

interface GoldenTensor {
  shape: number[];
  data: number[];
}
interface GoldenCase {
  name: string;
  input:
    | { type: 'formula'; shape: [number, number, number, number]; a: number; b: number }
    | { type: 'fixture'; file: string; shape: [number, number, number, number]; source?: string };
  outputs: Record<string, GoldenTensor>;
}
interface Golden {
  model: { name: string; version: string; onnxFile: string; sha256: string };
  tolerance: number;
  cases: GoldenCase[];
}

const golden = JSON.parse(readFileSync(path.join(fixDir, 'golden.json'), 'utf8')) as Golden;
const modelPath = path.join(repoRoot, 'models', golden.model.onnxFile);

/** x[n,c,h,w] = sin(a*(h+1)*(n+1)) * cos(b*(w+1)+c), float64 rounded to float32. */
function formulaInput(shape: [number, number, number, number], a: number, b: number): Float32Array {
  const [N, C, H, W] = shape;
  const x = new Float32Array(N * C * H * W);
  let i = 0;
  for (let n = 0; n < N; n++)
    for (let c = 0; c < C; c++)
      for (let h = 0; h < H; h++) for (let w = 0; w < W; w++) x[i++] = Math.sin(a * (h + 1) * (n + 1)) * Math.cos(b * (w + 1) + c);
  return x;
}

/** A one-channel float32 plane repeated to C channels, N=1. */
function fixtureInput(file: string, shape: [number, number, number, number]): Float32Array {
  const buf = readFileSync(path.join(fixDir, file));
  const plane = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
  const [N, C, H, W] = shape;
  const x = new Float32Array(N * C * H * W);
  for (let c = 0; c < N * C; c++) x.set(plane.subarray(0, H * W), c * H * W);
  return x;
}

let session: ModelSession;
beforeAll(async () => {
  session = await ModelSession.load(modelPath, { batchSize: 4, providers: ['cpu'] });
});
afterAll(async () => {
  await session?.release();
});

describe('ONNX model vs PyTorch golden outputs', () => {
  it('the golden file belongs to the shipped model', () => {
    expect(session.metadata.name).toBe(golden.model.name);
    expect(session.metadata.version).toBe(golden.model.version);
    expect(session.metadata.sha256).toBe(golden.model.sha256);
    expect(golden.tolerance).toBeLessThanOrEqual(1e-4);
  });

  for (const c of golden.cases) {
    it(`case ${c.name}: every output within ${golden.tolerance}`, async () => {
      const inp = c.input;
      const x = inp.type === 'formula' ? formulaInput(inp.shape, inp.a, inp.b) : fixtureInput(inp.file, inp.shape);
      const out = await session.runRaw(x, inp.shape[0]);
      for (const [name, want] of Object.entries(c.outputs)) {
        const got = out[name];
        expect(got, `output ${name}`).toBeDefined();
        expect([...(got?.dims ?? [])]).toEqual(want.shape);
        let maxDiff = 0;
        want.data.forEach((v, i) => {
          maxDiff = Math.max(maxDiff, Math.abs(v - (got?.data[i] as number)));
        });
        expect(maxDiff, `max |onnx - torch| of ${name}`).toBeLessThanOrEqual(golden.tolerance);
      }
    });
  }

  it('a real slice, decoded and preprocessed in TypeScript, gets the PyTorch probability', async () => {
    const real = golden.cases.find((c) => c.input.type === 'fixture' && c.input.source);
    expect(real, 'golden.json has a real-slice case').toBeDefined();
    if (real?.input.type !== 'fixture' || !real.input.source) return;
    const { image } = await decodeDicomFile(path.join(dataRoot, real.input.source.replace(/^.*?covid-ct-md\//, 'covid-ct-md/')));
    const [res] = await session.scoreSlices([image]);
    // preprocessing twins agree within 1e-3 per pixel; the probability follows closely
    expect(Math.abs((res?.probability as number) - (real.outputs.prob?.data[0] as number))).toBeLessThan(2e-3);
    expect(res?.attention.length).toBe((res?.attentionHeight ?? 0) * (res?.attentionWidth ?? 0));
    expect(Math.max(...(res?.attention ?? []))).toBeLessThanOrEqual(1 + 1e-6);
    expect(Math.min(...(res?.attention ?? []))).toBeGreaterThanOrEqual(-1e-6);
  });

  it('batches larger than the session batch size are refused, not grown into', async () => {
    const { image } = await decodeDicomFile(path.join(dataRoot, 'covid-ct-md', 'P001', '98C14734-ASSH_29.dcm'));
    await expect(session.scoreSlices(Array.from({ length: 5 }, () => image))).rejects.toThrow(RangeError);
  });
});

describe('model metadata', () => {
  const tmp = mkdtempSync(path.join(tmpdir(), 'mlsam-meta-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it('loads and verifies the shipped metadata', async () => {
    const { metadata, onnxPath } = await loadModelMetadata(modelPath);
    expect(onnxPath).toBe(modelPath);
    expect(metadata.series.aggregation.method).toBe('topk-mean');
  });

  it('refuses an ONNX file whose sha256 does not match the metadata', async () => {
    const onnx = path.join(tmp, golden.model.onnxFile);
    copyFileSync(modelPath, onnx);
    const meta = JSON.parse(readFileSync(modelPath.replace(/\.onnx$/, '.json'), 'utf8')) as Record<string, unknown>;
    writeFileSync(onnx.replace(/\.onnx$/, '.json'), JSON.stringify({ ...meta, sha256: '0'.repeat(64) }));
    await expect(loadModelMetadata(onnx)).rejects.toThrow(/does not match/);
    await expect(ModelSession.load(onnx)).rejects.toBeInstanceOf(ModelError);
  });

  it('refuses malformed metadata with the offending key named', async () => {
    const onnx = path.join(tmp, golden.model.onnxFile);
    const meta = JSON.parse(readFileSync(modelPath.replace(/\.onnx$/, '.json'), 'utf8')) as { series: Record<string, unknown> };
    writeFileSync(onnx.replace(/\.onnx$/, '.json'), JSON.stringify({ ...meta, series: { ...meta.series, threshold: 2 } }));
    await expect(loadModelMetadata(onnx)).rejects.toThrow(/series\.threshold/);
  });
});
