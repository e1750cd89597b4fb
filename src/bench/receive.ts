/**
 * Receive benchmark: one 300-slice 512x512 CT series (generated once into a temp folder) sent
 * with `TCP_NODELAY=1 storescu` over one association to
 *   - DCMTK `storescp -od <dir> <port>` (writes to disk, no fsync),
 *   - our DicomListener in a child process, fsync on (the daemon default),
 *   - our DicomListener with fsync off (same durability as storescp, for comparison).
 * Rounds alternate between the targets; the median per target is reported, with instances/s,
 * MB/s and the ratio to storescp. Results go to stdout and bench-results/receive.md.
 *
 *   npm run bench:receive [-- --slices 300 --rounds 3]
 */
import { spawn } from 'node:child_process';
import { closeSync, fdatasyncSync, fsyncSync, linkSync, mkdirSync, openSync, unlinkSync, writeSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createInterface } from 'node:readline';
import { PROJECT_ROOT } from '../config/load.js';
import { freePort, stopChild } from '../demo/child-process.js';
import { writeSyntheticSeries } from '../dicom/testing/synthetic-series.js';

const REPO = PROJECT_ROOT;
const LISTENER_SCRIPT = join(REPO, 'dist', 'dicom', 'testing', 'listener-process.js');
const DCMTK_ENV = { ...process.env, TCP_NODELAY: '1' };

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : def;
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name}: expected a positive number`);
  return v;
}

function runTimed(cmd: string, args: string[]): Promise<{ code: number | null; ms: number; stderr: string }> {
  return new Promise((res, rej) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(cmd, args, { env: DCMTK_ENV, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', rej);
    child.on('close', (code) => res({ code, ms: Number(process.hrtime.bigint() - t0) / 1e6, stderr }));
  });
}

async function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((r) => {
      const s = createConnection({ host: '127.0.0.1', port });
      s.once('connect', () => {
        s.destroy();
        r(true);
      });
      s.once('error', () => r(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`port ${port} did not open`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface Target {
  name: string;
  start(outDir: string): Promise<{ port: number; aet: string; stop: () => Promise<{ rssMb?: number }> }>;
}

const storescp: Target = {
  name: 'DCMTK storescp (no fsync)',
  async start(outDir) {
    const port = await freePort();
    const child = spawn('storescp', ['-od', outDir, String(port)], { env: DCMTK_ENV, stdio: 'ignore' });
    await waitForPort(port);
    return {
      port,
      aet: 'ANY-SCP',
      stop: async () => {
        await stopChild(child);
        return {};
      },
    };
  },
};

function ours(fsync: boolean): Target {
  return {
    name: `mlsam listener (${fsync ? 'fsync, default' : 'no fsync'})`,
    async start(outDir) {
      const child = spawn(process.execPath, [LISTENER_SCRIPT], {
        env: {
          ...process.env,
          MLSAM_DICOM__HOST: '127.0.0.1',
          MLSAM_DICOM__PORT: '0',
          MLSAM_DICOM__AE_TITLE: 'MLSAM',
          MLSAM_SPOOL__DIR: outDir,
          MLSAM_LOG__LEVEL: 'warn',
          LISTENER_NO_FSYNC: fsync ? '0' : '1',
          LISTENER_SAMPLE_MS: '250',
        },
        stdio: ['pipe', 'pipe', 'inherit'],
      });
      let peakRss = 0;
      const port = await new Promise<number>((res, rej) => {
        createInterface({ input: child.stdout! }).on('line', (line) => {
          const m = JSON.parse(line) as { port?: number; rss?: number };
          if (m.port !== undefined) res(m.port);
          if (m.rss !== undefined) peakRss = Math.max(peakRss, m.rss);
        });
        child.once('exit', (code) => rej(new Error(`listener exited with ${code}`)));
      });
      return {
        port,
        aet: 'MLSAM',
        stop: async () => {
          await stopChild(child);
          return { rssMb: peakRss / 1048576 };
        },
      };
    },
  };
}

/**
 * The disk's floor for a durable instance on this machine: write one file of `bytes`, fdatasync,
 * link it into a directory, fsync the directory (what the listener does per instance with fsync
 * on, minus the network). Returns milliseconds per instance.
 */
function durableWriteFloorMs(dir: string, bytes: number, n = 40): number {
  mkdirSync(join(dir, 'final'), { recursive: true });
  const buf = Buffer.alloc(bytes, 1);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const tmp = join(dir, `t${i}`);
    const fd = openSync(tmp, 'w');
    writeSync(fd, buf);
    fdatasyncSync(fd);
    closeSync(fd);
    linkSync(tmp, join(dir, 'final', `f${i}`));
    unlinkSync(tmp);
    const dfd = openSync(join(dir, 'final'), 'r');
    fsyncSync(dfd);
    closeSync(dfd);
  }
  return Number(process.hrtime.bigint() - t0) / 1e6 / n;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

export interface ReceiveBenchRow {
  name: string;
  /** Median wall time of one storescu run, ms. */
  ms: number;
  /** Instances per second. */
  ips: number;
  mbs: number;
  /** storescp time / this time (1 = as fast as storescp). */
  ratio: number;
  /** Peak RSS of our listener process (MB), sampled. */
  rss: number | undefined;
}

/** Runs the receive benchmark (also used by `npm run bench`, src/bench/run-all.ts); returns its Markdown and rows. */
export async function receiveBench(slices = 300, rounds = 3): Promise<{ text: string; rows: ReceiveBenchRow[]; floorMs: number }> {
  const work = await mkdtemp(join(tmpdir(), 'mlsam-bench-'));
  try {
    process.stdout.write(`generating ${slices} slices 512x512 ...\n`);
    const series = await writeSyntheticSeries({ dir: join(work, 'series'), count: slices });
    const totalBytes = series.fileBytes * slices;
    const targets = [storescp, ours(true), ours(false)];
    const times = new Map<string, number[]>(targets.map((t) => [t.name, []]));
    const rss = new Map<string, number>();
    for (let round = 1; round <= rounds; round++) {
      for (const t of targets) {
        const out = join(work, `out-${round}-${targets.indexOf(t)}`);
        await mkdir(out, { recursive: true });
        const srv = await t.start(out);
        const r = await runTimed('storescu', ['+sd', '-aec', srv.aet, '127.0.0.1', String(srv.port), series.dir]);
        const stats = await srv.stop();
        if (r.code !== 0) throw new Error(`${t.name}: storescu failed (${r.code}): ${r.stderr.slice(0, 500)}`);
        times.get(t.name)!.push(r.ms);
        if (stats.rssMb !== undefined) rss.set(t.name, Math.max(rss.get(t.name) ?? 0, stats.rssMb));
        process.stdout.write(`round ${round}: ${t.name}: ${(r.ms / 1000).toFixed(2)} s\n`);
        await rm(out, { recursive: true, force: true });
      }
    }
    const floorMs = durableWriteFloorMs(join(work, 'floor'), series.fileBytes);
    const base = median(times.get(storescp.name)!);
    const rows = targets.map((t) => {
      const ms = median(times.get(t.name)!);
      const ips = slices / (ms / 1000);
      const mbs = totalBytes / 1048576 / (ms / 1000);
      return { name: t.name, ms, ips, mbs, ratio: base / ms, rss: rss.get(t.name) };
    });
    const lines = [
      `# Receive benchmark`,
      ``,
      `${new Date().toISOString()} · ${slices} instances of ${(series.fileBytes / 1024).toFixed(0)} KiB (512x512 16-bit CT, explicit VR LE), ` +
        `${(totalBytes / 1048576).toFixed(1)} MiB, one association, \`TCP_NODELAY=1 storescu\`, median of ${rounds} rounds · ` +
        `${cpus().length} CPUs · node ${process.version}`,
      ``,
      `| receiver | time (s) | instances/s | MB/s | ratio to storescp | peak RSS (MB) |`,
      `|---|---:|---:|---:|---:|---:|`,
      ...rows.map(
        (r) =>
          `| ${r.name} | ${(r.ms / 1000).toFixed(2)} | ${r.ips.toFixed(1)} | ${r.mbs.toFixed(1)} | ${r.ratio.toFixed(2)} | ${r.rss === undefined ? '' : r.rss.toFixed(0)} |`,
      ),
      ``,
      `Disk floor with fsync on this machine (write ${(series.fileBytes / 1024).toFixed(0)} KiB + fdatasync + link + ` +
        `directory fsync, no network): ${floorMs.toFixed(2)} ms per instance, i.e. at most ` +
        `${(1000 / floorMs).toFixed(0)} instances/s (${(1000 / floorMs / (slices / (base / 1000))).toFixed(2)} of storescp) for one association.`,
      ``,
      `All runs per target (s): ${rows
        .map(
          (r) =>
            `${r.name}: ${times
              .get(r.name)!
              .map((x) => (x / 1000).toFixed(2))
              .join(', ')}`,
        )
        .join('; ')}`,
      ``,
    ];
    return { text: lines.join('\n'), rows, floorMs };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const { text } = await receiveBench(arg('slices', 300), arg('rounds', 3));
  process.stdout.write(`\n${text}`);
  await mkdir(join(REPO, 'bench-results'), { recursive: true });
  await writeFile(join(REPO, 'bench-results', 'receive.md'), text);
}

// Run only as a script (`node dist/bench/receive.js`), not when imported by run-all.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
