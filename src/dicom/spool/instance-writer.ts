import * as fs from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { isValidUid } from '../uids.js';
import { buildPart10Header, type FileMetaFields } from './file-meta.js';
import { HeaderScanner, type ScanLimits, type ScannedHeader } from './header-scanner.js';
import { fsyncDir, spoolPathFor, type DiskWatermark } from './spool-layout.js';

/** C-STORE status codes the listener answers with. */
export const StoreStatus = {
  Success: 0x0000,
  OutOfResources: 0xa700,
  /** Data Set does not match SOP Class (its SOP Class UID is not the one the C-STORE names). */
  DataSetDoesNotMatchSopClass: 0xa900,
  CannotUnderstand: 0xc000,
  ProcessingFailure: 0x0110,
} as const;

export type StoreOutcome =
  | { ok: true; path: string; isNew: boolean; header: ScannedHeader; bytes: number }
  | { ok: false; status: number; reason: string; bytes: number };

export interface InstanceWriterOptions {
  spoolDir: string;
  tmpDir: string;
  fsync: boolean;
  meta: FileMetaFields;
  /** When set, the instance is not stored: its bytes are read and dropped, and this is the answer. */
  refuse?: { status: number; reason: string };
  /** An empty temp file opened ahead of time (see {@link openTempFile}); else one is opened now. */
  tempFile?: TempFile;
  /** Bounds on nesting and items (default DEFAULT_SCAN_LIMITS). */
  limits?: ScanLimits;
  /** Every byte written is counted against it; crossing it mid-transfer refuses the instance (0xA700). */
  watermark?: DiskWatermark;
}

/** An open, empty temp file in the spool's temp directory. */
export interface TempFile {
  fd: number;
  path: string;
}

function tempName(tmpDir: string): string {
  return join(tmpDir, `${Date.now().toString(36)}-${process.pid}-${randomBytes(6).toString('hex')}.part`);
}

/**
 * Opens an empty temp file ahead of time. Called right after a C-STORE response went out, while
 * the peer prepares its next instance, so that open() is off the critical path.
 */
export function openTempFile(tmpDir: string): TempFile {
  const path = tempName(tmpDir);
  return { fd: fs.openSync(path, 'w', 0o644), path };
}

/** Closes and removes an unused temp file (synchronously: nothing is left once this returns). */
export function discardTempFile(t: TempFile): void {
  try {
    fs.closeSync(t.fd);
  } catch {
    // already closed
  }
  try {
    fs.unlinkSync(t.path);
  } catch {
    // already gone
  }
}

/**
 * Streams one received C-STORE dataset into the spool as a Part-10 file: the file meta header
 * first, then every P-DATA fragment as it arrives, into a temp file in `<spool>/.tmp`. Once the
 * dataset is complete: fdatasync, hard-link into `<spool>/<study>/<series>/<sop>.dcm` (an atomic
 * "create if absent": an instance already there is never rewritten), fsync that directory.
 * `outcome` settles after that, so the C-STORE response can wait for it; the temp name is closed
 * and unlinked right after (`released`).
 *
 * Every byte also goes through the validating {@link HeaderScanner}: a dataset that is cut short,
 * declares lengths it does not hold, nests too deep or has too many items is answered 0xC000 and
 * never reaches its final name (as soon as the walk fails, the temp file is dropped and the rest
 * of the bytes is only counted). A dataset whose SOP Class UID differs from the C-STORE's is
 * answered 0xA900.
 *
 * Writes go straight into the page cache with synchronous calls (like DCMTK's storescp): a
 * fragment is never held in memory after write() returns, and no thread-pool round trip is paid
 * per fragment. Only the fsyncs (which wait for the disk) run asynchronously.
 */
export class InstanceWriter {
  readonly tmpPath: string;
  readonly outcome: Promise<StoreOutcome>;
  /** Settles once the writer holds no file descriptor and no temp name any more (after `outcome`). */
  readonly released: Promise<void>;
  private markReleased!: () => void;
  /** Dataset bytes received (without preamble and file meta). */
  bytes = 0;
  private fd: number | null = null;
  private readonly scanner: HeaderScanner;
  private readonly opts: InstanceWriterOptions;
  private resolveOutcome!: (o: StoreOutcome) => void;
  private settled = false;
  private ended = false;
  private error: NodeJS.ErrnoException | undefined;
  /** Set when the header shows this SOP instance is already in the spool: the rest is not written. */
  private duplicateOf: string | undefined;
  /** Set when the spool crossed its watermark during this transfer: the rest is not written. */
  private refusedMidway: { status: number; reason: string } | undefined;
  private duplicateChecked = false;

