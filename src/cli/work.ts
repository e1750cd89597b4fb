import type { Command } from 'commander';
import { createLogger } from '../log.js';
import { configFromFlags, type NodeFlags } from './node-options.js';

export function registerWork(program: Command): void {
  program
    .command('work')
    .description('run the workers: score queued series (inference), then the results and dispatch stages')
    .option('--redis <url>', 'Redis URL (redis.url)')
    .option('--spool <dir>', 'spool directory (spool.dir)')
    .action(async (flags: NodeFlags) => {
      const config = configFromFlags(flags);
      const logger = createLogger(config.log.level);
      const [{ workerRole }, { runUntilSignal }] = await Promise.all([import('../node/worker-role.js'), import('../node/node.js')]);
      await runUntilSignal({ config, logger }, [workerRole], 'work');
    });
}
