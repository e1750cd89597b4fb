/**
 * The plain start-up summary `mlsam serve` / `listen` / `work` / `admin` print on a terminal, once
 * every role is up: where DICOM goes in, the dashboard and its login, where results go. The
 * JSON log lines on stderr stay as they are (for machines); the summary goes to stdout, and only
 * when stdout is a terminal.
 */
import type { Config } from '../config/schema.js';
import type { Role } from './role.js';

export function startupSummary(config: Config, command: string, roles: readonly Role[]): string {
  const lines = roles.flatMap((r) => r.summary?.() ?? []);
  const redis = config.redis.url.replace(/\/\/[^@/]*@/, '//***@');
  lines.push(['Redis', `${redis} (key prefix ${config.redis.keyPrefix})`]);
  lines.push(['Logs', `JSON lines on stderr (log.level ${config.log.level})`]);
  const width = Math.max(...lines.map(([label]) => label.length));
  return [
    `mlsam ${command} is running (pid ${process.pid}). NOT FOR DIAGNOSTIC USE.`,
    ...lines.map(([label, text]) => `  ${label.padEnd(width)}  ${text}`),
    'Stop it with Ctrl-C.',
    '',
  ].join('\n');
}
