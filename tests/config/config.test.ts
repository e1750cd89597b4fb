import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, envOverrides, loadConfig } from '../../src/config/load.js';

const tmp = mkdtempSync(join(tmpdir(), 'mlsam-config-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const file = (name: string, content: unknown): string => {
  const p = join(tmp, name);
  writeFileSync(p, typeof content === 'string' ? content : JSON.stringify(content));
  return p;
};

describe('configuration loader', () => {
  it('loads the shipped defaults with the DESIGN contract keys', () => {
    const cfg = loadConfig({ env: {} });
    expect(cfg.dicom).toMatchObject({ aeTitle: 'MLSAM', host: '0.0.0.0', port: 11112 });
    expect(cfg.dicom.allowedCallers).toEqual([{ aeTitle: '*', host: '*' }]);
    expect(cfg.redis.url).toBe('redis://127.0.0.1:6379');
    expect(cfg.series.quietPeriodSeconds).toBe(30);
    expect(cfg.destinations).toEqual([]);
    expect(cfg.http).toMatchObject({ host: '127.0.0.1', port: 8080, username: 'admin', password: '' });
    expect(cfg.model.providers).toEqual(['cpu']);
  });

  it('deep-merges MLSAM_CONFIG over the defaults, arrays replace', () => {
    const p = file('site.json', {
      dicom: { aeTitle: 'AI_NODE', allowedCallers: [{ aeTitle: 'PACS', host: '10.0.0.5' }] },
      destinations: [{ name: 'pacs', aeTitle: 'ORTHANC', host: '127.0.0.1', port: 4242 }],
    });
    const cfg = loadConfig({ env: { MLSAM_CONFIG: p } });
    expect(cfg.dicom.aeTitle).toBe('AI_NODE');
    expect(cfg.dicom.port).toBe(11112); // untouched sibling survives the merge
    expect(cfg.dicom.allowedCallers).toEqual([{ aeTitle: 'PACS', host: '10.0.0.5' }]);
    expect(cfg.destinations[0]?.port).toBe(4242);
  });

  it('applies MLSAM_* environment overrides last, parsing JSON values', () => {
    const p = file('port.json', { dicom: { port: 2000 } });
    const cfg = loadConfig({
      env: {
        MLSAM_CONFIG: p,
        MLSAM_DICOM__PORT: '3000',
        MLSAM_SERIES__QUIET_PERIOD_SECONDS: '2.5',
        MLSAM_REDIS__URL: 'redis://127.0.0.1:6390',
        MLSAM_MODEL__PROVIDERS: '["cuda","cpu"]',
      },
    });
    expect(cfg.dicom.port).toBe(3000);
    expect(cfg.series.quietPeriodSeconds).toBe(2.5);
    expect(cfg.redis.url).toBe('redis://127.0.0.1:6390');
    expect(cfg.model.providers).toEqual(['cuda', 'cpu']);
    expect(envOverrides({ MLSAM_SPOOL__MAX_DISK_USAGE_PERCENT: '90' })).toEqual({ spool: { maxDiskUsagePercent: 90 } });
  });

  it('names the offending key for unknown keys, wrong types and bad values', () => {
    expect(() => loadConfig({ env: { MLSAM_DICOM__PORTT: '1' } })).toThrow(/dicom\.portt/);
    expect(() => loadConfig({ env: { MLSAM_DICOM__PORT: '"abc"' } })).toThrow(/dicom\.port/);
    expect(() => loadConfig({ env: { MLSAM_DICOM__AE_TITLE: '"THIS_AE_TITLE_IS_TOO_LONG"' } })).toThrow(/dicom\.aeTitle/);
    expect(() => loadConfig({ env: { MLSAM_CONFIG: file('bad.json', '{ nope') } })).toThrow(ConfigError);
    expect(() => loadConfig({ env: { MLSAM_CONFIG: join(tmp, 'missing.json') } })).toThrow(/cannot read/);
  });

  it('drift: the defaults, a validation period as the reference, and the keys named when wrong', () => {
    const d = loadConfig({ env: {} }).drift;
    expect(d).toMatchObject({ reference: { kind: 'first', studies: 100 }, current: { kind: 'last', studies: 100 }, minStudies: 30 });
    expect(d.psiBands).toEqual({ moderate: 0.1, shift: 0.25 });
    const period = loadConfig({
      env: { MLSAM_DRIFT__REFERENCE: '{"kind":"period","from":"2026-01-01","to":"2026-03-31"}', MLSAM_DRIFT__CURRENT__KIND: '"days"' },
    }).drift;
    expect(period.reference).toEqual({ kind: 'period', studies: 100, from: '2026-01-01', to: '2026-03-31' });
    expect(period.current).toEqual({ kind: 'days', studies: 100, days: 30 });
    expect(() => loadConfig({ env: { MLSAM_DRIFT__REFERENCE__KIND: '"period"' } })).toThrow(
      /drift\.reference\.from.*must be set when drift\.reference\.kind is "period"/,
    );
    expect(() => loadConfig({ env: { MLSAM_DRIFT__REFERENCE: '{"kind":"period","from":"2026-04-01","to":"2026-03-31"}' } })).toThrow(
      /drift\.reference\.to.*must not be before/,
    );
    expect(() => loadConfig({ env: { MLSAM_DRIFT__REFERENCE__FROM: '"last spring"' } })).toThrow(/drift\.reference\.from.*ISO-8601/);
    expect(() => loadConfig({ env: { MLSAM_DRIFT__PSI_BANDS: '{"moderate":0.3,"shift":0.2}' } })).toThrow(/drift\.psiBands/);
  });

  it('names the environment variable the user set and suggests the nearest key (issue 26 item 8)', () => {
    const msg = (env: NodeJS.ProcessEnv): string => {
      try {
        loadConfig({ env });
      } catch (err) {
        return (err as Error).message;
      }
      throw new Error('no error');
    };
    expect(msg({ MLSAM_DICOM__AE_TITEL: 'X' })).toContain(
      'dicom.aeTitel (set by MLSAM_DICOM__AE_TITEL): unknown key; did you mean aeTitle (MLSAM_DICOM__AE_TITLE)?',
    );
    expect(msg({ MLSAM_DICOM__PROT: '104' })).toContain('did you mean port (MLSAM_DICOM__PORT)?');
    expect(msg({ MLSAM_SERIES__QUIET_PERIOD: '5' })).toContain('did you mean quietPeriodSeconds (MLSAM_SERIES__QUIET_PERIOD_SECONDS)?');
    expect(msg({ MLSAM_DICOM__PORT: 'abc' })).toMatch(/dicom\.port \(set by MLSAM_DICOM__PORT\): .*expected number/);
    // A variable that set a whole array or object is named for the problems inside it.
    expect(msg({ MLSAM_DESTINATIONS: '[{"name":"pacs","aeTitle":"PACS","host":"10.0.0.2","port":"104"}]' })).toMatch(
      /destinations\.0\.port \(set by MLSAM_DESTINATIONS\): .*expected number/,
    );
    // Nothing near: the known keys at that level instead of a wrong guess.
    expect(msg({ MLSAM_DICOM__ZZZZZZ: '1' })).toMatch(
      /dicom\.zzzzzz \(set by MLSAM_DICOM__ZZZZZZ\): unknown key; known keys here: aeTitle, host, port,/,
    );
    // A key from the MLSAM_CONFIG file names the file.
    const f = file('typo.json', { http: { pasword: 'x' } });
    expect(msg({ MLSAM_CONFIG: f })).toContain(`http.pasword (in ${f}): unknown key; did you mean password?`);
  });

  it('refuses an empty HTTP password on a non-loopback host', () => {
    expect(() => loadConfig({ env: { MLSAM_HTTP__HOST: '0.0.0.0' } })).toThrow(/http\.password/);
    expect(loadConfig({ env: { MLSAM_HTTP__HOST: '0.0.0.0', MLSAM_HTTP__PASSWORD: 's3cret' } }).http.password).toBe('s3cret');
  });

  it('stops the CLI at start-up with a message naming the bad key', () => {
    const r = spawnSync(process.execPath, ['dist/cli/main.js', 'listen'], {
      env: { ...process.env, MLSAM_SERIES__QUIET_PERIOD_SECONDS: '-1' },
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/series\.quietPeriodSeconds/);
  });
});
