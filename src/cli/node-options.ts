import type { Command } from 'commander';
import { loadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';

/** Flags shared by the daemon sub-commands; each overrides one config key. */
export interface NodeFlags {
  host?: string;
  port?: string;
  aet?: string;
  spool?: string;
  quietPeriod?: string;
  redis?: string;
  /** `mlsam admin` only. */
  httpHost?: string;
  httpPort?: string;
}

export function addNodeFlags(cmd: Command): Command {
  return cmd
    .option('--host <address>', 'bind address of the DICOM listener (dicom.host)')
    .option('--port <port>', 'DICOM port, 0 for any free port (dicom.port)')
    .option('--aet <title>', 'our AE title (dicom.aeTitle)')
    .option('--spool <dir>', 'spool directory (spool.dir)')
    .option('--quiet-period <seconds>', 'series quiet period (series.quietPeriodSeconds)')
    .option('--redis <url>', 'Redis URL (redis.url)');
}

const num = (flag: string, v: string): number => {
  const n = Number(v);
  if (!Number.isFinite(n)) throw Object.assign(new Error(`${flag}: not a number: ${v}`), { name: 'ConfigError' });
  return n;
};

/** loadConfig() with the flags applied last (validated like every other source). */
export function configFromFlags(flags: NodeFlags): Config {
  const dicom: Record<string, string | number> = {};
  if (flags.host !== undefined) dicom.host = flags.host;
  if (flags.port !== undefined) dicom.port = num('--port', flags.port);
  if (flags.aet !== undefined) dicom.aeTitle = flags.aet;
  const overrides: Record<string, Record<string, string | number>> = {};
  if (Object.keys(dicom).length) overrides.dicom = dicom;
  if (flags.spool !== undefined) overrides.spool = { dir: flags.spool };
  if (flags.quietPeriod !== undefined) overrides.series = { quietPeriodSeconds: num('--quiet-period', flags.quietPeriod) };
  if (flags.redis !== undefined) overrides.redis = { url: flags.redis };
  const http: Record<string, string | number> = {};
  if (flags.httpHost !== undefined) http.host = flags.httpHost;
  if (flags.httpPort !== undefined) http.port = num('--http-port', flags.httpPort);
  if (Object.keys(http).length) overrides.http = http;
  return loadConfig({ overrides });
}