  constructor(opts: InstanceWriterOptions) {
    this.opts = opts;
    this.tmpPath = opts.tempFile?.path ?? tempName(opts.tmpDir);
    this.scanner = new HeaderScanner(opts.meta.transferSyntaxUid, { validate: true, ...(opts.limits ? { limits: opts.limits } : {}) });
    this.outcome = new Promise<StoreOutcome>((resolve) => {
      this.resolveOutcome = resolve;
    });
    this.released = new Promise<void>((resolve) => {
      this.markReleased = resolve;
    });
    if (opts.refuse) {
      if (opts.tempFile) discardTempFile(opts.tempFile);
      return;
    }
    try {
      try {
        this.fd = opts.tempFile?.fd ?? fs.openSync(this.tmpPath, 'w', 0o644);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        // The temp directory went away (spool cleaned up under us): make it again.
        fs.mkdirSync(opts.tmpDir, { recursive: true });
        this.fd = fs.openSync(this.tmpPath, 'w', 0o644);
      }
      const header = buildPart10Header(opts.meta);
      opts.watermark?.note(header.length);
      writeAllSync(this.fd, header);
    } catch (err) {
      this.fail(err);
    }
  }

  /** Transfer syntax of the dataset (the accepted one of its presentation context). */
  get transferSyntaxUid(): string {
    return this.opts.meta.transferSyntaxUid;
  }

  get finished(): boolean {
    return this.ended || this.settled;
  }

  write(chunk: Buffer): void {
    if (this.finished) return;
    this.bytes += chunk.length;
    this.scanner.push(chunk);
    if (!this.duplicateChecked && this.scanner.done) this.checkDuplicate();
    if (this.fd === null || this.error || this.refusedMidway) return;
    if (this.scanner.error) {
      // Not a dataset that can be stored: drop what was written, count the rest.
      this.dropTemp();
      return;
    }
    const over = this.opts.watermark?.note(chunk.length);
    if (over !== undefined) {
      this.refusedMidway = {
        status: StoreStatus.OutOfResources,
        reason: `spool disk ${over.toFixed(1)}% used during the transfer, above ${this.opts.watermark!.maxPercent}%`,
      };
      this.dropTemp();
      return;
    }
    try {
      writeAllSync(this.fd, chunk);
    } catch (err) {
      this.fail(err);
    }
  }

  /** Closes and unlinks the temp file while the transfer goes on (the bytes still arriving are only counted). */
  private dropTemp(): void {
    if (this.fd === null) return;
    try {
      fs.closeSync(this.fd);
    } catch {
      // already closed
    }
    this.fd = null;
    try {
      fs.unlinkSync(this.tmpPath);
    } catch {
      // already gone
    }
  }

  /**
   * As soon as the header names Study and Series: if this SOP instance is already spooled, stop
   * writing (the instance is stored once; the bytes still arriving are only counted and scanned).
   */
  private checkDuplicate(): void {
    this.duplicateChecked = true;
    if (this.opts.refuse) return;
    const h = this.scanner.result();
    if (!isValidUid(h.studyInstanceUid) || !isValidUid(h.seriesInstanceUid)) return;
    const path = spoolPathFor(this.opts.spoolDir, h.studyInstanceUid, h.seriesInstanceUid, this.opts.meta.sopInstanceUid);
    if (!fs.existsSync(path)) return;
    this.duplicateOf = path;
    this.dropTemp();
  }

  /** The dataset is complete: make it durable and visible, then settle `outcome`. */
  end(): void {
    if (this.finished) return;
    this.ended = true;
    this.commit().then(this.settle.bind(this), (err: unknown) => {
      this.removeTemp();
      this.settle({ ok: false, status: statusForError(err), reason: `spool: ${(err as Error).message}`, bytes: this.bytes });
    });
  }

  /** Stops the transfer (association gone): closes and removes the temp file. */
  abort(reason: string): void {
    if (this.finished) return;
    this.ended = true;
    this.removeTemp();
    this.settle({ ok: false, status: StoreStatus.ProcessingFailure, reason, bytes: this.bytes });
  }

  private fail(err: unknown): void {
    this.error = err as NodeJS.ErrnoException;
  }

  private removeTemp(): void {
    if (this.fd !== null) {
      try {
        fs.closeSync(this.fd);
      } catch {
        // already closed
      }
      this.fd = null;
    }
    if (!this.opts.refuse) {
      try {
        fs.unlinkSync(this.tmpPath);
      } catch {
        // never created or already gone
      }
    }
    this.markReleased();
  }

