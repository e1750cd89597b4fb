import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Config } from '../../src/config/schema.js';
import { run } from '../helpers/dcmtk.js';
import { MLSAM_MAIN } from '../helpers/process.js';
import { cleanup, testConfig, waitFor } from '../queue/helpers.js';
import { DaemonProcess, envOf } from './helpers.js';

/**
 * What a newcomer sees after `npm start`: on a terminal (a real pseudo-terminal, util-linux
 * `script`), one plain start-up summary after the JSON log lines: the DICOM AE title and port
 * (answering C-ECHO from DCMTK), the dashboard URL (answering with the login it names), where
 * results go. Without a terminal (a service, a container) stdout stays empty: logs are JSON on stderr only.
 */
let config: Config;

beforeAll(async () => {
  config = await testConfig('startup', { http: { username: 'admin', password: '' }, destinations: [] });
});
afterAll(async () => {
  if (config) await cleanup(config);
});

it('mlsam serve on a terminal prints a start-up summary that is true', async () => {
  const cmd = `exec ${process.execPath} ${MLSAM_MAIN} serve --host 127.0.0.1 --port 0`;
  // `script` gives the command a pseudo-terminal: stdout and stderr both arrive here.
  const child = spawn('script', ['-qfec', cmd, '/dev/null'], {
    env: { ...process.env, ...envOf(config), MLSAM_HTTP__PORT: '0', MLSAM_LOG__LEVEL: 'info' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  let pid: number | undefined;
  try {
    await waitFor(
      async () => {
        if (child.exitCode !== null) throw new Error(`script exited ${child.exitCode}:\n${out}`);
        return out.includes('Stop it with Ctrl-C.');
      },
      60_000,
      'the start-up summary',
      100,
    );
    const text = out.replace(/\r/g, '');
    pid = Number(/mlsam serve is running \(pid (\d+)\)/.exec(text)?.[1]);
    expect(pid).toBeGreaterThan(0);
    // After the JSON start-up lines, not among them.
    expect(text.indexOf('"msg":"admin listening"')).toBeLessThan(text.indexOf('mlsam serve is running'));
    const dicom =
      /^ {2}DICOM +AE title MLSAM on 127\.0\.0\.1:(\d+); send a series with: TCP_NODELAY=1 storescu -aec MLSAM 127\.0\.0\.1 \1 <files>$/m.exec(
        text,
      );
    expect(dicom, text).not.toBeNull();
    const echo = await run('echoscu', ['-aec', 'MLSAM', '127.0.0.1', dicom![1]!]);
    expect(echo.code, echo.stderr).toBe(0);
    const dash =
      /^ {2}Dashboard +(http:\/\/127\.0\.0\.1:\d+\/admin); log in as user admin, empty password \(allowed because it listens on loopback only\)$/m.exec(
        text,
      );
    expect(dash, text).not.toBeNull();
    expect((await fetch(dash![1]!)).status).toBe(401);
    const page = await fetch(dash![1]!, { headers: { authorization: `Basic ${Buffer.from('admin:').toString('base64')}` } });
    expect(page.status).toBe(200);
    expect(text).toContain(
      `  Results    SR, KOS, SEG, 5 heatmap SCs, summary chart SC, GSPS per key slice; one set per study; a not-scored SR says why; no destinations configured: they stay in the spool, ${join(config.spool.dir, 'results')}`,
    );
    expect(text).toMatch(/^ {2}Worker +mlsam-[\w.-]+\.onnx on cpu, 1 series at a time, 16 slices per batch$/m);
    expect(text).toContain(`  Redis      ${config.redis.url} (key prefix ${config.redis.keyPrefix})`);
  } finally {
    if (pid) process.kill(pid, 'SIGTERM');
    else child.kill('SIGTERM');
    await exited;
  }
}, 90_000);

it('without a terminal it prints nothing on stdout: the logs stay JSON on stderr', async () => {
  const admin = new DaemonProcess(envOf(config), 'admin');
  const stdout: string[] = [];
  await admin.start({ onStdout: (s) => stdout.push(s) });
  await admin.stop();
  expect(stdout.join('')).toBe('');
  const lines = admin.stderr.split('\n').filter((l) => l.trim() !== '');
  expect(lines.length).toBeGreaterThan(0);
  for (const l of lines) expect(() => JSON.parse(l), l).not.toThrow();
});
