import { spawn } from 'node:child_process';

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a DCMTK (or other) command with TCP_NODELAY=1 in its environment. */
export function run(cmd: string, args: string[], opts: { timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: { ...process.env, TCP_NODELAY: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** `dcmdump` of the dataset only (file meta lines dropped), for comparing sent and spooled files. */
export async function dumpDataset(path: string, opts: { ignoreEncoding?: boolean } = {}): Promise<string> {
  const r = await run('dcmdump', ['+L', '+U8', path]);
  if (r.code !== 0) throw new Error(`dcmdump ${path} failed: ${r.stderr}`);
  const lines = r.stdout.split('\n');
  const start = lines.findIndex((l) => l.startsWith('# Dicom-Data-Set'));
  const ds = lines.slice(start + 1);
  if (!opts.ignoreEncoding) return ds.join('\n');
  // Values only: the transfer syntax line, sequence/item length encoding (storescu re-encodes
  // undefined-length sequences with explicit lengths when it sends) and delimiters are dropped.
  return ds
    .filter((l) => !l.startsWith('# Used TransferSyntax') && !/\(fffe,e0[0d]d\)/.test(l))
    .map((l) =>
      l
        .replace(/\((Sequence|Item) with (explicit|undefined) length (#=\d+)\)/, '($1 $4)')
        .replace(/#\s*(u\/l|\d+),/, '#')
        .replace(/\s+#/, ' #'),
    )
    .join('\n');
}
