/**
 * multipart/related (RFC 2387) as STOW-RS requests carry it (PS3.18 8.6.1.2): the request's
 * Content-Type names the boundary and `type="application/dicom"`; each part has its own headers and
 * one Part-10 instance as its body. Parsed from the buffered body; every problem is a StowInputError
 * with the HTTP status to answer (400 broken body, 415 wrong media type).
 */

export class StowInputError extends Error {
  override name = 'StowInputError';
  constructor(
    readonly statusCode: 400 | 413 | 415,
    message: string,
  ) {
    super(message);
  }
}

export interface MultipartPart {
  /** 1-based position in the request (for messages). */
  index: number;
  headers: Record<string, string>;
  body: Buffer;
}

/** Media type and parameters of a Content-Type header (lower-cased names, unquoted values). */
export function parseContentType(header: string | undefined): { mediaType: string; params: Record<string, string> } {
  const [type = '', ...rest] = (header ?? '').split(';');
  const params: Record<string, string> = {};
  for (const p of rest) {
    const eq = p.indexOf('=');
    if (eq < 0) continue;
    const name = p.slice(0, eq).trim().toLowerCase();
    let value = p.slice(eq + 1).trim();
    if (value.startsWith('"') && value.endsWith('"') && value.length >= 2) value = value.slice(1, -1);
    params[name] = value;
  }
  return { mediaType: type.trim().toLowerCase(), params };
}

/** The boundary of a STOW-RS request, after checking its media type (415) and parameters (400). */
export function stowBoundary(contentType: string | undefined): string {
  const { mediaType, params } = parseContentType(contentType);
  if (mediaType !== 'multipart/related') {
    throw new StowInputError(415, `Content-Type must be multipart/related; type="application/dicom" (got ${mediaType || 'none'})`);
  }
  if (params.type !== undefined && params.type.toLowerCase() !== 'application/dicom') {
    throw new StowInputError(
      415,
      `only type="application/dicom" is accepted (got type="${params.type}"); metadata + bulk data STOW is not supported`,
    );
  }
  const boundary = params.boundary;
  // RFC 2046 allows 70 characters; some clients use longer ones, so only absurd lengths are refused.
  if (!boundary || boundary.length > 200)
    throw new StowInputError(
      400,
      `multipart/related without a valid boundary parameter (Content-Type: ${String(contentType).slice(0, 200)})`,
    );
  return boundary;
}

/** Splits the body into its parts; a missing or unterminated boundary is a broken body (400). */
export function parseMultipartRelated(body: Buffer, boundary: string): MultipartPart[] {
  const delimiter = Buffer.from(`--${boundary}`);
  let pos = body.indexOf(delimiter);
  if (pos < 0) throw new StowInputError(400, 'broken multipart body: the boundary does not occur in it');
  const parts: MultipartPart[] = [];
  for (;;) {
    pos += delimiter.length;
    // "--" after the delimiter closes the body.
    if (body[pos] === 0x2d && body[pos + 1] === 0x2d) break;
    // Transport padding, then CRLF.
    while (body[pos] === 0x20 || body[pos] === 0x09) pos++;
    if (body[pos] !== 0x0d || body[pos + 1] !== 0x0a)
      throw new StowInputError(400, `broken multipart body: no line break after boundary ${parts.length + 1}`);
    pos += 2;
    const headerEnd = body.indexOf('\r\n\r\n', pos);
    const next = body.indexOf(Buffer.concat([Buffer.from('\r\n'), delimiter]), pos);
    if (next < 0) throw new StowInputError(400, `broken multipart body: part ${parts.length + 1} is not closed by a boundary`);
    const headers: Record<string, string> = {};
    let bodyStart: number;
    if (body[pos] === 0x0d && body[pos + 1] === 0x0a) {
      bodyStart = pos + 2; // no headers
    } else {
      if (headerEnd < 0 || headerEnd > next)
        throw new StowInputError(400, `broken multipart body: part ${parts.length + 1} has no end of headers`);
      for (const line of body.subarray(pos, headerEnd).toString('latin1').split('\r\n')) {
        const colon = line.indexOf(':');
        if (colon <= 0) throw new StowInputError(400, `broken multipart body: bad header line in part ${parts.length + 1}`);
        headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
      bodyStart = headerEnd + 4;
    }
    parts.push({ index: parts.length + 1, headers, body: body.subarray(bodyStart, next) });
    pos = next + 2;
  }
  if (parts.length === 0) throw new StowInputError(400, 'multipart body holds no parts');
  return parts;
}

export interface Part10Meta {
  sopClassUid: string;
  sopInstanceUid: string;
  transferSyntaxUid: string;
  /** Offset of the dataset (after the file meta group). */
  datasetOffset: number;
}

/** The file meta group of a Part-10 instance (400 when the part is not one). */
export function readPart10Meta(buf: Buffer, index: number): Part10Meta {
  if (buf.length < 132 + 12 || buf.toString('latin1', 128, 132) !== 'DICM') {
    throw new StowInputError(400, `part ${index} is not a DICOM Part-10 file (no "DICM" after the 128-byte preamble)`);
  }
  let p = 132;
  const values: Record<number, string> = {};
  while (p + 8 <= buf.length && buf.readUInt16LE(p) === 0x0002) {
    const elem = buf.readUInt16LE(p + 2);
    const vr = buf.toString('latin1', p + 4, p + 6);
    let len: number;
    let at: number;
    if (['OB', 'OW', 'OF', 'SQ', 'UT', 'UN'].includes(vr)) {
      len = buf.readUInt32LE(p + 8);
      at = p + 12;
    } else {
      len = buf.readUInt16LE(p + 6);
      at = p + 8;
    }
    if (at + len > buf.length) throw new StowInputError(400, `part ${index}: file meta information is cut short`);
    if (vr === 'UI') values[elem] = buf.toString('latin1', at, at + len).replace(/[\0 ]+$/, '');
    p = at + len;
  }
  const need = (elem: number, what: string): string => {
    const v = values[elem];
    if (!v || !/^[0-9]+(\.[0-9]+)*$/.test(v) || v.length > 64)
      throw new StowInputError(400, `part ${index}: file meta information has no valid ${what}`);
    return v;
  };
  return {
    sopClassUid: need(0x0002, 'Media Storage SOP Class UID'),
    sopInstanceUid: need(0x0003, 'Media Storage SOP Instance UID'),
    transferSyntaxUid: need(0x0010, 'Transfer Syntax UID'),
    datasetOffset: p,
  };
}
