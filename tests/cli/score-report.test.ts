/**
 * The plain `mlsam score` report a person reads (issue 26 items 2, 3 and 6): the category beside the
 * band it comes from, what "k of N eligible slices" means, one slice numbering (scan order from 1, with
 * the DICOM instance number beside it) for key slices and the slice table, "1 slice" not "1 slices",
 * and on a terminal (a real pseudo-terminal through util-linux `script`) no JSON log lines among it.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { formatReport, scoreLogLevel } from '../../src/cli/score.js';
import type { ScoreResult } from '../../src/scoring/score.js';
import { REPO_ROOT, SHARED_DATA } from '../helpers/dicom-listener.js';
import { mlsam, MLSAM_MAIN } from '../helpers/process.js';

const png = (() => {
  const row = readFileSync(join(SHARED_DATA, 'covid-ct', 'split.csv'), 'utf8')
    .split('\n')
    .find((l) => /^CT_COVID\/.*\.png,1,test$/.test(l)) as string;
  return join(SHARED_DATA, 'covid-ct', row.split(',')[0] as string);
})();

/** Runs the CLI on a pseudo-terminal (stdout and stderr are a TTY), as a person at a shell does. */
function onTerminal(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; out: string }> {
  const cmd = [process.execPath, MLSAM_MAIN, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  return new Promise((resolve, reject) => {
    const child = spawn('script', ['-qec', cmd, '/dev/null'], { cwd: REPO_ROOT, env });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out: out.replace(/\r/g, '') }));
  });
}

const baseEnv = (): NodeJS.ProcessEnv => {
  const env: NodeJS.ProcessEnv = { ...process.env, TERM: 'dumb' };
  delete env.MLSAM_LOG__LEVEL;
  return env;
};

describe('mlsam score on a terminal', () => {
  it('keeps JSON log lines out of the report (info logs only when MLSAM_LOG__LEVEL asks); "1 slice"', async () => {
    const quietByDefault = await onTerminal(['score', png], baseEnv());
    expect(quietByDefault.code).toBe(0);
    expect(quietByDefault.out).toMatch(/NOT FOR DIAGNOSTIC USE/);
    expect(quietByDefault.out).not.toMatch(/"level":\d+/);
    expect(quietByDefault.out).toMatch(/^series image .*: 1 slice$/m);
    expect(quietByDefault.out).toMatch(/^1 slice in [\d.]+ s/m);
    expect(quietByDefault.out).not.toMatch(/slice\(s\)|(?<![/\d])1 slices/);
    // Asked for, the logs are there (so the check above can fail).
    const asked = await onTerminal(['score', png], { ...baseEnv(), MLSAM_LOG__LEVEL: 'info' });
    expect(asked.out).toMatch(/"level":30.*"msg":"model loaded"/);
    // --quiet: no progress line either.
    const quiet = await onTerminal(['score', '--quiet', png], baseEnv());
    expect(quiet.out).not.toMatch(/"level":|series 1\/1:/);
  });

  it('log level: warnings on a terminal unless the environment sets it, errors with --quiet', () => {
    expect(scoreLogLevel('info', { quiet: false, terminal: true, levelFromEnv: false })).toBe('warn');
    expect(scoreLogLevel('info', { quiet: false, terminal: true, levelFromEnv: true })).toBe('info');
    expect(scoreLogLevel('info', { quiet: false, terminal: false, levelFromEnv: false })).toBe('info');
    expect(scoreLogLevel('debug', { quiet: true, terminal: false, levelFromEnv: true })).toBe('error');
    expect(scoreLogLevel('silent', { quiet: false, terminal: true, levelFromEnv: false })).toBe('silent');
  });
});

describe('the report of a CT series (P001)', () => {
  let r: ScoreResult;
  let text: string;
  beforeAll(async () => {
    const run = await mlsam(['score', '--json', join(SHARED_DATA, 'covid-ct-md', 'P001')]);
    expect(run.code, run.stderr).toBe(0);
    r = JSON.parse(run.stdout) as ScoreResult;
    text = formatReport(r);
  });

  it('says the category with the band it comes from', () => {
    const s = r.series[0]!;
    const lo = (s.threshold - s.indeterminateMargin).toFixed(2);
    const hi = (s.threshold + s.indeterminateMargin).toFixed(2);
    const band = s.category === 'likely' ? `${hi} or above` : s.category === 'unlikely' ? `${lo} or below` : `${lo}–${hi}`;
    expect(text).toContain(`score ${s.score.toFixed(4)} — ${s.category} (${band})`);
    expect(text).toContain(`unlikely ${lo} or below, indeterminate ${lo}–${hi}, likely ${hi} or above`);
  });

  it('explains the eligible slices', () => {
    const s = r.series[0]!;
    expect(s.minLungFraction).toBeGreaterThan(0);
    const ineligible = r.slices.filter((x) => x.eligible === false).length;
    expect(ineligible).toBe(s.slices - s.eligibleSlices);
    expect(text).toContain(`the score uses the ${s.k} slices with the highest probability among the ${s.eligibleSlices} eligible`);
    expect(text).toContain(
      `eligible: ${s.eligibleSlices} of ${s.slices} slices show enough lung to count (at least ${Math.round(100 * s.minLungFraction!)} % of the series' largest lung area); the other ${ineligible}`,
    );
  });

  it('numbers key slices and the slice table the same way, with the instance number beside', () => {
    const lines = text.split('\n');
    for (const k of r.series[0]!.keySlices) {
      const sl = r.slices.find((x) => x.sopInstanceUid === k.sopInstanceUid)!;
      expect(sl.index).toBe(k.index);
      const keyLine = lines.find((l) => l.includes(k.sopInstanceUid!) && l.includes('(CNN'))!;
      expect(keyLine).toMatch(new RegExp(`^\\s+slice\\s+${k.index + 1}\\s+instance\\s+${sl.instanceNumber}\\s`));
      const row = lines.find((l) => l.includes(k.sopInstanceUid!) && !l.includes('(CNN'))!;
      expect(row).toMatch(new RegExp(`^\\s+${k.index + 1}\\s+${sl.instanceNumber}\\s+${k.probability.toFixed(4)}\\s`));
    }
  });
});
