import type { Dirent } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { createLogger } from '../../src/log.js';
import type { AssociationRecord, ReceivedInstance } from '../../src/dicom/received-instance.js';
import { DicomListener } from '../../src/dicom/scp/listener.js';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const SHARED_DATA = resolve(REPO_ROOT, '..', 'shared', 'data');

type DicomOverrides = Partial<Config['dicom']>;

export interface TestListener {
  listener: DicomListener;
  config: Config;
  port: number;
  spoolDir: string;
  instances: ReceivedInstance[];
  records: AssociationRecord[];
  /** Resolves once no connection is open any more (every association fully ended). */
  idle(timeoutMs?: number): Promise<void>;
  /** Resolves once `n` association records have arrived. */
  waitForRecords(n: number, timeoutMs?: number): Promise<AssociationRecord[]>;
  stop(): Promise<void>;
}

/** A DicomListener on 127.0.0.1:<free port> with a temp spool and a sink/observer that record. */
export async function startTestListener(
  opts: { dicom?: DicomOverrides; spool?: Partial<Config['spool']>; fsync?: boolean } = {},
): Promise<TestListener> {
  const spoolDir = await mkdtemp(join(tmpdir(), 'mlsam-spool-'));
  const config = loadConfig({
    env: {},
    overrides: {
      dicom: { host: '127.0.0.1', port: 0, ...(opts.dicom ?? {}) },
      spool: { dir: spoolDir, ...(opts.spool ?? {}) },
    } as never,
  });
  const instances: ReceivedInstance[] = [];
  const records: AssociationRecord[] = [];
  const listener = new DicomListener({
    config,
    logger: createLogger(process.env.TEST_LOG_LEVEL ?? 'silent'),
    sink: { instanceStored: async (i) => void instances.push(i) },
    observer: { associationEnded: async (r) => void records.push(r) },
    ...(opts.fsync === undefined ? {} : { fsync: opts.fsync }),
  });
  const { port } = await listener.start();
  return {
    listener,
    config,
    port,
    spoolDir,
    instances,
    records,
    async idle(timeoutMs = 10_000) {
      const until = Date.now() + timeoutMs;
      while (listener.connections > 0) {
        if (Date.now() > until) throw new Error(`${listener.connections} connections still open`);
        await new Promise((r) => setTimeout(r, 10));
      }
    },
    async waitForRecords(n, timeoutMs = 10_000) {
      const until = Date.now() + timeoutMs;
      while (records.length < n) {
        if (Date.now() > until) throw new Error(`only ${records.length} of ${n} association records`);
        await new Promise((r) => setTimeout(r, 20));
      }
      return records;
    },
    async stop() {
      await listener.stop();
      await rm(spoolDir, { recursive: true, force: true });
    },
  };
}

/** Files in the spool's final namespace (not .tmp, not results), sorted. */
export async function spoolFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    let entries: Dirent[];
    try {
      entries = await readdir(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (e.name === '.tmp' || (d === dir && e.name === 'results')) continue;
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else out.push(p);
    }
  };
  await walk(dir);
  return out.sort();
}
