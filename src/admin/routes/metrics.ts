/** /metrics: Prometheus text exposition (prom-client). */
import type { FastifyPluginAsync } from 'fastify';
import type { AdminServerDeps } from './context.js';

export const metricsRoutes: FastifyPluginAsync<AdminServerDeps> = async (app, deps) => {
  app.get('/metrics', async (_req, reply) => {
    const m = await deps.metrics.render();
    return reply.type(m.contentType).send(m.body);
  });
};
