/**
 * DICOMweb STOW-RS SCU (PS3.18 10.5): the result files of one dispatch job POSTed to
 * `<url>/studies` as one multipart/related; type="application/dicom" request, byte for byte as they
 * lie in the spool. The per-instance outcome is read from the response dataset
 * (application/dicom+json): Referenced SOP Sequence (0008,1199) = stored (with Warning Reason
 * (0008,1196) = stored with a warning), Failed SOP Sequence (0008,1198) with Failure Reason
 * (0008,1197) = not stored. Same result shape as the C-STORE SCU's sendFiles, so the dispatch worker
 * treats both alike (retries of the failed files only, parking after the last attempt).
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { DicomwebDestination } from '../../config/targets.js';
import { readPart10Info } from '../../dicom/scu/part10-info.js';
import { describeResponse, httpRequestTo } from '../../notify/http-request.js';

export interface StowFileResult {
  file: string;
  sopInstanceUid: string;
  outcome: 'stored' | 'warning' | 'failed';
  /** DICOM status (Failure Reason or Warning Reason) when the response gave one. */
  status?: number;
  reason?: string;
}

export interface StowResult {
  sent: number;
  warnings: number;
  failed: { file: string; reason: string }[];
  /** HTTP status of the response (absent: no response). */
  httpStatus?: number;
  ms: number;
}

export type DicomJson = Record<string, { vr?: string; Value?: unknown[] } | undefined>;

const REFERENCED_SOP_SEQ = '00081199';
const FAILED_SOP_SEQ = '00081198';
const REFERENCED_SOP_INSTANCE_UID = '00081155';
const FAILURE_REASON = '00081197';
const WARNING_REASON = '00081196';

/** Known Failure Reason values (PS3.18 Table I.2-1 / PS3.4 GG.4-1). */
const FAILURE_TEXT: ReadonlyMap<number, string> = new Map([
  [0xa700, 'out of resources'],
  [0xa900, 'data set does not match SOP class'],
  [0xc000, 'cannot understand'],
  [0x0110, 'processing failure'],
  [0x0122, 'SOP class not supported'],
  [0x0124, 'not authorized'],
  [0x0111, 'duplicate SOP instance'],
  [0xa770, 'transfer syntax not supported'],
  [0xc122, 'referenced transfer syntax not supported'],
]);

const hex = (n: number): string => `0x${n.toString(16).padStart(4, '0')}`;

function items(ds: DicomJson | undefined, tag: string): DicomJson[] {
  const v = ds?.[tag]?.Value;
  return Array.isArray(v) ? (v.filter((x) => x && typeof x === 'object') as DicomJson[]) : [];
}
function str(ds: DicomJson, tag: string): string | undefined {
  const v = ds[tag]?.Value?.[0];
  return typeof v === 'string' ? v : undefined;
}
function num(ds: DicomJson, tag: string): number | undefined {
  const v = ds[tag]?.Value?.[0];
  return typeof v === 'number' ? v : typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : undefined;
}

/** The response dataset: a DICOM JSON object, or an array holding one (some servers wrap it). */
export function parseStowResponse(body: Buffer): DicomJson | undefined {
  if (body.length === 0) return undefined;
  try {
    const v: unknown = JSON.parse(body.toString('utf8'));
    const ds = Array.isArray(v) ? v[0] : v;
    return ds && typeof ds === 'object' ? (ds as DicomJson) : undefined;
  } catch {
    return undefined;
  }
}

/** The STOW-RS endpoint of a DICOMweb root (`…/dicom-web` → `…/dicom-web/studies`). */
export function stowUrl(root: string): string {
  return `${root.replace(/\/+$/, '')}/studies`;
}

/**
 * Stores the files with one STOW-RS request; `onResult` hears every file's outcome. Throws only
 * for a file that cannot be read (the caller checked they exist); a connection problem or an
 * unexpected HTTP status fails every file with that reason.
 */
