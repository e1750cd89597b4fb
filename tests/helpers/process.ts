import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { REPO_ROOT } from './dicom-listener.js';

export const MLSAM_MAIN = join(REPO_ROOT, 'dist', 'cli', 'main.js');

export interface MlsamResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Wall time of the whole process. */
  ms: number;
}

/** Runs the built `mlsam` CLI (dist/) to completion, logs at warn. */
export function mlsam(args: string[], env: NodeJS.ProcessEnv = {}): Promise<MlsamResult> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MLSAM_MAIN, ...args], {
      env: { ...process.env, MLSAM_LOG__LEVEL: 'warn', ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr, ms: Date.now() - t0 }));
  });
}

/** A TCP port free on 127.0.0.1 at the time of asking (the demo's and the bench's helper). */
export { freePort } from '../../src/demo/child-process.js';
