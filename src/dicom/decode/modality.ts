/**
 * Stored value → modality value (PS3.3 C.7.6.3.1.2 and C.11.1): the stored value masked to BitsStored at HighBit,
 * sign-extended per PixelRepresentation, times RescaleSlope plus RescaleIntercept (Hounsfield units for CT). The
 * one definition: pixels.ts applies it to decoded frames, the JPEG Lossless decoder as it reconstructs samples.
 */

export interface Modality {
  /** HighBit + 1 − BitsStored. */
  shift: number;
  bitsStored: number;
  signed: boolean;
  slope: number;
  intercept: number;
}

/**
 * The integer form applies (the loops below): raw samples are unsigned < 2^32, so floor(x / 2^shift) = x >>> shift
 * and % 2^bitsStored = & (2^bitsStored − 1). Otherwise pixels.ts's general loop runs.
 */
export function integerModality(m: Modality): boolean {
  return m.bitsStored < 32 && m.shift >= 0 && m.shift < 32;
}

// One loop per sample array type, each monomorphic: this runs once per pixel of every slice scored.

export function modalityU16(raw: Uint16Array, out: Float32Array, n: number, m: Modality): void {
  const range = 2 ** m.bitsStored;
  const half = range / 2;
  const mask = range - 1;
  const shift = m.shift;
  const slope = m.slope;
  const icpt = m.intercept;
  if (!m.signed) {
    for (let i = 0; i < n; i++) out[i] = (((raw[i] as number) >>> shift) & mask) * slope + icpt;
    return;
  }
  for (let i = 0; i < n; i++) {
    let v = ((raw[i] as number) >>> shift) & mask;
    if (v >= half) v -= range;
    out[i] = v * slope + icpt;
  }
}

/** 8- and 32-bit samples (rare in CT): one loop for both. */
export function modalityU8or32(raw: Uint8Array | Uint32Array, out: Float32Array, n: number, m: Modality): void {
  const range = 2 ** m.bitsStored;
  const half = range / 2;
  const mask = range - 1;
  for (let i = 0; i < n; i++) {
    let v = ((raw[i] as number) >>> m.shift) & mask;
    if (m.signed && v >= half) v -= range;
    out[i] = v * m.slope + m.intercept;
  }
}
