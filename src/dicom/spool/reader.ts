import { open, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
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
    return names.filter((n) => n.endsWith('.dcm')).map((n) => n.slice(0, -4)).filter((n) => UID_NAME.test(n));
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

/** Reads the file meta (group 0002, explicit VR LE): dataset offset and transfer syntax. */
function parseFileMeta(head: Buffer): { datasetOffset: number; transferSyntaxUid: string } {
  if (head.length < 144 || head.toString('latin1', 128, 132) !== 'DICM') throw new Error('not a DICOM Part-10 file');
  // (0002,0000) File Meta Information Group Length, UL, comes first.
  if (head.readUInt32LE(132) !== 0x00000002 || head.toString('latin1', 136, 138) !== 'UL') {
    throw new Error('file meta without group length');
  }
  const datasetOffset = 144 + head.readUInt32LE(140);
  let pos = 144;
  let transferSyntaxUid = '';
  while (pos + 8 <= Math.min(datasetOffset, head.length)) {
    const tag = ((head.readUInt16LE(pos) << 16) | head.readUInt16LE(pos + 2)) >>> 0;
    const vr = head.toString('latin1', pos + 4, pos + 6);
    const long = ['OB', 'OW', 'UN', 'SQ', 'UT', 'UC', 'UR'].includes(vr);
    const length = long ? head.readUInt32LE(pos + 8) : head.readUInt16LE(pos + 6);
    const valueAt = pos + (long ? 12 : 8);
    if (tag === 0x00020010) {
      transferSyntaxUid = head.toString('latin1', valueAt, valueAt + length).replace(/[\0 ]+$/, '');
      break;
    }
    pos = valueAt + length;
  }
  if (!transferSyntaxUid) throw new Error('file meta without transfer syntax');
  return { datasetOffset, transferSyntaxUid };
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
    const { datasetOffset, transferSyntaxUid } = parseFileMeta(chunk.subarray(0, bytesRead));
    if (transferSyntaxUid === '1.2.840.10008.1.2.1.99' || transferSyntaxUid === '1.2.840.10008.1.2.2') {
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
