/** Probes: /healthz (the process answers) and /readyz (Redis, spool, model, listener; 503 when not ready). Open without a password. */
import type { FastifyPluginAsync } from 'fastify';
import type { AdminServerDeps } from './context.js';

export const OPEN_PATHS: ReadonlySet<string> = new Set(['/healthz', '/readyz']);

export const healthRoutes: FastifyPluginAsync<AdminServerDeps> = async (app, deps) => {
  app.get('/healthz', async () => ({ ok: true, pid: process.pid, uptimeSeconds: Math.round(process.uptime()) }));
  app.get('/readyz', async (_req, reply) => {
    const r = await deps.readiness.check();
    return reply.code(r.ok ? 200 : 503).send(r);
  });
};
