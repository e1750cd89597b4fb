import type { Logger } from '../log.js';
import type { NodeContext, Role, RoleFactory } from './role.js';
import { startupSummary } from './summary.js';

export interface RunningNode {
  readonly roles: readonly Role[];
  /** Stops the roles in reverse start order; safe to call more than once. */
  stop(): Promise<void>;
}

/** Starts the roles in order; if one fails, the ones already started are stopped again. */
export async function startNode(ctx: NodeContext, factories: readonly RoleFactory[]): Promise<RunningNode> {
  const started: Role[] = [];
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      for (const role of [...started].reverse()) {
        try {
          await role.stop();
          ctx.logger.info({ role: role.name }, 'role stopped');
        } catch (err) {
          ctx.logger.error({ role: role.name, err: (err as Error).message }, 'role did not stop cleanly');
        }
      }
    })());
  try {
    for (const factory of factories) {
      const role = factory(ctx);
      await role.start();
      started.push(role);
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { roles: started, stop };
}

/**
 * Runs a node until SIGTERM or SIGINT, then shuts it down gracefully and exits 0. A second
 * signal, or a shutdown longer than `shutdownTimeoutMs`, exits 1 at once. Once started, prints
 * the start-up summary on stdout when that is a terminal (`command` names it).
 */
export async function runUntilSignal(
  ctx: NodeContext,
  factories: readonly RoleFactory[],
  command: string,
  shutdownTimeoutMs = 30_000,
): Promise<void> {
  const logger: Logger = ctx.logger;
  process.on('unhandledRejection', (reason) => {
    const message = reason instanceof Error ? reason.message : String(reason);
    // ioredis (offline queue off) can reject an internal command without a handler when Redis
    // drops a connection (e.g. during its handshake): harmless here, the spool is the source of
    // truth and the reconciler rebuilds Redis state. Anything else is a bug: log it and exit.
    if (/enableOfflineQueue|Connection is closed|ECONNREFUSED|ECONNRESET|MaxRetriesPerRequest/i.test(message)) {
      logger.warn({ err: message }, 'redis command rejected while disconnected');
      return;
    }
    logger.fatal({ err: message, stack: reason instanceof Error ? reason.stack : undefined }, 'unhandled rejection');
    logger.flush();
    process.exit(1);
  });
  // Handlers first: a signal while the later roles are still starting (the worker loads its model)
  // must shut down gracefully too, not kill the process mid-start.
  let signalled: NodeJS.Signals | undefined;
  let onStopRequested: (() => void) | undefined;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (signalled) {
      logger.warn({ signal }, 'second signal: exiting now');
      logger.flush();
      process.exit(1);
    }
    signalled = signal;
    logger.info({ signal }, 'shutting down');
    const timer = setTimeout(() => {
      logger.error({ shutdownTimeoutMs }, 'shutdown timed out: exiting');
      logger.flush();
      process.exit(1);
    }, shutdownTimeoutMs);
    timer.unref();
    onStopRequested?.();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  const node = await startNode(ctx, factories);
  // On a terminal the log lines are written synchronously (src/log.ts): the summary comes after them.
  if (!signalled && process.stdout.isTTY) process.stdout.write(startupSummary(ctx.config, command, node.roles));
  if (!signalled) await new Promise<void>((resolve) => (onStopRequested = resolve));
  await node.stop();
  logger.info('stopped');
  logger.flush();
  // Everything is closed; should a library still hold a handle, do not hang on it.
  setTimeout(() => process.exit(0), 2_000).unref();
}
