/**
 * The listener under fuzzing (fuzz-cases.ts, fuzz-campaign.ts). `npm test` runs the quick mode
 * (1,000 cases, fixed seed); `npm run fuzz` the long one (FUZZ_MODE=long: 10,000 cases, a fresh
 * seed) and writes test-artifacts/fuzz-report.json. Settings:
 *   FUZZ_CASES, FUZZ_SEED, FUZZ_CONCURRENCY   override the mode's defaults
 *   FUZZ_REPLAY=<file.json | folder>          run saved failing cases (test-artifacts/fuzz-failures/) instead
 * Both modes also replay tests/robustness/corpus/: cases earlier runs found (saved the same way).
 */
import { mkdtemp, readdir, readFile, rm, mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { REPO_ROOT } from '../helpers/dicom-listener.js';
import { deserializeCase, generateCase, type FuzzCase } from './fuzz-cases.js';
import { runCampaign, type FuzzReport } from './fuzz-campaign.js';

const LONG = process.env.FUZZ_MODE === 'long';
const REPLAY = process.env.FUZZ_REPLAY;
const SEED = Number(process.env.FUZZ_SEED ?? (LONG ? Math.floor(Math.random() * 2 ** 31) : 13013));
const COUNT = Number(process.env.FUZZ_CASES ?? (LONG ? 10_000 : 1_000));
const CONCURRENCY = Number(process.env.FUZZ_CONCURRENCY ?? 12);
const ARTIFACTS = join(REPO_ROOT, 'test-artifacts');
const CORPUS = fileURLToPath(new URL('corpus', import.meta.url));

const cleanup: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const c of cleanup.reverse()) await c();
});

async function replayCases(path: string): Promise<FuzzCase[]> {
  const files = path.endsWith('.json') ? [path] : (await readdir(path)).filter((f) => f.endsWith('.json')).map((f) => join(path, f));
  return Promise.all(files.map(async (f) => deserializeCase(await readFile(f, 'utf8'))));
}

function summary(r: FuzzReport): string {
  return [
    `fuzz: ${r.cases} cases (seed ${r.seed}, ${r.concurrency} connections at once) in ${(r.ms / 1000).toFixed(1)} s`,
    `  crashes ${r.crashes}, hangs ${r.hangs}, failures ${r.failures.length}`,
    `  C-STORE answers ${JSON.stringify(r.statuses)}; acknowledged ${r.acknowledged}, spooled ${r.spooled}`,
    `  listener RSS ${r.rssMb.baseline} MB at start, ${r.rssMb.peak} MB peak, ${r.rssMb.end} MB at end`,
    `  open fds ${r.fds.baseline} at start, ${r.fds.peak} peak, ${r.fds.end} at end; temp files ${r.tempFiles.peak} peak, ${r.tempFiles.end} at end`,
  ].join('\n');
}

it(
  `${REPLAY ? 'replays saved fuzz cases' : `survives ${COUNT} fuzz cases`}: no crash, no hang, Success only for what is stored and readable, nothing leaks`,
  async () => {
    const spoolDir = await mkdtemp(join(tmpdir(), 'mlsam-fuzz-'));
    cleanup.push(() => rm(spoolDir, { recursive: true, force: true }));
    const replay = REPLAY ? await replayCases(REPLAY) : undefined;
    const corpus = replay ? [] : await replayCases(CORPUS);
    const report = await runCampaign({
      spoolDir,
      artifactsDir: join(ARTIFACTS, REPLAY ? 'fuzz-replay' : ''),
      seed: SEED,
      count: replay?.length ?? COUNT + corpus.length,
      concurrency: CONCURRENCY,
      cases: (i) => replay?.[i] ?? (i < COUNT ? generateCase(SEED, i) : corpus[i - COUNT]!),
      onProgress: (done, total, r) => {
        if (LONG) console.log(`fuzz: ${done}/${total} cases, ${r.failures.length} failures, RSS peak ${r.rssMb.peak} MB`);
      },
    });
    console.log(summary(report));
    await mkdir(ARTIFACTS, { recursive: true });
    await writeFile(join(ARTIFACTS, LONG ? 'fuzz-report.json' : 'fuzz-report-quick.json'), `${JSON.stringify(report, null, 1)}\n`);
    for (const f of report.failures.slice(0, 20))
      console.log(`  ${f.kind} (case ${f.index}): ${f.detail.slice(0, 300)}${f.saved ? `\n    saved: ${f.saved}` : ''}`);
    expect(report.crashes).toBe(0);
    expect(report.hangs).toBe(0);
    expect(report.failures).toEqual([]);
    expect(report.tempFiles.end).toBe(0);
    expect(report.fds.end).toBeLessThanOrEqual(report.fds.baseline + 1);
    if (!replay) {
      // The cases really exercise the store path: plenty of Success and plenty of refusals.
      expect(report.acknowledged).toBeGreaterThan(COUNT / 4);
      expect(report.statuses['0xc000'] ?? 0).toBeGreaterThan(COUNT / 50);
    }
    // Memory stays near its PDU buffers, whatever was thrown at it.
    expect(report.rssMb.peak - report.rssMb.baseline).toBeLessThan(250);
  },
  LONG ? 3 * 3600_000 : 600_000,
);
