import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';

/** What every role of the daemon gets. */
export interface NodeContext {
  config: Config;
  logger: Logger;
}

/**
 * One role of the daemon (DICOM listener, inference worker, dispatch worker, admin HTTP…).
 * `mlsam serve` runs every role in one process; `mlsam listen` / `work` / `admin` run some.
 * start() resolves once the role serves; stop() stops taking work, finishes briefly, releases.
 */
export interface Role {
  readonly name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Lines of the start-up summary a person reads on a terminal ([label, text]), once started. */
  summary?(): SummaryLine[];
}

export type SummaryLine = [label: string, text: string];

export type RoleFactory = (ctx: NodeContext) => Role;
