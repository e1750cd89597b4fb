import { open } from 'node:fs/promises';
import { HeaderScanner } from '../spool/header-scanner.js';
import { isWalkableSyntax, TransferSyntax } from '../uids.js';
import { type FileMeta, FileMetaError, parseFileMeta } from '../part10.js';

/** What a C-STORE SCU needs to know about a file before it sends it. */
export interface Part10Info {
  path: string;
  sopClassUid: string;
  sopInstanceUid: string;
  transferSyntaxUid: string;
  /** Byte offset of the dataset (after preamble, "DICM" and the group 0002 elements). */
  datasetOffset: number;
  /** Dataset length in bytes (file size − offset). */
  datasetLength: number;
  /** Whether the file had a file meta group (false: a raw dataset). */
  hasMeta: boolean;
}

export class NotDicomError extends Error {}

const HEAD_BYTES = 16 * 1024;
const SCAN_CHUNK = 64 * 1024;
/** A dataset whose SOP class/instance are not within this many bytes is not scanned further. */
const MAX_SCAN_BYTES = 4 * 1024 * 1024;
const VR_PATTERN = /^[A-Z]{2}$/;

type MetaFields = FileMeta;

/** The file meta group (part10.ts); undefined when more bytes are needed. */
function parseMeta(buf: Buffer, start: number, atEof: boolean): MetaFields | undefined {
  try {
    return parseFileMeta(buf, start, atEof);
  } catch (err) {
    if (err instanceof FileMetaError) throw new NotDicomError(err.message);
    throw err;
  }
}

/** Whether `buf` at `pos` plausibly starts a raw dataset; returns its encoding. */
function rawDatasetSyntax(buf: Buffer): string | undefined {
  if (buf.length < 8) return undefined;
  const group = buf.readUInt16LE(0);
  // Raw datasets start with group 0008 (or another low, even group).
  if (group % 2 !== 0 || group < 0x0004 || group > 0x0028) return undefined;
  const vr = buf.toString('latin1', 4, 6);
  if (VR_PATTERN.test(vr)) return TransferSyntax.ExplicitVRLittleEndian;
  const length = buf.readUInt32LE(4);
  return length < buf.length + (1 << 20) ? TransferSyntax.ImplicitVRLittleEndian : undefined;
}

/**
 * Reads a file's Part-10 header: transfer syntax, SOP class and instance (from the file meta, or
 * from the dataset with the streaming header scanner when the meta lacks them), and where the
 * dataset starts. Files without a meta group are raw datasets, implicit VR little endian (or
 * explicit when the VR bytes say so). Reads only the head of the file.
 */
export async function readPart10Info(path: string): Promise<Part10Info> {
  const fh = await open(path, 'r');
  try {
    const size = (await fh.stat()).size;
    const first = Buffer.allocUnsafe(Math.min(size, HEAD_BYTES));
    let head = first.subarray(0, (await fh.read(first, 0, first.length, 0)).bytesRead);
    let meta: MetaFields | undefined;
    let hasMeta = true;
    const metaStart =
      head.length >= 132 && head.toString('latin1', 128, 132) === 'DICM'
        ? 132
        : head.length >= 8 && head.readUInt16LE(0) === 0x0002
          ? 0
          : -1;
    if (metaStart >= 0) {
      meta = parseMeta(head, metaStart, head.length === size);
      while (!meta) {
        // A very large meta group: read more of the file (rare).
        const bigger = Buffer.allocUnsafe(Math.min(size, head.length * 4));
        head = bigger.subarray(0, (await fh.read(bigger, 0, bigger.length, 0)).bytesRead);
        meta = parseMeta(head, metaStart, head.length === size);
      }
      if (!meta.transferSyntaxUid) throw new NotDicomError('file meta has no TransferSyntaxUID');
    } else {
      const ts = rawDatasetSyntax(head);
      if (!ts) throw new NotDicomError('not a DICOM file (no "DICM" and no dataset at the start)');
      hasMeta = false;
      meta = { sopClassUid: '', sopInstanceUid: '', transferSyntaxUid: ts, end: 0 };
    }
    let { sopClassUid, sopInstanceUid } = meta;
    const { transferSyntaxUid, end } = meta;
    if (!sopClassUid || !sopInstanceUid) {
      const scanned = await scanDataset(fh, head, end, size, transferSyntaxUid);
      sopClassUid ||= scanned.sopClassUid;
      sopInstanceUid ||= scanned.sopInstanceUid;
    }
    if (!sopClassUid) throw new NotDicomError('no SOP Class UID in the file meta or the dataset');
    if (!sopInstanceUid) throw new NotDicomError('no SOP Instance UID in the file meta or the dataset');
    return { path, sopClassUid, sopInstanceUid, transferSyntaxUid, datasetOffset: end, datasetLength: size - end, hasMeta };
  } finally {
    await fh.close();
  }
}

async function scanDataset(
  fh: Awaited<ReturnType<typeof open>>,
  head: Buffer,
  offset: number,
  size: number,
  ts: string,
): Promise<{ sopClassUid: string; sopInstanceUid: string }> {
  if (!isWalkableSyntax(ts)) {
    throw new NotDicomError(`file meta lacks SOP Class/Instance UID and the dataset (${ts}) cannot be scanned`);
  }
  const scanner = new HeaderScanner(ts);
  scanner.push(head.subarray(offset));
  let pos = head.length;
  while (!scanner.done && !scanner.error && pos < size && pos - offset < MAX_SCAN_BYTES) {
    const chunk = Buffer.allocUnsafe(Math.min(SCAN_CHUNK, size - pos));
    const { bytesRead } = await fh.read(chunk, 0, chunk.length, pos);
    if (bytesRead === 0) break;
    scanner.push(chunk.subarray(0, bytesRead));
    pos += bytesRead;
  }
  if (scanner.error) throw new NotDicomError(`dataset unreadable: ${scanner.error}`);
  const r = scanner.result();
  return { sopClassUid: r.sopClassUid, sopInstanceUid: r.sopInstanceUid };
}
