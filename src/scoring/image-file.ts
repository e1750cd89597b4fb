/**
 * PNG/JPEG slices (the COVID-CT images and the like): decoded with sharp (libvips) to 8-bit gray.
 * Colour is reduced to ITU-R 601 luma with PIL's integer formula, which is how the 8-bit data
 * sets were made; the result is a SliceImage of kind 'display' (0..255).
 */
import sharp, { type OutputInfo } from 'sharp';
import type { SliceImage } from '../model/preprocess.js';

export type ImageFormat = 'png' | 'jpeg';

/** Largest image we decode (pixels). */
export const MAX_IMAGE_PIXELS = 8192 * 8192;

export function sniffImage(head: Uint8Array): ImageFormat | null {
  if (
    head.length >= 8 &&
    head[0] === 0x89 &&
    head[1] === 0x50 &&
    head[2] === 0x4e &&
    head[3] === 0x47 &&
    head[4] === 0x0d &&
    head[5] === 0x0a &&
    head[6] === 0x1a &&
    head[7] === 0x0a
  )
    return 'png';
  if (head.length >= 3 && head[0] === 0xff && head[1] === 0xd8 && head[2] === 0xff) return 'jpeg';
  return null;
}

/** Thrown when an image file cannot be decoded. */
export class ImageDecodeError extends Error {
  override name = 'ImageDecodeError';
}

export async function decodeImageFile(file: string): Promise<SliceImage> {
  let raw: { data: Buffer; info: OutputInfo };
  try {
    raw = await sharp(file, { limitInputPixels: MAX_IMAGE_PIXELS, failOn: 'error' })
      .removeAlpha()
      .raw()
      .toBuffer({ resolveWithObject: true });
  } catch (err) {
    throw new ImageDecodeError(`cannot decode image: ${(err as Error).message}`);
  }
  const { width, height, channels } = raw.info;
  const n = width * height;
  const src = raw.data;
  const data = new Float32Array(n);
  if (channels === 1) {
    for (let i = 0; i < n; i++) data[i] = src[i] as number;
  } else if (channels >= 3) {
    for (let i = 0; i < n; i++) {
      const o = i * channels;
      data[i] = ((src[o] as number) * 19595 + (src[o + 1] as number) * 38470 + (src[o + 2] as number) * 7471 + 0x8000) >> 16;
    }
  } else {
    throw new ImageDecodeError(`unexpected ${channels}-channel image`);
  }
  return { width, height, data, kind: 'display' };
}
