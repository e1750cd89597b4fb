/**
 * Pixel Data → PixelImage. Grayscale images come out as modality values (stored value, masked to
 * BitsStored at HighBit and sign-extended per PixelRepresentation, times RescaleSlope plus
 * RescaleIntercept): Hounsfield units for CT, kind 'hu'. Colour images come out as ITU-R 601 luma
 * 0..255, kind 'display'.
 */
import type { DicomDataset } from 'dcmjs';
import { decodeFrame, decodeLosslessModality, ENCAPSULATED_SYNTAXES, type FrameParams, initCodecs, NATIVE_SYNTAXES } from './codecs.js';
import { DecodeError } from './errors.js';
import { TransferSyntax } from '../uids.js';
import { numberValue, stringValue } from './header.js';
import { integerModality, type Modality, modalityU8or32, modalityU16 } from './modality.js';
import type { ParsedDicom } from './read.js';

/** Largest frame we allocate for (pixels); far above any CT slice. */
export const MAX_FRAME_PIXELS = 8192 * 8192;

export interface PixelModule {
  rows: number;
  columns: number;
  samplesPerPixel: number;
  bitsAllocated: number;
  bitsStored: number;
  highBit: number;
  pixelRepresentation: number;
  photometricInterpretation: string;
  planarConfiguration: number;
  numberOfFrames: number;
  rescaleSlope: number;
  rescaleIntercept: number;
}

/** Rescale from the top level, else from the shared functional groups (enhanced objects). */
function rescale(ds: DicomDataset): { slope: number; intercept: number } {
  let slope = numberValue(ds, '00281053');
  let intercept = numberValue(ds, '00281052');
  if (slope === null || intercept === null) {
    const shared = ds['52009229']?.Value?.[0] as DicomDataset | undefined;
    const pvt = shared?.['00289145']?.Value?.[0] as DicomDataset | undefined;
    if (pvt) {
      slope ??= numberValue(pvt, '00281053');
      intercept ??= numberValue(pvt, '00281052');
    }
  }
  return { slope: slope ?? 1, intercept: intercept ?? 0 };
}

function requireInt(ds: DicomDataset, tag: string, name: string, min: number, max: number): number {
  const v = numberValue(ds, tag);
  if (v === null) throw new DecodeError('bad-geometry', `${name} (${tag.slice(0, 4)},${tag.slice(4)}) is missing`);
  if (!Number.isInteger(v) || v < min || v > max) throw new DecodeError('bad-geometry', `${name} ${v} is out of range ${min}..${max}`);
  return v;
}

export function readPixelModule(ds: DicomDataset): PixelModule {
  const rows = requireInt(ds, '00280010', 'Rows', 1, 65535);
  const columns = requireInt(ds, '00280011', 'Columns', 1, 65535);
  const samplesPerPixel = requireInt(ds, '00280002', 'SamplesPerPixel', 1, 4);
  const bitsAllocated = requireInt(ds, '00280100', 'BitsAllocated', 1, 64);
  const bitsStored = numberValue(ds, '00280101') ?? bitsAllocated;
  const highBit = numberValue(ds, '00280102') ?? bitsStored - 1;
  const pixelRepresentation = numberValue(ds, '00280103') ?? 0;
  const photometricInterpretation = (stringValue(ds, '00280004') ?? (samplesPerPixel === 1 ? 'MONOCHROME2' : 'RGB')).toUpperCase();
  const planarConfiguration = numberValue(ds, '00280006') ?? 0;
  const frames = numberValue(ds, '00280008');
  const { slope, intercept } = rescale(ds);
  if (![8, 16, 32].includes(bitsAllocated)) {
    throw new DecodeError('unsupported-image', `BitsAllocated ${bitsAllocated} is not supported (8, 16 or 32)`);
  }
  if (!(bitsStored >= 1 && bitsStored <= bitsAllocated && highBit >= bitsStored - 1 && highBit < bitsAllocated)) {
    throw new DecodeError('bad-geometry', `BitsStored ${bitsStored} / HighBit ${highBit} inconsistent with BitsAllocated ${bitsAllocated}`);
  }
  if (rows * columns > MAX_FRAME_PIXELS) {
    throw new DecodeError('bad-geometry', `image ${columns}x${rows} exceeds the ${MAX_FRAME_PIXELS}-pixel limit`);
  }
  if (pixelRepresentation !== 0 && pixelRepresentation !== 1) {
    throw new DecodeError('bad-geometry', `PixelRepresentation ${pixelRepresentation} is not 0 or 1`);
  }
  return {
    rows,
    columns,
    samplesPerPixel,
    bitsAllocated,
    bitsStored,
    highBit,
    pixelRepresentation,
    photometricInterpretation,
    planarConfiguration,
    numberOfFrames: frames !== null && frames >= 1 ? Math.floor(frames) : 1,
    rescaleSlope: slope,
    rescaleIntercept: intercept,
  };
}

