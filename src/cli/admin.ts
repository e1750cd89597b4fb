import type { Command } from 'commander';
import { createLogger } from '../log.js';
import { configFromFlags, type NodeFlags } from './node-options.js';

type AdminFlags = Pick<NodeFlags, 'httpHost' | 'httpPort' | 'redis' | 'spool'>;

export function registerAdmin(program: Command): void {
  program
    .command('admin')
    .description('run the admin HTTP server: dashboard, queues, REST API, /metrics, /healthz, /readyz; spool retention')
    .option('--http-host <address>', 'bind address (http.host); a non-loopback address needs http.password')
    .option('--http-port <port>', 'HTTP port, 0 for any free port (http.port)')
    .option('--spool <dir>', 'spool directory (spool.dir)')
    .option('--redis <url>', 'Redis URL (redis.url)')
    .action(async (flags: AdminFlags) => {
      // The flags are config overrides, validated with everything else (the loopback/password rule included).
      const config = configFromFlags(flags);
      const logger = createLogger(config.log.level);
      const [{ adminRole }, { runUntilSignal }] = await Promise.all([import('../node/admin-role.js'), import('../node/node.js')]);
      await runUntilSignal({ config, logger }, [adminRole], 'admin');
    });
}
