/**
 * Child processes the demo, the benchmark and the end-to-end tests start and stop by PID:
 * `mlsam serve|listen|work|admin` (dist/cli/main.js) with a config file of their own, and a
 * private redis-server when none answers. Logs of each child go to a file (no PHI: it is our own
 * pino output).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { PROJECT_ROOT } from '../config/load.js';
import { freePort, stopChild } from './child-process.js';

export const MLSAM_CLI = join(PROJECT_ROOT, 'dist', 'cli', 'main.js');

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export type MlsamCommand = 'serve' | 'listen' | 'work' | 'admin';

export interface MlsamProcessOptions {
  command: MlsamCommand;
  /** Config overrides, written to `<workDir>/<name>.json` and passed as MLSAM_CONFIG. */
  config: Record<string, unknown>;
  /** Folder for the config file and the log. */
  workDir: string;
  /** File stem (default: the command). */
  name?: string;
  /** Extra CLI arguments. */
  args?: string[];
  /** Extra environment. */
  env?: Record<string, string>;
}

/** A running `mlsam <command>`. */
export class MlsamProcess {
  private constructor(
    private readonly proc: ChildProcess,
    readonly command: MlsamCommand,
    readonly logPath: string,
    readonly configPath: string,
  ) {}

  static async start(o: MlsamProcessOptions): Promise<MlsamProcess> {
    if (!existsSync(MLSAM_CLI)) throw new Error(`${MLSAM_CLI} missing: run \`npm run build\` first`);
    const name = o.name ?? o.command;
    const configPath = join(o.workDir, `${name}.json`);
    await writeFile(configPath, JSON.stringify(o.config, null, 2));
    const logPath = join(o.workDir, `${name}.log`);
    const fd = openSync(logPath, 'a');
    // The config file is the one source: inherited MLSAM_* variables would override it.
    const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MLSAM_')));
    let proc: ChildProcess;
    try {
      proc = spawn(process.execPath, [MLSAM_CLI, o.command, ...(o.args ?? [])], {
        cwd: PROJECT_ROOT,
        env: { ...inherited, TCP_NODELAY: '1', MLSAM_CONFIG: configPath, ...o.env },
        stdio: ['ignore', fd, fd],
      });
    } finally {
      closeSync(fd);
    }
    return new MlsamProcess(proc, o.command, logPath, configPath);
  }

  get pid(): number | undefined {
    return this.proc.pid;
  }

  get running(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  log(): string {
    try {
      return readFileSync(this.logPath, 'utf8');
    } catch {
      return '';
    }
  }

  /** Parsed pino lines of the log so far (non-JSON lines skipped). */
  logRecords(): Array<Record<string, unknown>> {
    const out: Array<Record<string, unknown>> = [];
    for (const line of this.log().split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        out.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        /* partial line */
      }
    }
    return out;
  }

  /** Waits until a log record satisfies `pred`; throws if the process exits first. */
  async waitForLog<T>(pred: (rec: Record<string, unknown>) => T | undefined, timeoutMs = 30_000, what = 'a log line'): Promise<T> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      for (const rec of this.logRecords()) {
        const v = pred(rec);
        if (v !== undefined) return v;
      }
      if (!this.running)
        throw new Error(
          `mlsam ${this.command} exited (${this.proc.exitCode ?? this.proc.signalCode}) before ${what}:\n${this.log().slice(-3000)}`,
        );
      if (Date.now() > end) throw new Error(`mlsam ${this.command}: timed out waiting for ${what}:\n${this.log().slice(-3000)}`);
      await sleep(100);
    }
  }

  /** The DICOM port from the listener's "listening" log line (serve / listen). */
  waitListening(timeoutMs = 30_000): Promise<number> {
    return this.waitForLog(
      (r) => (r.msg === 'listening' && typeof r.port === 'number' ? r.port : undefined),
      timeoutMs,
      'the "listening" log line',
    );
  }

  /** Peak resident set size (VmHWM of /proc/<pid>/status) in bytes; undefined once gone. */
  peakRss(): number | undefined {
    return this.pid === undefined ? undefined : vmHwm(this.pid);
  }

  /** Sends `signal`, SIGKILL after `graceMs`; resolves with the exit code (null when killed). */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 20_000): Promise<number | null> {
    return stopChild(this.proc, signal, graceMs);
  }
}

/** VmHWM (peak RSS) of a process in bytes, from /proc/<pid>/status. */
export function vmHwm(pid: number): number | undefined {
  try {
    const m = /VmHWM:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** PING with a short timeout. */
export async function redisAnswers(url: string, timeoutMs = 2000): Promise<boolean> {
  const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: timeoutMs });
  r.on('error', () => undefined);
  try {
    await r.connect();
    return (await r.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    r.disconnect();
  }
}

/** A redis-server of our own on 127.0.0.1 (no persistence), stopped by PID. */
export class PrivateRedisServer {
  private constructor(
    private readonly proc: ChildProcess,
    readonly port: number,
  ) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.proc.pid;
  }

  static async start(workDir: string, port?: number): Promise<PrivateRedisServer> {
    const p = port ?? (await freePort());
    const proc = spawn('redis-server', ['--port', String(p), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', workDir], {
      stdio: 'ignore',
    });
    let error: Error | undefined;
    proc.once('error', (e) => (error = e));
    const server = new PrivateRedisServer(proc, p);
    const end = Date.now() + 10_000;
    while (!(await redisAnswers(server.url, 500))) {
      if (error) throw new Error(`redis-server could not start: ${error.message} (install Redis, or set MLSAM_REDIS__URL)`);
      if (proc.exitCode !== null) throw new Error(`redis-server exited with ${proc.exitCode}`);
      if (Date.now() > end) {
        proc.kill('SIGKILL');
        throw new Error('redis-server did not answer within 10 s');
      }
      await sleep(100);
    }
    return server;
  }

  async stop(): Promise<void> {
    await stopChild(this.proc);
  }
}

/** Deletes every key under `<prefix>:` (SCAN + DEL; never FLUSHDB). */
export async function dropRedisPrefix(url: string, prefix: string): Promise<void> {
  const r = new Redis(url, { maxRetriesPerRequest: 1, lazyConnect: true, retryStrategy: () => null });
  r.on('error', () => undefined);
  try {
    await r.connect();
    let cursor = '0';
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length) await r.del(...keys);
    } while (cursor !== '0');
  } catch {
    /* Redis gone: nothing to clean */
  } finally {
    r.disconnect();
  }
}

/** A TCP port: `preferred` when it is free on 127.0.0.1, any free one otherwise. */
export async function portOr(preferred: number): Promise<number> {
  const { createServer } = await import('node:net');
  const free = await new Promise<boolean>((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(preferred, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
  return free ? preferred : freePort();
}