function asBytes(v: unknown): Uint8Array | null {
  if (v instanceof ArrayBuffer) return new Uint8Array(v);
  if (ArrayBuffer.isView(v)) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  return null;
}

function concat(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0] as Uint8Array;
  const total = parts.reduce((a, p) => a + p.byteLength, 0);
  const out = new Uint8Array(total);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.byteLength;
  }
  return out;
}

/** The encoded bytes of one frame of encapsulated Pixel Data. */
function encapsulatedFrame(values: unknown[], frame: number, frames: number): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const v of values) {
    if (Array.isArray(v)) {
      const inner = v.map(asBytes);
      if (inner.some((x) => x === null)) throw new DecodeError('parse-failed', 'unreadable Pixel Data fragment');
      parts.push(concat(inner as Uint8Array[]));
    } else {
      const b = asBytes(v);
      if (!b) throw new DecodeError('parse-failed', 'unreadable Pixel Data fragment');
      parts.push(b);
    }
  }
  if (parts.length === 0) throw new DecodeError('no-pixel-data', 'encapsulated Pixel Data has no fragments');
  if (frames === 1) return concat(parts);
  if (parts.length === frames) return parts[frame] as Uint8Array;
  throw new DecodeError('unsupported-image', `${frames} frames in ${parts.length} fragments without an offset table`);
}

function nativeFrame(values: unknown[], frame: number, frameBytes: number): Uint8Array {
  const parts = values.map(asBytes);
  if (parts.length === 0 || parts.some((p) => p === null)) throw new DecodeError('no-pixel-data', 'Pixel Data is empty');
  const all = concat(parts as Uint8Array[]);
  const start = frame * frameBytes;
  if (all.byteLength < start + frameBytes) {
    throw new DecodeError(
      'pixel-data-too-short',
      `Pixel Data holds ${all.byteLength} bytes, frame ${frame + 1} needs ${start + frameBytes}`,
    );
  }
  return all.subarray(start, start + frameBytes);
}

/** Unsigned raw sample values of a frame, in the byte order of the transfer syntax. */
function rawSamples(bytes: Uint8Array, bitsAllocated: number, bigEndian: boolean, count: number): ArrayLike<number> {
  if (bitsAllocated === 8) return bytes.subarray(0, count);
  const size = bitsAllocated / 8;
  if (!bigEndian && bytes.byteOffset % size === 0) {
    return bitsAllocated === 16
      ? new Uint16Array(bytes.buffer, bytes.byteOffset, count)
      : new Uint32Array(bytes.buffer, bytes.byteOffset, count);
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, count * size);
  const out = bitsAllocated === 16 ? new Uint16Array(count) : new Uint32Array(count);
  for (let i = 0; i < count; i++) out[i] = bitsAllocated === 16 ? dv.getUint16(i * 2, !bigEndian) : dv.getUint32(i * 4, !bigEndian);
  return out;
}

