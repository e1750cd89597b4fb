/**
 * A DicomListener in a process of its own, for memory measurements (tests, benchmark): config
 * from the environment (MLSAM_* as usual), a sink that only counts. Prints one JSON line when
 * listening ({"port":…}) and then a sample every LISTENER_SAMPLE_MS (default 200) ms:
 * {"instances":…,"rss":…,"heapUsed":…,"external":…,"arrayBuffers":…}. Stops on SIGTERM or
 * when stdin closes. LISTENER_NO_FSYNC=1 turns fsync off (benchmark comparison only).
 */
import { loadConfig } from '../../config/load.js';
import { createLogger } from '../../log.js';
import { DicomListener } from '../scp/listener.js';

const config = loadConfig();
let instances = 0;
let bytes = 0;
const listener = new DicomListener({
  config,
  logger: createLogger(process.env.MLSAM_LOG__LEVEL ?? 'warn'),
  fsync: process.env.LISTENER_NO_FSYNC !== '1',
  sink: {
    instanceStored: async (i) => {
      instances++;
      bytes += i.bytes;
    },
  },
});
const { port } = await listener.start();
process.stdout.write(`${JSON.stringify({ port })}\n`);
const sample = (): void => {
  const m = process.memoryUsage();
  process.stdout.write(
    `${JSON.stringify({ t: Date.now(), instances, bytes, rss: m.rss, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers })}\n`,
  );
};
const timer = setInterval(sample, Number(process.env.LISTENER_SAMPLE_MS ?? 200));
let stopping = false;
const stop = async (): Promise<void> => {
  if (stopping) return;
  stopping = true;
  clearInterval(timer);
  sample();
  await listener.stop({ graceMs: 0 });
  process.exit(0);
};
process.on('SIGTERM', () => void stop());
process.stdin.on('end', () => void stop());
process.stdin.resume();
