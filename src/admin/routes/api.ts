/** The JSON API under /api: series, their SR and images, the series actions, associations, queues, workers, destinations, retention. */
import type { FastifyPluginAsync } from 'fastify';
import { listAssociations } from '../../stores/audit.js';
import { readDestinationEchoes } from '../../stores/destination-echoes.js';
import { listWorkers } from '../../stores/worker-registry.js';
import { part10ToPng, srText } from '../dicom-view.js';
import {
  ACTIONS,
  type AdminServerDeps,
  auditedSeriesAction,
  errorBody,
  limitOf,
  limitQuery,
  loadSr,
  UID,
  uidOf,
  uidParams,
} from './context.js';

export const apiRoutes: FastifyPluginAsync<AdminServerDeps> = async (app, deps) => {
  const { config, data } = deps;
  const notFound = { 404: errorBody };

  app.get('/api/series', { schema: { querystring: limitQuery } }, async (req) => data.listSeries(limitOf(req.query)));
  app.get<{ Params: { uid: string } }>('/api/series/:uid', { schema: { params: uidParams, response: notFound } }, async (req, reply) => {
    const uid = uidOf(req.params);
    const d = uid ? await data.detail(uid) : undefined;
    return d ?? reply.code(404).send({ error: 'series not found' });
  });
  app.get<{ Params: { uid: string } }>(
    '/api/series/:uid/sr',
    { schema: { params: uidParams, response: { 404: errorBody, 500: errorBody } } },
    async (req, reply) => {
      const uid = uidOf(req.params);
      if (!uid) return reply.code(404).send({ error: 'series not found' });
      const sr = await loadSr(data, uid);
      if (sr.error) return reply.code(500).send({ error: sr.error });
      if (!sr.doc) return reply.code(404).send({ error: 'no SR for this series' });
      return { ...sr.doc, text: srText(sr.doc) };
    },
  );
  app.get<{ Params: { uid: string; sop: string } }>(
    '/api/series/:uid/images/:sop',
    {
      schema: {
        params: {
          type: 'object',
          properties: { uid: { type: 'string' }, sop: { type: 'string', description: 'SOP Instance UID, optionally with .png' } },
          required: ['uid', 'sop'],
        },
        response: { 404: errorBody, 500: errorBody },
      },
    },
    async (req, reply) => {
      const uid = uidOf(req.params);
      const sop = req.params.sop.replace(/\.png$/, '');
      if (!uid || !UID.test(sop)) return reply.code(404).send({ error: 'not found' });
      const rec = await data.getResult(uid);
      const out = rec?.outputs?.find((o) => o.sopInstanceUid === sop && (o.kind === 'heatmap' || o.kind === 'summary'));
      if (!out) return reply.code(404).send({ error: 'no such image in the series result' });
      try {
        const png = await part10ToPng(out.path);
        return reply.type('image/png').header('cache-control', 'private, max-age=300').send(png);
      } catch (err) {
        return reply.code(500).send({ error: `cannot render ${sop}: ${(err as Error).message}` });
      }
    },
  );
  for (const action of ACTIONS) {
    app.post<{ Params: { uid: string } }>(`/api/series/:uid/${action}`, { schema: { params: uidParams } }, async (req, reply) => {
      const uid = uidOf(req.params);
      if (!uid) return reply.code(404).send({ error: 'series not found' });
      const r = await auditedSeriesAction(deps, req, 'api', action, uid);
      return reply.code(r.ok ? 200 : r.message === 'series not found' ? 404 : 409).send(r);
    });
  }
  app.get<{ Querystring: { limit?: string } }>('/api/associations', { schema: { querystring: limitQuery } }, async (req) =>
    listAssociations(deps.redis, config, deps.logger, limitOf(req.query)),
  );
  app.get('/api/queues', async () => {
    const out: Record<string, Record<string, number>> = {};
    for (const q of deps.queues)
      out[q.name] = await q.getJobCounts('waiting', 'active', 'delayed', 'failed', 'completed', 'paused', 'prioritized');
    return out;
  });
  app.get('/api/workers', async () => listWorkers(deps.redis, config.redis.keyPrefix));
  app.get('/api/destinations', async () => {
    const echoes = new Map((await readDestinationEchoes(deps.redis, config)).map((e) => [e.destination, e]));
    return config.destinations.map((d) => ({
      name: d.name,
      aeTitle: d.aeTitle,
      host: d.host,
      port: d.port,
      lastEcho: echoes.get(d.name) ?? null,
    }));
  });
  app.get<{ Querystring: { limit?: string } }>(
    '/api/results/undispatched',
    { schema: { querystring: limitQuery, response: notFound } },
    async (req, reply) => {
      if (!deps.listUndispatched) return reply.code(404).send({ error: 'not available' });
      return deps.listUndispatched(limitOf(req.query));
    },
  );
  app.post('/api/retention/run', { schema: { response: notFound } }, async (req, reply) => {
    if (!deps.runRetention) return reply.code(404).send({ error: 'retention not available' });
    await deps.audit?.ready();
    const out = await deps.runRetention();
    const { scanned, deleted, errors } = (out ?? {}) as { scanned?: number; deleted?: number; errors?: number };
    await deps.audit?.record(req, 'api', { action: 'retention-run', detail: { scanned, deleted, errors } });
    return out;
  });
};
