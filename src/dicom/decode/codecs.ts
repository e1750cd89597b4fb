/**
 * Compressed-frame decoding through dcmjs-codecs (WebAssembly builds of libjpeg-turbo, CharLS,
 * OpenJPEG and an RLE decoder). The WASM module is loaded once, on first use.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import codecs from 'dcmjs-codecs';
import { TransferSyntax } from '../uids.js';
import { DecodeError } from './errors.js';
import { decodeJpegLossless, decodeJpegLosslessModality } from './jpeg-lossless.js';
import type { Modality } from './modality.js';

const { NativeCodecs, Context } = codecs;
codecs.log.setLevel('error');

type Decoder = 'jpeg' | 'jpegls' | 'jpeg2000' | 'htj2k' | 'rle';

/** Transfer syntaxes decoded by a codec, and which one. */
export const ENCAPSULATED_SYNTAXES: Readonly<Record<string, Decoder>> = {
  [TransferSyntax.JpegBaseline]: 'jpeg', // JPEG baseline (process 1)
  [TransferSyntax.JpegExtended]: 'jpeg', // JPEG extended (process 2 & 4)
  [TransferSyntax.JpegLossless]: 'jpeg', // JPEG lossless process 14
  [TransferSyntax.JpegLosslessSV1]: 'jpeg', // JPEG lossless process 14 SV1
  [TransferSyntax.JpegLsLossless]: 'jpegls', // JPEG-LS lossless
  [TransferSyntax.JpegLsNearLossless]: 'jpegls', // JPEG-LS near-lossless
  [TransferSyntax.Jpeg2000Lossless]: 'jpeg2000', // JPEG 2000 lossless
  [TransferSyntax.Jpeg2000]: 'jpeg2000', // JPEG 2000
  [TransferSyntax.HtJpeg2000Lossless]: 'htj2k',
  [TransferSyntax.HtJpeg2000LosslessRpcl]: 'htj2k',
  [TransferSyntax.HtJpeg2000]: 'htj2k',
  [TransferSyntax.RleLossless]: 'rle', // RLE lossless
};

/** Transfer syntaxes whose pixel data is stored native (dcmjs inflates the deflated one). */
export const NATIVE_SYNTAXES: ReadonlySet<string> = new Set([
  TransferSyntax.ImplicitVRLittleEndian,
  TransferSyntax.ExplicitVRLittleEndian,
  TransferSyntax.DeflatedExplicitVRLittleEndian,
  TransferSyntax.ExplicitVRBigEndian,
]);

let init: Promise<void> | null = null;

/** True once the codec WASM is loaded (decodeFrame can then run any codec). */
export function codecsReady(): boolean {
  return NativeCodecs.isInitialized();
}

/** Load the codec WASM once (idempotent, safe to call concurrently). */
export function initCodecs(): Promise<void> {
  if (!init) {
    const require = createRequire(import.meta.url);
    const wasm = path.join(path.dirname(require.resolve('dcmjs-codecs')), 'dcmjs-native-codecs.wasm');
    init = NativeCodecs.initializeAsync({ webAssemblyModulePathOrUrl: wasm, logCodecsInfo: false, logCodecsTrace: false });
    init.catch(() => {
      init = null;
    });
  }
  return init;
}

export interface FrameParams {
  width: number;
  height: number;
  bitsAllocated: number;
  bitsStored: number;
  samplesPerPixel: number;
  pixelRepresentation: number;
  planarConfiguration: number;
  photometricInterpretation: string;
}

export interface DecodedFrame {
  bytes: Uint8Array;
  photometricInterpretation: string;
  planarConfiguration: number;
}

/** JPEG Lossless transfer syntaxes (process 14; .70 is its selection value 1). */
const JPEG_LOSSLESS = new Set(['1.2.840.10008.1.2.4.57', '1.2.840.10008.1.2.4.70']);

