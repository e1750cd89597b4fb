import * as fs from 'node:fs';
import { join } from 'node:path';

/**
 * The spool layout (read by the reconciler in src/queue, keep it stable):
 *   <spool>/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm
 *   <spool>/.tmp/…            temp files of transfers in progress (same file system)
 *   <spool>/results/<StudyInstanceUID>/<SeriesInstanceUID>/<hash16>-<modelVersion>/…
 *                             result objects (SR, SC) of one scored content of a series
 * UIDs are validated before they become path components.
 */
export const TMP_DIR_NAME = '.tmp';
export const RESULTS_DIR_NAME = 'results';

/** Folder of the result objects of one (series, content hash, model version). */
export function resultsDirFor(spoolDir: string, studyUid: string, seriesUid: string, instancesHash: string, modelVersion: string): string {
  return join(spoolDir, RESULTS_DIR_NAME, studyUid, seriesUid, `${instancesHash.slice(0, 16)}-${modelVersion.replace(/[^A-Za-z0-9._-]/g, '_')}`);
}

export function spoolPathFor(spoolDir: string, studyUid: string, seriesUid: string, sopInstanceUid: string): string {
  return join(spoolDir, studyUid, seriesUid, `${sopInstanceUid}.dcm`);
}

export function spoolTmpDir(spoolDir: string): string {
  return join(spoolDir, TMP_DIR_NAME);
}

/** fsync a directory so that entries created or renamed in it survive a crash. */
export async function fsyncDir(dir: string): Promise<void> {
  const fd = fs.openSync(dir, 'r');
  try {
    await new Promise<void>((resolve, reject) => fs.fsync(fd, (err) => (err ? reject(err) : resolve())));
  } finally {
    fs.closeSync(fd);
  }
}

/** Creates the spool and its temp directory; removes temp files older than `staleMs` (crash leftovers). */
export async function prepareSpool(spoolDir: string, staleMs = 3_600_000): Promise<void> {
  const tmp = spoolTmpDir(spoolDir);
  await fs.promises.mkdir(tmp, { recursive: true });
  const now = Date.now();
  for (const name of await fs.promises.readdir(tmp)) {
    if (!name.endsWith('.part')) continue;
    const p = join(tmp, name);
    try {
      const st = await fs.promises.stat(p);
      if (now - st.mtimeMs > staleMs) await fs.promises.unlink(p);
    } catch {
      // Another listener may have finished with it meanwhile.
    }
  }
}

/** Percentage of the file system holding `dir` in use, as `df` computes it. */
export function diskUsagePercent(dir: string): number {
  const s = fs.statfsSync(dir);
  const used = s.blocks - s.bfree;
  const total = used + s.bavail;
  return total > 0 ? (used / total) * 100 : 0;
}

/** Disk-usage check for the watermark, cached for `ttlMs` so it costs nothing per instance. */
export class DiskWatermark {
  private checkedAt = 0;
  private percent = 0;

  constructor(private readonly dir: string, private readonly maxPercent: number, private readonly ttlMs = 1000) {}

  /** Usage in percent when above the watermark, else undefined. */
  exceeded(): number | undefined {
    const now = Date.now();
    if (now - this.checkedAt >= this.ttlMs) {
      this.percent = diskUsagePercent(this.dir);
      this.checkedAt = now;
    }
    return this.percent > this.maxPercent ? this.percent : undefined;
  }
}
