/**
 * What the spool must look like after any abuse: every file a complete, well-formed dataset
 * (our own walker, and DCMTK's dcmdump reading it to the end), nothing left in .tmp.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { datasetProblem } from '../../src/dicom/spool/header-scanner.js';
import { readPart10Info } from '../../src/dicom/scu/part10-info.js';
import { run } from '../helpers/dcmtk.js';
import { spoolFiles } from '../helpers/dicom-listener.js';

export interface SpoolCheck {
  /** SOP Instance UID → path of every spooled instance. */
  files: Map<string, string>;
  /** Files our walker or dcmdump cannot read, with why. */
  invalid: Array<{ path: string; problem: string }>;
  /** Files left in <spool>/.tmp. */
  temp: string[];
}

/** dcmdump reading each file to its end (+P: print one tag only); the files it fails on. */
async function dcmdumpFailures(paths: string[]): Promise<Set<string>> {
  const bad = new Set<string>();
  for (let i = 0; i < paths.length; i += 200) {
    const batch = paths.slice(i, i + 200);
    const r = await run('dcmdump', ['-q', '+P', '0008,0018', ...batch], { timeoutMs: 300_000 });
    if (r.code === 0) continue;
    for (const p of batch) {
      if ((await run('dcmdump', ['-q', '+P', '0008,0018', p])).code !== 0) bad.add(p);
    }
  }
  return bad;
}

export async function checkSpool(spoolDir: string): Promise<SpoolCheck> {
  const paths = (await spoolFiles(spoolDir)).filter((p) => p.endsWith('.dcm'));
  const files = new Map<string, string>();
  const invalid: SpoolCheck['invalid'] = [];
  for (const p of paths) {
    files.set(p.slice(p.lastIndexOf('/') + 1, -4), p);
    try {
      const info = await readPart10Info(p);
      const problem = datasetProblem((await readFile(p)).subarray(info.datasetOffset), info.transferSyntaxUid);
      if (problem) invalid.push({ path: p, problem: `walker: ${problem}` });
    } catch (err) {
      invalid.push({ path: p, problem: `unreadable: ${(err as Error).message}` });
    }
  }
  for (const p of await dcmdumpFailures(paths)) invalid.push({ path: p, problem: 'dcmdump cannot read it' });
  let temp: string[] = [];
  try {
    temp = await readdir(join(spoolDir, '.tmp'));
  } catch {
    // no temp dir yet
  }
  return { files, invalid, temp };
}

/** Dataset bytes of a spooled file (after its meta group). */
export async function spooledDataset(path: string): Promise<Buffer> {
  const info = await readPart10Info(path);
  return (await readFile(path)).subarray(info.datasetOffset);
}
