/**
 * A real `mlsam serve` daemon for end-to-end tests (dist/cli/main.js, real Redis): a temporary work
 * folder holding its config, log and spool, a Redis key prefix of its own (dropped afterwards, never
 * FLUSHDB: Redis is shared) and a connection for the test to read the node's state with.
 *
 *   const serve = await ServeNode.open('e2e-study');
 *   await serve.start({ dicom: { aeTitle: 'MLSAM', host: '127.0.0.1', port }, series: { … } });
 *   const rec = await waitFor(async () => { serve.checkRunning(); return serve.record(uid); }, …);
 *   await serve.close();
 *
 * With MLSAM_TEST_NODE_LOG=<file> the daemon's last log is kept in that file at close.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import type { ResultRecord } from '../../src/contracts/result-record.js';
import { dropRedisPrefix, MlsamProcess } from '../../src/demo/processes.js';
import { Keys } from '../../src/stores/keys.js';
import { SHARED_DATA } from './dicom-listener.js';
import { uniquePrefix } from '../queue/helpers.js';

export const REDIS_URL = 'redis://127.0.0.1:6379';

/** A real chest CT of ../shared/data (covid-ct-md P001: 148 slices, JPEG Lossless as published). */
export const P001 = join(SHARED_DATA, 'covid-ct-md', 'P001');
/** The 40 slices _50 … _89 of P001 (file names): the chest subset the end-to-end tests score, to keep CI time down. */
export const P001_SUBSET_NAMES: readonly string[] = Array.from({ length: 40 }, (_, i) => `98C14734-ASSH_${50 + i}.dcm`);
/** The same 40 slices as paths. */
export const P001_SUBSET: readonly string[] = P001_SUBSET_NAMES.map((f) => join(P001, f));

export class ServeNode {
  private current: MlsamProcess | undefined;
  private starts = 0;

  private constructor(
    /** The temporary folder: config, log, spool (`<work>/spool`) and whatever the test writes. */
    readonly work: string,
    readonly prefix: string,
    /** The test's own Redis connection (the node has its own). */
    readonly redis: Redis,
    readonly keys: Keys,
    private readonly tag: string,
  ) {}

  static async open(tag: string): Promise<ServeNode> {
    const work = await mkdtemp(join(tmpdir(), `mlsam-${tag}-`));
    const prefix = uniquePrefix(tag);
    return new ServeNode(work, prefix, new Redis(REDIS_URL, { maxRetriesPerRequest: 2 }), new Keys(prefix), tag);
  }

  /** The running (or last started) daemon. */
  get node(): MlsamProcess {
    if (!this.current) throw new Error('mlsam serve was not started');
    return this.current;
  }

  /**
   * Starts `mlsam serve` with `config` (redis, spool and log default to this node's prefix, its
   * work folder's spool and level info) and waits for its DICOM listener. Again after stop(): a
   * restart on the same Redis state and spool.
   */
  async start(config: Record<string, unknown>): Promise<MlsamProcess> {
    this.current = await MlsamProcess.start({
      command: 'serve',
      workDir: this.work,
      name: `serve-${this.tag}-${++this.starts}`,
      config: {
        redis: { url: REDIS_URL, keyPrefix: this.prefix },
        spool: { dir: join(this.work, 'spool') },
        log: { level: 'info' },
        ...config,
      },
    });
    await this.current.waitListening(60_000);
    return this.current;
  }

  /** Stops the daemon (SIGTERM); its exit code. */
  async stop(): Promise<number | null> {
    return this.node.stop();
  }

  /** Throws with the tail of the daemon's log when it exited (call inside waitFor loops). */
  checkRunning(): void {
    if (!this.node.running) throw new Error(`mlsam serve exited:\n${this.node.log().slice(-3000)}`);
  }

  /** The result record of a series, as the node keeps it in Redis. */
  async record(seriesInstanceUid: string): Promise<ResultRecord | undefined> {
    const j = await this.redis.get(this.keys.result(seriesInstanceUid));
    return j ? (JSON.parse(j) as ResultRecord) : undefined;
  }

  /** Stops the daemon and removes its Redis keys and work folder. */
  async close(): Promise<void> {
    if (process.env.MLSAM_TEST_NODE_LOG && this.current) await writeFile(process.env.MLSAM_TEST_NODE_LOG, this.current.log());
    await this.current?.stop();
    this.redis.disconnect();
    await dropRedisPrefix(REDIS_URL, this.prefix);
    await rm(this.work, { recursive: true, force: true });
  }
}
