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
  return join(
    spoolDir,
    RESULTS_DIR_NAME,
    studyUid,
    seriesUid,
    `${instancesHash.slice(0, 16)}-${modelVersion.replace(/[^A-Za-z0-9._-]/g, '_')}`,
  );
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

/** Bytes in use and in total on the file system holding `dir`, as `df` counts them. */
function diskUsage(dir: string): { used: number; total: number } {
  const s = fs.statfsSync(dir);
  const used = (s.blocks - s.bfree) * s.bsize;
  return { used, total: used + s.bavail * s.bsize };
}

/** Percentage of the file system holding `dir` in use, as `df` computes it. */
export function diskUsagePercent(dir: string): number {
  const { used, total } = diskUsage(dir);
  return total > 0 ? (used / total) * 100 : 0;
}

/**
 * Disk-usage check for the watermark. The file system is asked at most every `ttlMs` (so the
 * check costs nothing per instance); in between, every byte the writers report with
 * {@link note} is added to the last answer, so a burst of instances cannot carry the spool past
 * the watermark before the next look.
 */
export class DiskWatermark {
  private checkedAt = -Infinity;
  private used = 0;
  private total = 0;
  /** Bytes written since the file system was last asked. */
  private written = 0;

  constructor(
    private readonly dir: string,
    readonly maxPercent: number,
    private readonly ttlMs = 1000,
  ) {}

  private percent(): number {
    return this.total > 0 ? ((this.used + this.written) / this.total) * 100 : 0;
  }

  private refresh(): void {
    const now = Date.now();
    if (now - this.checkedAt < this.ttlMs) return;
    ({ used: this.used, total: this.total } = diskUsage(this.dir));
    this.written = 0;
    this.checkedAt = now;
  }

  /** Usage in percent when above the watermark, else undefined. */
  exceeded(): number | undefined {
    this.refresh();
    const p = this.percent();
    return p > this.maxPercent ? p : undefined;
  }

  /**
   * `bytes` are about to be written: counts them, and answers the usage in percent when writing
   * them would go above the watermark (they are then not counted), else undefined.
   */
  note(bytes: number): number | undefined {
    this.refresh();
    this.written += bytes;
    const p = this.percent();
    if (p <= this.maxPercent) return undefined;
    this.written -= bytes;
    return p;
  }
}
