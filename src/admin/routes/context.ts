/**
 * What every admin route plugin gets (AdminServerDeps, passed as the plugin's options) and the
 * helpers they share: UID and limit parsing, the HTML reply, the route schemas' building blocks.
 */
import type { Queue } from 'bullmq';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Redis } from 'ioredis';
import type { Config } from '../../config/schema.js';
import type { InstanceSink } from '../../dicom/received-instance.js';
import type { DispatchSwitch } from '../../db/dispatch-modes.js';
import type { StoreHandle } from '../../db/handle.js';
import type { DriftWatch } from '../../drift/watch.js';
import type { Logger } from '../../log.js';
import type { ActionAudit } from '../action-audit.js';
import type { ActionName, ActionResult, AdminActions } from '../actions.js';
import type { Identity } from '../identity.js';
import type { AdminData } from '../data.js';
import { readSr, type SrDocument } from '../dicom-view.js';
import type { ReadinessChecker } from '../health.js';
import type { Metrics } from '../metrics.js';

export interface AdminServerDeps {
  config: Config;
  logger: Logger;
  redis: Redis;
  data: AdminData;
  actions: AdminActions;
  readiness: ReadinessChecker;
  metrics: Metrics;
  queues: Queue[];
  /** Runs one spool retention pass now (POST /api/retention/run). */
  runRetention?: () => Promise<unknown>;
  /** Results not yet sent to every destination (all results when none is configured: they stay in the spool). */
  listUndispatched?: (limit: number) => Promise<unknown>;
  /** Where instances received by STOW-RS go (the series tracker); the receiver runs when http.stow.enabled and this is given. */
  stowSink?: InstanceSink;
  /** The durable results store (feedback, validation report, review page). */
  store?: StoreHandle;
  /** The drift watch (/api/drift, /admin/drift, the banner on every dashboard page). */
  drift?: DriftWatch;
  /** The silent-mode switch (GET/POST /api/dispatch/..., /admin/dispatch, the banner on every page). */
  dispatchModes?: DispatchSwitch;
  /** Records user actions in the audit table (buildAdminServer makes one from `store` when absent). */
  audit?: ActionAudit;
  /** Local users (src/db/users.ts): basic-auth name and password, an API token (Bearer), or a browser session (login page). */
  users?: {
    verify(name: string, password: string): Promise<Identity | undefined>;
    verifyToken(token: string): Promise<Identity | undefined>;
    /** The current identity (role) of a user by name, for browser sessions (src/admin/sessions.ts). */
    find(name: string): Promise<Identity | undefined>;
  };
}

export const UID = /^[0-9]+(\.[0-9]+)*$/;
export const ACTIONS: readonly ActionName[] = ['force', 'rescore', 'resend'];

/**
 * A series action (force, rescore, resend) as a user asked for it: refused (503) when the audit
 * table cannot be written, then run, then recorded with the user, role and outcome.
 */
export async function auditedSeriesAction(
  deps: AdminServerDeps,
  req: FastifyRequest,
  via: 'api' | 'dashboard',
  action: ActionName,
  uid: string,
): Promise<ActionResult> {
  await deps.audit?.ready();
  const r = await deps.actions.run(action, uid);
  const study = (await deps.data.getResult(uid).catch(() => undefined))?.studyInstanceUid;
  const { ok, message, jobId, jobIds, held } = r;
  await deps.audit?.record(req, via, {
    action,
    seriesInstanceUid: uid,
    ...(study ? { studyInstanceUid: study } : {}),
    detail: { ok, message, ...(jobId ? { jobId } : {}), ...(jobIds ? { jobIds } : {}), ...(held ? { held } : {}) },
  });
  return r;
}

/** The series UID of a route's :uid, or undefined when it is not a UID (the routes answer 404). */
export const uidOf = (params: { uid: string }): string | undefined =>
  UID.test(params.uid) && params.uid.length <= 64 ? params.uid : undefined;

/** ?limit= as 1..1000, else 100. */
export const limitOf = (q: unknown): number => {
  const n = Number((q as { limit?: string } | undefined)?.limit ?? 100);
  return Number.isInteger(n) && n >= 1 && n <= 1000 ? n : 100;
};

export const html = (reply: FastifyReply, body: string, code = 200): FastifyReply =>
  reply.code(code).type('text/html; charset=utf-8').header('cache-control', 'no-store').send(body);

/** The SR of a series' latest result, read from the spool (doc), or why it could not be read (error); {} when it has none. */
export async function loadSr(data: AdminData, uid: string): Promise<{ doc?: SrDocument; error?: string }> {
  const rec = await data.getResult(uid);
  const sr = rec?.outputs?.find((o) => o.kind === 'sr');
  if (!sr) return {};
  try {
    return { doc: await readSr(sr.path) };
  } catch (err) {
    return { error: `SR ${sr.sopInstanceUid} not readable: ${(err as Error).message}` };
  }
}

/**
 * Route schemas' parts (JSON Schema, checked by fastify). They state the shapes and keep the
 * answers the routes give themselves: a :uid that is not a UID is a 404 from the route, an
 * out-of-range ?limit= reads as 100.
 */
export const uidParams = {
  type: 'object',
  properties: { uid: { type: 'string', description: 'Series Instance UID' } },
  required: ['uid'],
} as const;

export const limitQuery = {
  type: 'object',
  properties: { limit: { type: 'string', description: 'How many, 1..1000 (default 100)' } },
} as const;

export const errorBody = {
  type: 'object',
  properties: { error: { type: 'string' } },
  required: ['error'],
} as const;