  private settle(o: StoreOutcome): void {
    if (this.settled) return;
    this.settled = true;
    this.resolveOutcome(o);
  }

  private async commit(): Promise<StoreOutcome> {
    const bytes = this.bytes;
    if (this.opts.refuse) {
      this.markReleased();
      return { ok: false, ...this.opts.refuse, bytes };
    }
    if (this.error) throw this.error;
    const header = this.scanner.result();
    const { meta } = this.opts;
    const fail = (reason: string, status: number = StoreStatus.CannotUnderstand): StoreOutcome => {
      this.removeTemp();
      return { ok: false, status, reason, bytes };
    };
    if (this.refusedMidway) return fail(this.refusedMidway.reason, this.refusedMidway.status);
    const problem = this.scanner.incomplete();
    if (problem !== undefined) return fail(`dataset cannot be read: ${problem}`);
    if (!isValidUid(header.studyInstanceUid)) return fail('invalid or missing StudyInstanceUID');
    if (!isValidUid(header.seriesInstanceUid)) return fail('invalid or missing SeriesInstanceUID');
    if (header.sopInstanceUid !== '' && header.sopInstanceUid !== meta.sopInstanceUid) {
      return fail('SOPInstanceUID in the dataset differs from the C-STORE request');
    }
    if (header.sopClassUid !== '' && header.sopClassUid !== meta.sopClassUid) {
      return fail(
        `SOPClassUID in the dataset (${header.sopClassUid}) differs from the C-STORE request`,
        StoreStatus.DataSetDoesNotMatchSopClass,
      );
    }
    header.sopInstanceUid = meta.sopInstanceUid;
    header.sopClassUid = meta.sopClassUid;
    if (this.duplicateOf !== undefined) {
      this.markReleased();
      return { ok: true, path: this.duplicateOf, isNew: false, header, bytes };
    }
    const fd = this.fd!;
    if (this.opts.fsync) await fdatasyncAsync(fd);
    const path = spoolPathFor(this.opts.spoolDir, header.studyInstanceUid, header.seriesInstanceUid, meta.sopInstanceUid);
    // The data is complete (and synced): the final name may appear before the temp fd is closed.
    const isNew = await linkNoReplace(this.tmpPath, path, this.opts.spoolDir, this.opts.fsync);
    // Off the critical path: close the temp fd and drop the temp name once the answer is out.
    this.fd = null;
    const tmp = this.tmpPath;
    setImmediate(() => fs.close(fd, () => fs.unlink(tmp, () => this.markReleased())));
    return { ok: true, path, isNew, header, bytes };
  }
}

function fdatasyncAsync(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.fdatasync(fd, (err) => (err ? reject(err) : resolve())));
}

function writeAllSync(fd: number, buf: Buffer): void {
  let off = 0;
  while (off < buf.length) off += fs.writeSync(fd, buf, off, buf.length - off);
}

/**
 * Makes `tmp` visible at `dest` unless `dest` already exists (the instance is then stored once:
 * returns false). The caller removes the temp name; the destination directory is fsynced.
 */
async function linkNoReplace(tmp: string, dest: string, spoolDir: string, doFsync: boolean): Promise<boolean> {
  const dir = dest.slice(0, dest.lastIndexOf('/'));
  let isNew = true;
  const attempt = (): void => {
    try {
      fs.linkSync(tmp, dest);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') {
        isNew = false;
      } else if (code === 'EPERM' || code === 'ENOTSUP' || code === 'EXDEV' || code === 'ENOSYS') {
        // No hard links on this file system: check, then rename (a narrow race, last writer wins).
        if (fs.existsSync(dest)) isNew = false;
        else fs.renameSync(tmp, dest);
      } else {
        throw err;
      }
    }
  };
  try {
    attempt();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    const created = fs.mkdirSync(dir, { recursive: true });
    if (created !== undefined && doFsync) {
      // Make the new directories themselves durable: fsync each parent from the spool root down.
      await fsyncDir(spoolDir);
      await fsyncDir(dir.slice(0, dir.lastIndexOf('/')));
    }
    attempt();
  }
  if (isNew && doFsync) await fsyncDir(dir);
  return isNew;
}

function statusForError(err: unknown): number {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT' || code === 'EMFILE' || code === 'ENFILE'
    ? StoreStatus.OutOfResources
    : StoreStatus.ProcessingFailure;
}
