/**
 * DICOM file decoding for scoring: header fields for slice selection, and pixels as a PixelImage
 * (HU for CT). Every failure is a DecodeError with a code and a reason; nothing else escapes for
 * bad input.
 */
import { readFileSync } from 'node:fs';
import { type FileHandle, open, readFile } from 'node:fs/promises';
import type { PixelImage } from './pixels.js';
import { codecsReady, ENCAPSULATED_SYNTAXES, initCodecs, NATIVE_SYNTAXES } from './codecs.js';
import { readDirect, type DirectImage } from './direct.js';
import { readHeaderDirect } from './direct-header.js';
import { DecodeError, isDecodeError } from './errors.js';
import { imageSpacing, readHeader, type DicomHeader } from './header.js';
import { decodePixels, frameImage, type FrameBytes, type PixelModule, readPixelModule } from './pixels.js';
import { parseDicom } from './read.js';

export { DecodeError, isDecodeError, type DecodeErrorCode } from './errors.js';
export type { DicomHeader } from './header.js';
export type { PixelImage, PixelModule } from './pixels.js';
export { initCodecs, ENCAPSULATED_SYNTAXES, NATIVE_SYNTAXES } from './codecs.js';
export { looksLikeDicom, parseDicom } from './read.js';

async function readBytes(path: string): Promise<Uint8Array> {
  try {
    return await readFile(path);
  } catch (err) {
    throw new DecodeError('io-error', `cannot read file: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
}

/** Header only (stops before Pixel Data). */
export function decodeDicomHeader(buf: Uint8Array): DicomHeader {
  return readHeader(parseDicom(buf, { headerOnly: true }));
}

/** How much of a file discovery reads first for its header (doubled while Pixel Data is not reached). */
export const HEADER_CHUNK_BYTES = 32 * 1024;

/** The first bytes of a file, as read by the caller: `eof` when they are all of it. */
export interface FileHead {
  bytes: Uint8Array;
  eof: boolean;
}

/** Reads `length` bytes of an open file from `position` (fewer at its end). */
async function readAt(fh: FileHandle, position: number, length: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length);
  let n = 0;
  while (n < length) {
    const { bytesRead } = await fh.read(buf, n, length - n, position + n);
    if (bytesRead === 0) break;
    n += bytesRead;
  }
  return buf.subarray(0, n);
}

/** The header read directly from the first bytes of the file (more of them as needed), or null (dcmjs's turn). */
async function directHeaderFile(path: string, head?: FileHead): Promise<DicomHeader | null> {
  let bytes = head?.bytes ?? new Uint8Array(0);
  let eof = head?.eof ?? false;
  let fh: FileHandle | undefined;
  try {
    for (;;) {
      if (bytes.length > 0 || eof) {
        const h = readHeaderDirect(bytes, eof);
        if (h !== 'more') return h;
      }
      fh ??= await open(path, 'r');
      const want = Math.max(HEADER_CHUNK_BYTES, bytes.length);
      const more = await readAt(fh, bytes.length, want);
      eof = more.length < want;
      bytes = bytes.length ? Buffer.concat([bytes, more]) : more;
    }
  } catch {
    return null; // a read error: the full read below reports it as it always did
  } finally {
    await fh?.close().catch(() => undefined);
  }
}

/**
 * The header of a DICOM file. A plain Part 10 file is read only up to its Pixel Data (direct-header.ts: the first
 * HEADER_CHUNK_BYTES, more where the header is longer) and gives the same DicomHeader dcmjs gives; anything else is
 * read in full and parsed with dcmjs, with the errors it always had. `head`: the first bytes, already read.
 */
export async function readDicomHeaderFile(path: string, head?: FileHead): Promise<DicomHeader> {
  const direct = await directHeaderFile(path, head);
  if (direct) return direct;
  return decodeDicomHeader(await readBytes(path));
}

/** The header as dcmjs reads it from the whole file (the reference readDicomHeaderFile is checked against). */
export async function readDicomHeaderFileFull(path: string): Promise<DicomHeader> {
  return decodeDicomHeader(await readBytes(path));
}

export interface DecodedDicom {
  header: DicomHeader;
  image: PixelImage;
  pixel: PixelModule;
}

export async function decodeDicom(buf: Uint8Array, frame = 0): Promise<DecodedDicom> {
  const parsed = parseDicom(buf);
  const header = readHeader(parsed);
  const { image, pixel } = await decodePixels(parsed, frame);
  return { header, image: { ...image, pixelSpacing: header.pixelSpacing, sliceThicknessMm: header.sliceThickness }, pixel };
}

export async function decodeDicomFile(path: string, frame = 0): Promise<DecodedDicom> {
  return decodeDicom(await readBytes(path), frame);
}

export interface ImageOptions {
  /** Where the modality values go (rows × columns of them, or more); a new array when absent or too small. */
  into?: Float32Array;
}

/** JPEG Lossless frames the TypeScript decoder may take without the WASM codecs. */
const TS_LOSSLESS = new Set(['1.2.840.10008.1.2.4.57', '1.2.840.10008.1.2.4.70']);

/** Frame 0 of a directly read file; null when something about it is left to the full parse. */
async function directImage(d: DirectImage, opts: ImageOptions): Promise<PixelImage | null> {
  const ts = d.transferSyntaxUid;
  const pm = readPixelModule(d.dataset);
  let source: FrameBytes;
  if (d.native) {
    if (!NATIVE_SYNTAXES.has(ts)) return null;
    const frameBytes = pm.rows * pm.columns * pm.samplesPerPixel * (pm.bitsAllocated / 8);
    if (d.native.byteLength < frameBytes) return null;
    source = { native: d.native.subarray(0, frameBytes) };
  } else {
    const f = d.fragments;
    if (!f?.length || !ENCAPSULATED_SYNTAXES[ts] || pm.numberOfFrames !== 1) return null;
    source = { encoded: f.length === 1 ? (f[0] as Uint8Array) : Buffer.concat(f) };
    if (!codecsReady() && !(TS_LOSSLESS.has(ts) && pm.samplesPerPixel === 1 && pm.bitsAllocated === 16)) await initCodecs();
  }
  const image = frameImage(ts, pm, source, opts.into);
  const { pixelSpacing, sliceThickness } = imageSpacing(d.dataset);
  return { ...image, pixelSpacing, sliceThicknessMm: sliceThickness };
}

/**
 * Frame 0 of a DICOM file as the scoring path wants it: modality values (or luma), pixel spacing, slice
 * thickness; the same image as decodeDicom(buf).image. A plain Part 10 file is read directly (direct.ts: only the
 * attributes the image needs, no dcmjs parse); anything else, and any file that fails that way, goes through
 * decodeDicom, so every error is the one it always was.
 */
export async function decodeDicomImage(buf: Uint8Array, opts: ImageOptions = {}): Promise<PixelImage> {
  const d = readDirect(buf);
  if (d) {
    try {
      const img = await directImage(d, opts);
      if (img) return img;
    } catch (err) {
      if (!isDecodeError(err)) throw err;
    }
  }
  return (await decodeDicom(buf)).image;
}

/**
 * decodeDicomImage of a file, read synchronously: the scoring path runs in the prepare pool's threads (one slice at
 * a time each), where a synchronous read costs a fraction of the CPU of fs/promises' open, stat, read and close.
 */
export async function decodeDicomImageFile(path: string, opts: ImageOptions = {}): Promise<PixelImage> {
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch (err) {
    throw new DecodeError('io-error', `cannot read file: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
  return decodeDicomImage(buf, opts);
}