/** The modality LUT of a pixel module (modality.ts). */
export function modalityOf(pm: PixelModule): Modality {
  return {
    shift: pm.highBit + 1 - pm.bitsStored,
    bitsStored: pm.bitsStored,
    signed: pm.pixelRepresentation === 1,
    slope: pm.rescaleSlope,
    intercept: pm.rescaleIntercept,
  };
}

/** A Float32Array of n values: `into` (or its first n) when it is large enough, else a new one. */
function outputArray(n: number, into?: Float32Array): Float32Array {
  if (!into || into.length < n) return new Float32Array(n);
  return into.length === n ? into : into.subarray(0, n);
}

/** Modality values of n raw samples (modality.ts), into `into` when it is given and large enough. */
function toModalityValues(raw: ArrayLike<number>, pm: PixelModule, n: number, into?: Float32Array): Float32Array {
  const m = modalityOf(pm);
  const out = outputArray(n, into);
  if (integerModality(m)) {
    if (raw instanceof Uint16Array) {
      modalityU16(raw, out, n, m);
      return out;
    }
    if (raw instanceof Uint8Array || raw instanceof Uint32Array) {
      modalityU8or32(raw, out, n, m);
      return out;
    }
  }
  const range = 2 ** m.bitsStored;
  const half = range / 2;
  for (let i = 0; i < n; i++) {
    let v = Math.floor((raw[i] as number) / 2 ** m.shift) % range;
    if (m.signed && v >= half) v -= range;
    out[i] = v * m.slope + m.intercept;
  }
  return out;
}