export async function stowFiles(
  dest: DicomwebDestination,
  files: readonly string[],
  opts: { timeoutMs: number; onResult?: (r: StowFileResult) => void },
): Promise<StowResult> {
  const t0 = Date.now();
  const boundary = `mlsam-${randomBytes(12).toString('hex')}`;
  const infos = await Promise.all(files.map((f) => readPart10Info(f)));
  const parts: Buffer[] = [];
  for (const f of files) {
    parts.push(Buffer.from(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`));
    parts.push(await readFile(f));
    parts.push(Buffer.from('\r\n'));
  }
  parts.push(Buffer.from(`--${boundary}--\r\n`));
  const results: StowFileResult[] = [];
  const finish = (httpStatus?: number): StowResult => {
    for (const r of results) opts.onResult?.(r);
    const stored = results.filter((r) => r.outcome !== 'failed');
    return {
      sent: stored.length,
      warnings: results.filter((r) => r.outcome === 'warning').length,
      failed: results.filter((r) => r.outcome === 'failed').map((r) => ({ file: r.file, reason: r.reason ?? 'not stored' })),
      ...(httpStatus !== undefined ? { httpStatus } : {}),
      ms: Date.now() - t0,
    };
  };
  const failAll = (reason: string): void => {
    for (const [i, file] of files.entries()) results.push({ file, sopInstanceUid: infos[i]!.sopInstanceUid, outcome: 'failed', reason });
  };

  let res: Awaited<ReturnType<typeof httpRequestTo>>;
  try {
    res = await httpRequestTo({
      method: 'POST',
      url: stowUrl(dest.url),
      headers: {
        'content-type': `multipart/related; type="application/dicom"; boundary=${boundary}`,
        accept: 'application/dicom+json',
      },
      body: parts,
      auth: dest.auth,
      ...(dest.tls ? { tls: dest.tls } : {}),
      timeoutMs: opts.timeoutMs,
    });
  } catch (err) {
    failAll(`STOW-RS to ${dest.name}: ${(err as Error).message}`);
    return finish();
  }
  const ds = parseStowResponse(res.body);
  if (![200, 202, 409].includes(res.status) || (res.status !== 200 && !ds)) {
    failAll(`STOW-RS to ${dest.name}: ${describeResponse(res)}`);
    return finish(res.status);
  }
  const outcomes = classifyStowResponse(
    res.status,
    ds,
    infos.map((i) => i.sopInstanceUid),
  );
  for (const [i, file] of files.entries()) results.push({ file, ...outcomes[i]! });
  return finish(res.status);
}

/**
 * Per-instance outcome of a STOW-RS response (status 200, 202 or 409 and its dataset), in the
 * order of `sopInstanceUids`: listed in Failed SOP Sequence → failed with its Failure Reason;
 * listed in Referenced SOP Sequence → stored (a non-zero Warning Reason: stored with a warning);
 * listed nowhere → stored on a 200 (PS3.18 10.5.3: every instance stored), failed otherwise.
 * Failed SOP Sequence wins over the status: Orthanc answers 200 and lists failures there.
 */
export function classifyStowResponse(
  status: number,
  ds: DicomJson | undefined,
  sopInstanceUids: readonly string[],
): Omit<StowFileResult, 'file'>[] {
  const stored = new Map<string, number | undefined>();
  for (const it of items(ds, REFERENCED_SOP_SEQ)) {
    const uid = str(it, REFERENCED_SOP_INSTANCE_UID);
    if (uid) stored.set(uid, num(it, WARNING_REASON));
  }
  const failed = new Map<string, number | undefined>();
  for (const it of items(ds, FAILED_SOP_SEQ)) {
    const uid = str(it, REFERENCED_SOP_INSTANCE_UID);
    if (uid) failed.set(uid, num(it, FAILURE_REASON));
  }
  return sopInstanceUids.map((uid) => {
    if (failed.has(uid)) {
      const code = failed.get(uid);
      const reason =
        code === undefined
          ? 'failed (no reason given)'
          : `failure reason ${hex(code)}${FAILURE_TEXT.has(code) ? ` (${FAILURE_TEXT.get(code)})` : ''}`;
      return {
        sopInstanceUid: uid,
        outcome: 'failed' as const,
        ...(code !== undefined ? { status: code } : {}),
        reason: `STOW-RS: ${reason}`,
      };
    }
    if (stored.has(uid) || status === 200) {
      const w = stored.get(uid);
      return w
        ? { sopInstanceUid: uid, outcome: 'warning' as const, status: w, reason: `warning reason ${hex(w)}` }
        : { sopInstanceUid: uid, outcome: 'stored' as const };
    }
    return { sopInstanceUid: uid, outcome: 'failed' as const, reason: `STOW-RS: HTTP ${status}, instance not listed as stored` };
  });
}
