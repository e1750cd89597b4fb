import type { Command } from 'commander';
import { createLogger } from '../log.js';
import { configFromFlags } from './node-options.js';

interface AdminFlags {
  httpHost?: string;
  httpPort?: string;
  redis?: string;
  spool?: string;
}

export function registerAdmin(program: Command): void {
  program
    .command('admin')
    .description('run the admin HTTP server: dashboard, queues, REST API, /metrics, /healthz, /readyz; spool retention')
    .option('--http-host <address>', 'bind address (http.host); a non-loopback address needs http.password')
    .option('--http-port <port>', 'HTTP port, 0 for any free port (http.port)')
    .option('--spool <dir>', 'spool directory (spool.dir)')
    .option('--redis <url>', 'Redis URL (redis.url)')
    .action(async (flags: AdminFlags) => {
      const base = configFromFlags({
        ...(flags.spool !== undefined ? { spool: flags.spool } : {}),
        ...(flags.redis !== undefined ? { redis: flags.redis } : {}),
      });
      const http = { ...base.http };
      if (flags.httpHost !== undefined) http.host = flags.httpHost;
      if (flags.httpPort !== undefined) {
        const n = Number(flags.httpPort);
        if (!Number.isInteger(n) || n < 0 || n > 65535) throw Object.assign(new Error(`--http-port: not a port: ${flags.httpPort}`), { name: 'ConfigError' });
        http.port = n;
      }
      const { configSchema } = await import('../config/schema.js');
      // Validated again: the loopback/password rule applies to the flags too.
      const parsed = configSchema.safeParse({ ...base, http });
      if (!parsed.success) {
        const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
        throw Object.assign(new Error(`invalid configuration:\n${lines.join('\n')}`), { name: 'ConfigError' });
      }
      const config = parsed.data;
      const logger = createLogger(config.log.level);
      const [{ adminRole }, { runUntilSignal }] = await Promise.all([import('../node/admin-role.js'), import('../node/node.js')]);
      await runUntilSignal({ config, logger }, [adminRole]);
    });
}
