/**
 * The shipped model's metadata (models/<name>-<version>.json, written by training/export.py):
 * validated with zod, and checked against the ONNX file it describes (sha256) before use.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { fusionSpecSchema } from './fusion.js';
import { quantificationSpecSchema } from './opacity.js';
import { preprocessingSchema } from './preprocess.js';

export const aggregationSchema = z.looseObject({
  method: z.literal('topk-mean'),
  kFraction: z.number().gt(0).max(1),
  kMin: z.number().int().min(1),
});

export const modelMetadataSchema = z
  .looseObject({
    name: z.string().min(1),
    version: z.string().min(1),
    onnxFile: z.string().min(1),
    sha256: z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits'),
    createdAt: z.string().min(1),
    provisional: z.boolean().optional(),
    backbone: z.string().optional(),
    opset: z.number().int().max(17),
    input: z.looseObject({
      name: z.string().min(1),
      channels: z.number().int().positive(),
      height: z.number().int().positive(),
      width: z.number().int().positive(),
      layout: z.literal('NCHW'),
    }),
    preprocessing: preprocessingSchema,
    outputs: z.record(z.string(), z.string()).refine((o) => 'prob' in o && 'attention' in o, 'must describe "prob" and "attention"'),
    slice: z.looseObject({ threshold: z.number().min(0).max(1) }),
    series: z.looseObject({
      aggregation: aggregationSchema,
      threshold: z.number().min(0).max(1),
      indeterminateMargin: z.number().min(0).max(0.5),
      keySlices: z.number().int().min(1),
    }),
    /** Opacity quantification from HU (needs preprocessing.lungs). */
    quantification: quantificationSpecSchema.optional(),
    /** How the CNN and the opacity burden make one result on HU series (needs quantification). */
    fusion: fusionSpecSchema.optional(),
    metrics: z.record(z.string(), z.unknown()).optional(),
    training: z.record(z.string(), z.unknown()).optional(),
  })
  .superRefine((m, ctx) => {
    const p = m.preprocessing;
    if (m.quantification && !p.lungs) {
      ctx.addIssue({ code: 'custom', path: ['quantification'], message: 'needs preprocessing.lungs (the lung mask it measures in)' });
    }
    if (m.fusion && !m.quantification) {
      ctx.addIssue({ code: 'custom', path: ['fusion'], message: 'needs quantification (the opacity burden it fuses)' });
    }
    if (p.resize.width !== m.input.width || p.resize.height !== m.input.height) {
      ctx.addIssue({
        code: 'custom',
        path: ['preprocessing', 'resize'],
        message: `resize ${p.resize.width}x${p.resize.height} differs from input ${m.input.width}x${m.input.height}`,
      });
    }
    if (p.channels !== m.input.channels) {
      ctx.addIssue({
        code: 'custom',
        path: ['preprocessing', 'channels'],
        message: `channels ${p.channels} differs from input.channels ${m.input.channels}`,
      });
    }
  });

export type ModelMetadata = z.infer<typeof modelMetadataSchema>;

/** Thrown when the model files are missing, malformed or do not match each other. */
export class ModelError extends Error {
  override name = 'ModelError';
}

export async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** The metadata file beside an ONNX file: same name with .json. */
export function metadataPathFor(onnxPath: string): string {
  return `${onnxPath.replace(/\.onnx$/i, '')}.json`;
}

export interface LoadedMetadata {
  metadata: ModelMetadata;
  onnxPath: string;
  metadataPath: string;
}

/**
 * Load and validate the metadata for a model path (the .onnx or the .json), and verify the ONNX
 * file's sha256 against it. Throws ModelError with a clear reason.
 */
export async function loadModelMetadata(modelPath: string, opts: { verifyHash?: boolean } = {}): Promise<LoadedMetadata> {
  const abs = path.resolve(modelPath);
  const metadataPath = abs.toLowerCase().endsWith('.json') ? abs : metadataPathFor(abs);
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(metadataPath, 'utf8'));
  } catch (err) {
    throw new ModelError(`cannot read model metadata ${metadataPath}: ${(err as Error).message}`);
  }
  const parsed = modelMetadataSchema.safeParse(raw);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new ModelError(`invalid model metadata ${metadataPath}:\n${lines.join('\n')}`);
  }
  const metadata = parsed.data;
  const onnxPath = abs.toLowerCase().endsWith('.json') ? path.join(path.dirname(abs), metadata.onnxFile) : abs;
  if (path.basename(onnxPath) !== metadata.onnxFile) {
    throw new ModelError(`metadata ${metadataPath} describes ${metadata.onnxFile}, not ${path.basename(onnxPath)}`);
  }
  if (opts.verifyHash !== false) {
    let actual: string;
    try {
      actual = await sha256File(onnxPath);
    } catch (err) {
      throw new ModelError(`cannot read model ${onnxPath}: ${(err as Error).message}`);
    }
    if (actual !== metadata.sha256) {
      throw new ModelError(`model ${onnxPath} sha256 ${actual} does not match its metadata (${metadata.sha256}); refusing to load`);
    }
  }
  return { metadata, onnxPath, metadataPath };
}
