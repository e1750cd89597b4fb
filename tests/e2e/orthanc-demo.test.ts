/**
 * `npm run demo` (dist/demo/demo.js) as a user runs it: it starts Orthanc and `mlsam serve`,
 * sends the synthetic phantom (30 slices here, to keep CI time down) into Orthanc, prints the
 * score read back from the SR in Orthanc and where to look, keeps running, and on Ctrl-C (SIGINT)
 * stops every process it started and removes its temp folder. What the phantom can show about
 * the model is checked last, on its own: the slices that cut a lesion must rank above the
 * lesion-free lung slices (not a fixed category: the series score of a phantom proves nothing).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it, onTestFinished } from 'vitest';
import { REPO_ROOT } from '../helpers/dicom-listener.js';
import { waitFor } from '../queue/helpers.js';

const DEMO = join(REPO_ROOT, 'dist', 'demo', 'demo.js');

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

it('npm run demo: phantom → Orthanc → node → SR back in Orthanc; Ctrl-C stops what it started', async () => {
  expect(existsSync(DEMO), 'run `npm run build` first').toBe(true);
  const child = spawn(
    process.execPath,
    [DEMO, '--slices', '30', '--quiet-period', '1', '--stable-age', '1', '--any-ports', '--timeout', '240'],
    {
      cwd: REPO_ROOT,
      env: { ...process.env, TCP_NODELAY: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  // Whatever fails below, the demo gets its Ctrl-C so that it stops what it started.
  onTestFinished(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGINT');
      await exited;
    }
  });
  await waitFor(
    async () => {
      if (child.exitCode !== null) throw new Error(`demo exited ${child.exitCode}:\n${out}`);
      return out.includes('press Ctrl-C');
    },
    240_000,
    `the demo's result`,
    250,
  );
  const score = /series score \(COVID-19 pneumonia pattern probability\): (\d\.\d{3}) → (likely|unlikely|indeterminate)/.exec(out);
  expect(out).toMatch(
    /lung on slices \d+–\d+; 4 ground-glass opacities and 1 consolidation cut \d+ of them \(\d+–\d+\); the other \d+ lung slices are lesion-free/,
  );
  const check =
    /phantom check: lesion slices mean p (\d\.\d{3}) \((\d+)\), lesion-free lung slices (\d\.\d{3}) \((\d+)\); ranking AUC (\d\.\d{3}): (.*)/.exec(
      out,
    );
  expect(check, out).not.toBeNull();
  expect(Number(check![2])).toBeGreaterThan(0);
  expect(Number(check![4])).toBeGreaterThan(0);
  expect(score, out).not.toBeNull();
  expect(out).toMatch(/in Orthanc, same study: 1 SR \+ [1-9]\d* Secondary Capture image\(s\)/);
  expect(out).toMatch(/Orthanc study: +http:\/\/127\.0\.0\.1:\d+\/app\/explorer\.html#study\?uuid=[0-9a-f-]+/);
  // The dashboard's series page answers (basic auth admin with the empty loopback password).
  const dashboard = /Dashboard: +(http:\/\/127\.0\.0\.1:\d+\/admin\/series\/([0-9.]+))/.exec(out);
  expect(dashboard, out).not.toBeNull();
  const page = await fetch(dashboard![1]!, { headers: { authorization: `Basic ${Buffer.from('admin:').toString('base64')}` } });
  expect(page.status).toBe(200);
  expect(await page.text()).toContain(dashboard![2]!);
  expect(out).not.toMatch(/WARNING/);
  const pids = [...out.matchAll(/\(pid (\d+)\)/g)].map((m) => Number(m[1]));
  expect(pids.length).toBeGreaterThanOrEqual(2); // Orthanc and mlsam serve (and redis-server if it had to start one)
  expect(pids.every(alive)).toBe(true);
  const temp = /temp folder (\/\S+)\)/.exec(out)?.[1];
  expect(temp && existsSync(temp)).toBe(true);

  child.kill('SIGINT');
  expect(await exited).toBe(130);
  expect(pids.filter(alive)).toEqual([]);
  expect(existsSync(temp!)).toBe(false);

  // What the phantom can show: the model ranks the lesion slices above the lesion-free lung slices.
  const auc = Number(check![5]);
  expect(
    auc,
    `the shipped model does not rank the phantom's lesion slices above its lesion-free lung slices: ${check![0]}`,
  ).toBeGreaterThanOrEqual(0.8);
  expect(Number(check![1])).toBeGreaterThan(Number(check![3]));
});