/** ITU-R 601 luma as PIL's convert('L') computes it (integer, rounded). */
function luma(r: number, g: number, b: number): number {
  return (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16;
}

function toLuma(bytes: Uint8Array, photometric: string, planar: number, n: number): Float32Array {
  const out = new Float32Array(n);
  const at = planar === 1 ? (i: number, c: number) => bytes[c * n + i] as number : (i: number, c: number) => bytes[i * 3 + c] as number;
  if (photometric === 'RGB') {
    for (let i = 0; i < n; i++) out[i] = luma(at(i, 0), at(i, 1), at(i, 2));
  } else if (photometric === 'YBR_FULL') {
    for (let i = 0; i < n; i++) out[i] = at(i, 0); // Y of YBR_FULL is the 601 luma
  } else {
    throw new DecodeError('unsupported-image', `colour image with PhotometricInterpretation ${photometric} is not supported`);
  }
  return out;
}

/** Decoded pixels of one frame: modality values ('hu') or 8-bit luma ('display'), row-major. */
export interface PixelImage {
  width: number;
  height: number;
  data: Float32Array;
  kind: 'hu' | 'display';
  /** PixelSpacing [row, column] in mm (set by decodeDicom from the header), null when absent. */
  pixelSpacing?: [number, number] | null;
  /** SliceThickness in mm (set by decodeDicom from the header), null when absent. */
  sliceThicknessMm?: number | null;
}

export interface DecodedImage {
  image: PixelImage;
  pixel: PixelModule;
}

/** Decode frame `frame` (0-based) of a fully parsed dataset. */
export async function decodePixels(parsed: ParsedDicom, frame = 0): Promise<DecodedImage> {
  const ds = parsed.dataset;
  const ts = parsed.transferSyntaxUid;
  const pd = ds['7FE00010'];
  if (!pd) {
    const other = ds['7FE00008'] || ds['7FE00009'] ? ' (only Float/Double Float Pixel Data, not supported)' : '';
    throw new DecodeError('no-pixel-data', `no Pixel Data (7FE0,0010)${other}`);
  }
  const values = pd.Value ?? [];
  if (values.length === 0) throw new DecodeError('no-pixel-data', 'Pixel Data (7FE0,0010) is empty');
  const pm = readPixelModule(ds);
  if (frame < 0 || frame >= pm.numberOfFrames)
    throw new DecodeError('bad-geometry', `frame ${frame} out of range (${pm.numberOfFrames} frames)`);
  const frameBytes = pm.rows * pm.columns * pm.samplesPerPixel * (pm.bitsAllocated / 8);
  let source: FrameBytes;
  if (NATIVE_SYNTAXES.has(ts)) {
    source = { native: nativeFrame(values, frame, frameBytes) };
  } else if (ENCAPSULATED_SYNTAXES[ts]) {
    source = { encoded: encapsulatedFrame(values, frame, pm.numberOfFrames) };
    await initCodecs();
  } else {
    throw new DecodeError('unsupported-transfer-syntax', `transfer syntax ${ts} is not supported`);
  }
  return { image: frameImage(ts, pm, source), pixel: pm };
}

/** The bytes of one frame: native (stored values) or encoded (a compressed frame). */
export type FrameBytes = { native: Uint8Array; encoded?: undefined } | { encoded: Uint8Array; native?: undefined };

/** JPEG Lossless samples, reused from slice to slice (they are turned into modality values before frameImage returns). */
let samplesScratch = new Uint16Array(0);

/**
 * One frame's bytes → PixelImage, for both readers (the dcmjs parse above, and direct.ts). Synchronous: an
 * encapsulated frame other than the JPEG Lossless the TypeScript decoder takes needs initCodecs() done.
 * `into`: where the modality values go when it holds at least rows × columns values (else a new array).
 */
export function frameImage(ts: string, pm: PixelModule, source: FrameBytes, into?: Float32Array): PixelImage {
  const n = pm.rows * pm.columns;
  const spp = pm.samplesPerPixel;
  const frameBytes = n * spp * (pm.bitsAllocated / 8);
  let bytes: Uint8Array;
  let photometric = pm.photometricInterpretation;
  let planar = pm.planarConfiguration;
  let bigEndian = false;
  if (source.native) {
    bytes = source.native;
    bigEndian = ts === TransferSyntax.ExplicitVRBigEndian;
  } else {
    const params: FrameParams = {
      width: pm.columns,
      height: pm.rows,
      bitsAllocated: pm.bitsAllocated,
      bitsStored: pm.bitsStored,
      samplesPerPixel: spp,
      pixelRepresentation: pm.pixelRepresentation,
      planarConfiguration: planar,
      photometricInterpretation: photometric,
    };
    if (photometric === 'MONOCHROME1' || photometric === 'MONOCHROME2') {
      // JPEG Lossless CT: decoded straight to modality values (the same values as the steps below)
      const out = outputArray(n, into);
      if (decodeLosslessModality(ts, source.encoded, params, modalityOf(pm), out)) {
        return { width: pm.columns, height: pm.rows, data: out, kind: 'hu' };
      }
    }
    if (samplesScratch.length < n) samplesScratch = new Uint16Array(n);
    const dec = decodeFrame(ts, source.encoded, params, samplesScratch);
    if (dec.bytes.byteLength < frameBytes) {
      throw new DecodeError('codec-failed', `decoded frame has ${dec.bytes.byteLength} bytes, expected ${frameBytes}`);
    }
    bytes = dec.bytes;
    photometric = dec.photometricInterpretation.toUpperCase();
    planar = dec.planarConfiguration;
  }

  if (spp === 1) {
    if (photometric !== 'MONOCHROME1' && photometric !== 'MONOCHROME2') {
      throw new DecodeError('unsupported-image', `one-sample image with PhotometricInterpretation ${photometric} is not supported`);
    }
    const raw = rawSamples(bytes, pm.bitsAllocated, bigEndian, n);
    return { width: pm.columns, height: pm.rows, data: toModalityValues(raw, pm, n, into), kind: 'hu' };
  }
  if (spp === 3 && pm.bitsAllocated === 8) {
    return { width: pm.columns, height: pm.rows, data: toLuma(bytes, photometric, planar, n), kind: 'display' };
  }
  throw new DecodeError('unsupported-image', `${spp} samples per pixel at ${pm.bitsAllocated} bits is not supported`);
}
