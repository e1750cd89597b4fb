/** Why a DICOM file could not be read or its pixels decoded. Stable codes; the message has the detail. */
export type DecodeErrorCode =
  | 'io-error'
  | 'not-dicom'
  | 'parse-failed'
  | 'no-pixel-data'
  | 'unsupported-transfer-syntax'
  | 'unsupported-image'
  | 'bad-geometry'
  | 'pixel-data-too-short'
  | 'codec-failed';

/** Thrown for bad or undecodable input; never for a bug of ours. */
export class DecodeError extends Error {
  override name = 'DecodeError';
  constructor(
    readonly code: DecodeErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export const isDecodeError = (e: unknown): e is DecodeError => e instanceof DecodeError;
