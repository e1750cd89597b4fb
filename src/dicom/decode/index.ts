/**
 * DICOM file decoding for scoring: header fields for slice selection, and pixels as a PixelImage
 * (HU for CT). Every failure is a DecodeError with a code and a reason; nothing else escapes for
 * bad input.
 */
import { readFile } from 'node:fs/promises';
import type { PixelImage } from './pixels.js';
import { DecodeError } from './errors.js';
import { readHeader, type DicomHeader } from './header.js';
import { decodePixels, type PixelModule } from './pixels.js';
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

export async function readDicomHeaderFile(path: string): Promise<DicomHeader> {
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
