import type { Command } from 'commander';
import { createLogger } from '../log.js';
import { addNodeFlags, configFromFlags, type NodeFlags } from './node-options.js';

export function registerListen(program: Command): void {
  addNodeFlags(
    program.command('listen').description('run the DICOM listener: receive series into the spool, track them, queue complete ones'),
  ).action(async (flags: NodeFlags) => {
    const config = configFromFlags(flags);
    const logger = createLogger(config.log.level);
    const [{ listenerRole }, { runUntilSignal }] = await Promise.all([import('../node/listener-role.js'), import('../node/node.js')]);
    await runUntilSignal({ config, logger }, [listenerRole], 'listen');
  });
}
