import { open, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { hasPart10Preamble, PART10_META_START, parseFileMeta } from '../part10.js';
import { isWalkableSyntax } from '../uids.js';
import { HeaderScanner, type ScannedHeader } from './header-scanner.js';

/**
 * Read-only view of the spool written by the listener:
 * `<spool.dir>/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm` (temp files in `.tmp/`).
 * Used by the tracker (instances Redis missed) and the reconciler (series Redis lost).
 */

export interface SpooledSeries {
  studyInstanceUid: string;
  seriesInstanceUid: string;
  dir: string;
  /** Directory mtime (epoch ms): changes whenever an instance is renamed into it. */
  lastChangeMs: number;
}

export type SpooledInstanceHeader = ScannedHeader;

const UID_NAME = /^[0-9]+(\.[0-9]+)*$/;

export function seriesDirOf(spoolDir: string, studyUid: string, seriesUid: string): string {
  return join(spoolDir, studyUid, seriesUid);
}

async function subdirs(dir: string): Promise<string[]> {
  try {
    const entries = await readdir(dir, { withFileTypes: true });
    return entries.filter((e) => e.isDirectory() && UID_NAME.test(e.name)).map((e) => e.name);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

/** Every series directory in the spool (skips `.tmp` and anything not named like a UID). */
export async function listSpooledSeries(spoolDir: string): Promise<SpooledSeries[]> {
  const out: SpooledSeries[] = [];
  for (const study of await subdirs(spoolDir)) {
    for (const series of await subdirs(join(spoolDir, study))) {
      const dir = join(spoolDir, study, series);
      try {
        const st = await stat(dir);
        out.push({ studyInstanceUid: study, seriesInstanceUid: series, dir, lastChangeMs: st.mtimeMs });
      } catch {
        /* removed meanwhile */
      }
    }
  }
  return out;
}

/** SOP Instance UIDs of the instances in a series directory (from the file names); [] when absent. */
export async function listSeriesInstances(seriesDir: string): Promise<string[]> {
  try {
    const names = await readdir(seriesDir);
    return names
      .filter((n) => n.endsWith('.dcm'))
      .map((n) => n.slice(0, -4))
      .filter((n) => UID_NAME.test(n));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

export async function seriesDirLastChange(seriesDir: string): Promise<number | undefined> {
  try {
    return (await stat(seriesDir)).mtimeMs;
  } catch {
    return undefined;
  }
}

/** Dataset offset and transfer syntax from the file meta (part10.ts) at the head of a spooled file. */
function datasetStart(head: Buffer, atEof: boolean): { datasetOffset: number; transferSyntaxUid: string } {
  if (!hasPart10Preamble(head)) throw new Error('not a DICOM Part-10 file');
  const meta = parseFileMeta(head, PART10_META_START, atEof);
  if (!meta) throw new Error(`file meta group longer than ${head.length} bytes`);
  if (!meta.transferSyntaxUid) throw new Error('file meta without transfer syntax');
  return { datasetOffset: meta.end, transferSyntaxUid: meta.transferSyntaxUid };
}

/**
 * Reads the identifying and routing attributes of a spooled Part-10 file with the listener's
 * HeaderScanner, streaming only as far as the header goes (never the pixel data).
 */
export async function readInstanceHeader(path: string): Promise<SpooledInstanceHeader> {
  const fh = await open(path, 'r');
  try {
    const chunk = Buffer.alloc(64 * 1024);
    let { bytesRead } = await fh.read(chunk, 0, chunk.length, 0);
    const { datasetOffset, transferSyntaxUid } = datasetStart(chunk.subarray(0, bytesRead), bytesRead < chunk.length);
    if (!isWalkableSyntax(transferSyntaxUid)) {
      throw new Error(`transfer syntax ${transferSyntaxUid} not supported by the header reader`);
    }
    const scanner = new HeaderScanner(transferSyntaxUid);
    let filePos = bytesRead;
    if (bytesRead > datasetOffset) scanner.push(Buffer.from(chunk.subarray(datasetOffset, bytesRead)));
    while (!scanner.done && !scanner.error && bytesRead > 0) {
      ({ bytesRead } = await fh.read(chunk, 0, chunk.length, filePos));
      filePos += bytesRead;
      if (bytesRead > 0) scanner.push(Buffer.from(chunk.subarray(0, bytesRead)));
    }
    if (scanner.error) throw new Error(`${path}: ${scanner.error}`);
    const h = scanner.result();
    if (!h.sopInstanceUid || !h.studyInstanceUid || !h.seriesInstanceUid) throw new Error(`${path}: UIDs missing`);
    return h;
  } finally {
    await fh.close();
  }
}
