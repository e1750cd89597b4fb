/**
 * The drift watch over HTTP (a fastify plugin, registered by src/admin/server.ts when the store is
 * configured): GET /api/drift (the report as JSON), GET /admin/drift (the dashboard page). Both read
 * DriftWatch's cached report (recomputed at most once per drift.refreshSeconds).
 */
import type { FastifyPluginAsync } from 'fastify';
import type { DriftWatch } from '../drift/watch.js';
import { driftPage } from './drift-page.js';

export const driftRoutes: FastifyPluginAsync<{ watch: DriftWatch }> = async (app, { watch }) => {
  app.get('/api/drift', async (_req, reply) => {
    const r = await watch.report();
    if (!r) return reply.code(503).send({ error: `no drift figures yet: ${watch.lastError ?? 'not computed'}` });
    return r;
  });
  app.get('/admin/drift', async (_req, reply) => {
    const r = await watch.report();
    return reply
      .code(r ? 200 : 503)
      .type('text/html; charset=utf-8')
      .header('cache-control', 'no-store')
      .send(driftPage(r, watch.lastError));
  });
};
