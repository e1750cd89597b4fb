/**
 * Every user action through the dashboard or the API lands in the results store's audit table with
 * the user's name and role (issue 24 item 6): the series actions (force, rescore, resend), the
 * retention pass, the silent-mode switch (its own entry, written with the setting, src/db/dispatch-modes.ts),
 * feedback and label imports (src/db/results-db.ts), Bull Board's job operations (retry, promote,
 * remove, clean: src/admin/routes/bull-board.ts).
 *
 * An action is not done when it cannot be recorded: ready() is asked first and answers 503 while the
 * store is unreachable (the pipeline itself never waits for the store; only people's actions do).
 */
import type { FastifyRequest } from 'fastify';
import type { StoreHandle } from '../db/handle.js';
import type { Logger } from '../log.js';
import { identityOf, type Identity } from './identity.js';

export interface AuditedAction {
  action: string;
  studyInstanceUid?: string;
  seriesInstanceUid?: string;
  detail?: Record<string, unknown>;
}

/** The user a request comes from (the auth hook sets it; a request without one is the basic-auth admin). */
export function whoIs(req: FastifyRequest, fallbackName: string): Identity {
  return identityOf(req) ?? { name: fallbackName, role: 'admin' };
}

export class ActionAudit {
  constructor(
    private readonly store: StoreHandle | undefined,
    private readonly logger: Logger,
    private readonly fallbackName: string,
  ) {}

  /** Throws StoreUnavailableError (503) when the audit table cannot be written now. */
  async ready(): Promise<void> {
    await this.store?.get();
  }

  /** Writes the entry: user, role (in detail), how (api, dashboard, bull-board) and the outcome. */
  async record(req: FastifyRequest, via: 'api' | 'dashboard' | 'bull-board', a: AuditedAction): Promise<void> {
    const who = whoIs(req, this.fallbackName);
    if (!this.store) return;
    try {
      await this.store.use((db) =>
        db.audit({
          user: who.name,
          action: a.action,
          ...(a.studyInstanceUid ? { studyInstanceUid: a.studyInstanceUid } : {}),
          ...(a.seriesInstanceUid ? { seriesInstanceUid: a.seriesInstanceUid } : {}),
          detail: { role: who.role, via, ...a.detail },
        }),
      );
    } catch (err) {
      // ready() passed a moment ago: the store went away during the action. Said loudly, not thrown (the action is done).
      this.logger.error({ err: (err as Error).message, action: a.action, user: who.name }, 'user action not recorded in the audit table');
    }
  }
}