/** A frame the TypeScript JPEG Lossless decoder may take (it still declines streams it does not handle). */
export function losslessEligible(transferSyntaxUid: string, p: { samplesPerPixel: number; bitsAllocated: number }): boolean {
  return JPEG_LOSSLESS.has(transferSyntaxUid) && p.samplesPerPixel === 1 && p.bitsAllocated === 16;
}

/**
 * decodeFrame and the modality LUT in one go, for a frame the TypeScript decoder takes: modality values of the
 * width × height samples into `out`. False (nothing written) when it does not take the frame: decodeFrame then.
 */
export function decodeLosslessModality(
  transferSyntaxUid: string,
  encoded: Uint8Array,
  p: FrameParams,
  m: Modality,
  out: Float32Array,
): boolean {
  return losslessEligible(transferSyntaxUid, p) && decodeJpegLosslessModality(encoded, m, out, { width: p.width, height: p.height });
}

/**
 * Single-component 9–16 bit JPEG Lossless through the TypeScript decoder (jpeg-lossless.ts), when the stream is
 * one it handles and matches the header; null otherwise (the WASM codec decodes it).
 */
function losslessFast(transferSyntaxUid: string, encoded: Uint8Array, p: FrameParams, samples?: Uint16Array): DecodedFrame | null {
  if (!losslessEligible(transferSyntaxUid, p)) return null;
  const img = decodeJpegLossless(encoded, samples);
  if (!img || img.width !== p.width || img.height !== p.height) return null;
  return {
    bytes: new Uint8Array(img.samples.buffer, img.samples.byteOffset, img.samples.byteLength),
    photometricInterpretation: p.photometricInterpretation,
    planarConfiguration: p.planarConfiguration,
  };
}

/**
 * Decode one compressed frame. Call (and await) initCodecs() first (JPEG Lossless CT frames may not need it).
 * `samples`: where the TypeScript JPEG Lossless decoder may put its samples (the bytes returned are then a view of
 * it, valid until the caller reuses it); the WASM codecs return a buffer of their own.
 */
export function decodeFrame(transferSyntaxUid: string, encoded: Uint8Array, p: FrameParams, samples?: Uint16Array): DecodedFrame {
  const which = ENCAPSULATED_SYNTAXES[transferSyntaxUid];
  if (!which) throw new DecodeError('unsupported-transfer-syntax', `no codec for transfer syntax ${transferSyntaxUid}`);
  const fast = losslessFast(transferSyntaxUid, encoded, p, samples);
  if (fast) return fast;
  if (!NativeCodecs.isInitialized()) throw new Error('codecs not initialised: await initCodecs() first');
  const ctx = new Context({ ...p, encodedBuffer: encoded });
  let out: InstanceType<typeof Context>;
  try {
    switch (which) {
      case 'jpeg':
        out = NativeCodecs.decodeJpeg(ctx, { convertColorspaceToRgb: true });
        break;
      case 'jpegls':
        out = NativeCodecs.decodeJpegLs(ctx);
        break;
      case 'jpeg2000':
        out = NativeCodecs.decodeJpeg2000(ctx);
        break;
      case 'htj2k':
        out = NativeCodecs.decodeHtJpeg2000(ctx);
        break;
      case 'rle':
        out = NativeCodecs.decodeRle(ctx);
        break;
    }
  } catch (err) {
    if (err instanceof Error && err.constructor.name === 'RuntimeError') {
      // A trap can leave the module's heap in any state: drop it, load a fresh one next time.
      try {
        NativeCodecs.release();
      } catch {
        // already unusable
      }
      init = null;
    }
    throw new DecodeError('codec-failed', `${which} decoder failed: ${(err as Error).message ?? String(err)}`, { cause: err });
  }
  const bytes = out.getDecodedBuffer();
  if (!bytes || bytes.byteLength === 0) throw new DecodeError('codec-failed', `${which} decoder returned no pixels`);
  return {
    bytes,
    photometricInterpretation: out.getPhotometricInterpretation() ?? p.photometricInterpretation,
    planarConfiguration: out.getPlanarConfiguration() ?? p.planarConfiguration,
  };
}
