import type { Command } from 'commander';
import { createLogger } from '../log.js';
import type { RoleFactory } from '../node/role.js';
import { addNodeFlags, configFromFlags, type NodeFlags } from './node-options.js';

/**
 * Every role in one process. Roles are started in this order and stopped in reverse; the
 * inference and dispatch workers and the admin HTTP server join this list as they are built.
 */
export async function serveRoles(): Promise<readonly RoleFactory[]> {
  const { listenerRole } = await import('../node/listener-role.js');
  const { workerRole } = await import('../node/worker-role.js');
  const { adminRole } = await import('../node/admin-role.js');
  return [listenerRole, workerRole, adminRole];
}

export function registerServe(program: Command): void {
  addNodeFlags(program.command('serve').description('run every role in one process (listener, workers, admin)')).action(
    async (flags: NodeFlags) => {
      const config = configFromFlags(flags);
      const logger = createLogger(config.log.level);
      // Loaded on demand: `mlsam --help` and the SCU tools need not load BullMQ and the listener.
      const { runUntilSignal } = await import('../node/node.js');
      await runUntilSignal({ config, logger }, await serveRoles(), 'serve');
    },
  );
}
