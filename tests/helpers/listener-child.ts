/**
 * The DICOM listener in a process of its own (dist/dicom/testing/listener-process.js, built by
 * `npm test`), for what a test cannot see from inside one process: RSS, open descriptors, a
 * crash, a SIGKILL at a random instant.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { REPO_ROOT } from './dicom-listener.js';

export interface ListenerSample {
  t: number;
  instances: number;
  bytes: number;
  rss: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
}

export interface ListenerChild {
  child: ChildProcess;
  pid: number;
  port: number;
  spoolDir: string;
  /** One sample every `sampleMs` from the child itself (memoryUsage and instance count). */
  samples: ListenerSample[];
  /** stderr of the child (its logs at the given level). */
  stderr(): string;
  /** Exit code / signal once it has exited; undefined while it runs. */
  exited(): { code: number | null; signal: NodeJS.Signals | null } | undefined;
  /** Open file descriptors of the child (/proc/<pid>/fd). */
  fds(): number;
  /** RSS of the child in bytes (/proc/<pid>/status), between samples too. */
  rss(): number;
  /** Graceful stop (stdin closed: listener.stop, then exit). */
  stop(): Promise<void>;
  /** SIGKILL, resolves once it is gone. */
  kill(): Promise<void>;
}

export interface ListenerChildOptions {
  spoolDir: string;
  /** MLSAM_* environment overrides, e.g. { MLSAM_DICOM__IDLE_TIMEOUT_SECONDS: '1' }. */
  env?: Record<string, string>;
  sampleMs?: number;
  logLevel?: string;
  /** The port to bind (default a free one). */
  port?: number;
}

export async function startListenerChild(opts: ListenerChildOptions): Promise<ListenerChild> {
  const child = spawn(process.execPath, [join(REPO_ROOT, 'dist', 'dicom', 'testing', 'listener-process.js')], {
    env: {
      ...process.env,
      MLSAM_DICOM__HOST: '127.0.0.1',
      MLSAM_DICOM__PORT: String(opts.port ?? 0),
      MLSAM_SPOOL__DIR: opts.spoolDir,
      LISTENER_SAMPLE_MS: String(opts.sampleMs ?? 100),
      MLSAM_LOG__LEVEL: opts.logLevel ?? 'error',
      ...(opts.env ?? {}),
    },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-200_000);
  });
  let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const exitedPromise = new Promise<void>((resolve) =>
    child.once('exit', (code, signal) => {
      exit = { code, signal };
      resolve();
    }),
  );
  const samples: ListenerSample[] = [];
  const port = await new Promise<number>((resolve, reject) => {
    const rl = createInterface({ input: child.stdout! });
    rl.on('line', (line) => {
      let msg: { port?: number } & ListenerSample;
      try {
        msg = JSON.parse(line) as { port?: number } & ListenerSample;
      } catch {
        return;
      }
      if (msg.port !== undefined) resolve(msg.port);
      else samples.push(msg);
    });
    void exitedPromise.then(() => reject(new Error(`listener exited before listening (${JSON.stringify(exit)}): ${stderr.slice(-2000)}`)));
  });
  const pid = child.pid!;
  return {
    child,
    pid,
    port,
    spoolDir: opts.spoolDir,
    samples,
    stderr: () => stderr,
    exited: () => exit,
    fds: () => readdirSync(`/proc/${pid}/fd`).length,
    rss: () => {
      const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+) kB/);
      return m ? Number(m[1]) * 1024 : 0;
    },
    async stop() {
      if (exit) return;
      child.stdin!.end();
      const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exitedPromise;
      clearTimeout(t);
    },
    async kill() {
      if (exit) return;
      child.kill('SIGKILL');
      await exitedPromise;
    },
  };
}
