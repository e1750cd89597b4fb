import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Queue, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import type { Config } from '../../src/config/schema.js';
import { INFERENCE_QUEUE, type InferenceJobData } from '../../src/queue/jobs.js';
import { run } from '../helpers/dcmtk.js';
import { REPO_ROOT } from '../helpers/dicom-listener.js';
import { waitFor } from '../queue/helpers.js';

export const CLI = join(REPO_ROOT, 'dist', 'cli', 'main.js');

/** storescu (TCP_NODELAY=1) to our listener; returns how many instances got a Success response. */
export async function storescu(
  port: number,
  files: string[],
  aet = 'PACS',
): Promise<{ code: number | null; successes: number; output: string }> {
  const r = await run('storescu', ['-v', '-aet', aet, '-aec', 'MLSAM', '127.0.0.1', String(port), ...files]);
  const output = r.stdout + r.stderr;
  return { code: r.code, successes: (output.match(/Received Store Response \(Success\)/g) ?? []).length, output };
}

/** A queue handle on the inference queue of a test prefix. */
export function inferenceQueue(config: Config): { queue: Queue<InferenceJobData>; close(): Promise<void> } {
  const connection = new Redis(config.redis.url, { maxRetriesPerRequest: null });
  connection.on('error', () => undefined);
  const queue = new Queue<InferenceJobData>(INFERENCE_QUEUE, { connection, prefix: config.redis.keyPrefix });
  queue.on('error', () => undefined);
  return {
    queue,
    async close() {
      await queue.close().catch(() => undefined);
      connection.disconnect();
    },
  };
}

export async function inferenceJobs(queue: Queue<InferenceJobData>): Promise<Job<InferenceJobData>[]> {
  return queue.getJobs(['waiting', 'active', 'delayed', 'completed', 'failed', 'paused', 'prioritized']);
}

/** Waits until the inference queue holds at least `n` jobs. */
export function waitForJobs(queue: Queue<InferenceJobData>, n: number, timeoutMs: number): Promise<Job<InferenceJobData>[]> {
  return waitFor(
    async () => {
      const jobs = await inferenceJobs(queue);
      return jobs.length >= n ? jobs : undefined;
    },
    timeoutMs,
    `${n} inference job(s)`,
    200,
  );
}

export async function countFiles(dir: string): Promise<number> {
  try {
    return (await readdir(dir)).filter((n) => n.endsWith('.dcm')).length;
  } catch {
    return 0;
  }
}

/** `node dist/cli/main.js listen` (or `serve`) as a child process, configured through MLSAM_* variables. */
export class ListenProcess {
  private proc: ChildProcess | undefined;
  stderr = '';
  port = 0;

  constructor(
    private readonly env: Record<string, string>,
    private readonly command: 'listen' | 'serve' = 'listen',
  ) {}

  async start(): Promise<number> {
    if (!existsSync(CLI)) throw new Error(`${CLI} missing: run \`npm run build\` first`);
    this.stderr = '';
    const proc = spawn(process.execPath, [CLI, this.command, '--host', '127.0.0.1', '--port', '0'], {
      env: { ...process.env, MLSAM_LOG__LEVEL: 'info', MLSAM_HTTP__PORT: '0', ...this.env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    this.proc = proc;
    proc.stderr?.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.port = await waitFor(
      async () => {
        if (proc.exitCode !== null) throw new Error(`listen exited ${proc.exitCode}: ${this.stderr}`);
        for (const line of this.stderr.split('\n')) {
          if (!line.includes('"listening"')) continue;
          const rec = JSON.parse(line) as { msg?: string; port?: number };
          if (rec.msg === 'listening' && rec.port) return rec.port;
        }
        return undefined;
      },
      20_000,
      'the "listening" log line',
      50,
    );
    return this.port;
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  /** Sends `signal` and waits for the exit; returns the exit code (null when killed by a signal). */
  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 20_000): Promise<number | null> {
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return p?.exitCode ?? null;
    const exited = new Promise<number | null>((resolve) => p.once('exit', (code) => resolve(code)));
    p.kill(signal);
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    const code = await exited;
    clearTimeout(timer);
    this.proc = undefined;
    return code;
  }
}
