/**
 * A closed stdout ends a command quietly (issue 26 item 1): `mlsam score --json <series> | head -c 2000`
 * through a real shell pipe, under `set -o pipefail`. The JSON of a 148-slice series (~80 kB) is larger
 * than the pipe buffer, so the CLI is still writing when `head` exits: without the handler Node raises
 * an unhandled `write EPIPE` with a stack trace and exits 1, which pipefail turns into the pipeline's status.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT, SHARED_DATA } from '../helpers/dicom-listener.js';
import { MLSAM_MAIN } from '../helpers/process.js';

function sh(script: string, env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', script], { cwd: REPO_ROOT, env: { ...process.env, MLSAM_LOG__LEVEL: 'warn', ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('a closed stdout', () => {
  it('`mlsam score --json P001 | head -c 2000` under pipefail: exit 0, no EPIPE, the first 2000 bytes of the JSON', async () => {
    const series = join(SHARED_DATA, 'covid-ct-md', 'P001');
    const r = await sh(
      `set -o pipefail; ${JSON.stringify(process.execPath)} ${JSON.stringify(MLSAM_MAIN)} score --json ${JSON.stringify(series)} | head -c 2000; echo " rc=$?"`,
    );
    expect(r.stderr).not.toMatch(/EPIPE|Error:|at .*\.js:\d+/);
    expect(r.code).toBe(0);
    const m = /^([\s\S]*) rc=(\d+)\n$/.exec(r.stdout);
    expect(m?.[2]).toBe('0');
    expect(Buffer.byteLength(m?.[1] ?? '')).toBe(2000);
    expect(m?.[1]).toMatch(/^\{"model":\{"name":/);
  });

  it('the plain report into a reader that has already gone: exit 0, nothing on stderr', async () => {
    // `true` exits long before the series is scored: every write of the report meets a closed pipe.
    const series = join(SHARED_DATA, 'covid-ct-md', 'normal001');
    const r = await sh(
      `set -o pipefail; ${JSON.stringify(process.execPath)} ${JSON.stringify(MLSAM_MAIN)} score ${JSON.stringify(series)} | true; echo "rc=$?"`,
    );
    expect(r.stderr).not.toMatch(/EPIPE|Error:/);
    expect(r.stdout.trim()).toBe('rc=0');
  });
});
