/**
 * The dashboard's pages (server-rendered HTML, src/admin/pages.ts): the series list, a series, the
 * associations, their live updates (server-sent events) and the form posts of the series actions.
 */
import { join } from 'node:path';
import type { FastifyPluginAsync } from 'fastify';
import { allTargets } from '../../config/dispatch-targets.js';
import { listAssociations } from '../../stores/audit.js';
import { listWorkers } from '../../stores/worker-registry.js';
import { ACTIVE_STATUSES } from '../data.js';
import { type LiveEvent, LiveStreams } from '../live.js';
import { associationsPage, notFoundPage, seriesListPage, seriesPage, seriesRows, seriesStatusHtml } from '../pages.js';
import { ACTIONS, type AdminServerDeps, auditedSeriesAction, html, limitOf, limitQuery, loadSr, uidOf, uidParams } from './context.js';

export const dashboardRoutes: FastifyPluginAsync<AdminServerDeps> = async (app, deps) => {
  const { config, data } = deps;
  // Every target a result goes to (destinations, DICOMweb, notifications): the list line and the re-send action.
  const destinations = allTargets(config).map((t) => t.name);
  const showPhi = config.http.showPhi;

  app.get('/', async (_req, reply) => reply.redirect('/admin'));
  app.get('/favicon.ico', async (_req, reply) => reply.code(204).send());
  app.get('/admin', { schema: { querystring: limitQuery } }, async (req, reply) => {
    const limit = limitOf(req.query);
    return html(
      reply,
      seriesListPage(await data.listSeries(limit), {
        limit,
        showPhi,
        destinations,
        resultsDir: join(config.spool.dir, 'results'),
        workers: await listWorkers(deps.redis, config.redis.keyPrefix).catch(() => []),
      }),
    );
  });

  // Live updates (server-sent events): the list's rows; a series page's status, and a reload once it changed.
  const live = new LiveStreams();
  app.addHook('preClose', (done) => {
    live.closeAll();
    done();
  });
  app.get('/admin/live', { schema: { querystring: limitQuery } }, (req, reply) => {
    const limit = limitOf(req.query);
    live.serve(req, reply, async () => {
      const list = await data.listSeries(limit);
      return {
        active: list.some((s) => ACTIVE_STATUSES.has(s.status)),
        events: [{ event: 'html', data: { id: 'series-rows', html: seriesRows(list, showPhi) } }],
      };
    });
  });
  app.get<{ Params: { uid: string }; Querystring: { status?: string } }>(
    '/admin/series/:uid/live',
    {
      schema: {
        params: uidParams,
        querystring: { type: 'object', properties: { status: { type: 'string', description: 'The status the page shows' } } },
      },
    },
    (req, reply) => {
      const uid = uidOf(req.params);
      if (!uid) return reply.code(404).send({ error: 'not a series UID' });
      const rendered = req.query.status;
      live.serve(req, reply, async () => {
        const s = await data.summary(uid);
        if (!s) return { active: false, events: [] };
        const events: LiveEvent[] = [{ event: 'html', data: { id: 'series-status', html: seriesStatusHtml(s) } }];
        if (rendered && s.status !== rendered) events.push({ event: 'reload', data: { status: s.status } });
        return { active: ACTIVE_STATUSES.has(s.status), events };
      });
    },
  );
  app.get<{ Params: { uid: string }; Querystring: { ok?: string; msg?: string } }>(
    '/admin/series/:uid',
    {
      schema: {
        params: uidParams,
        querystring: {
          type: 'object',
          properties: { ok: { type: 'string' }, msg: { type: 'string', description: "An action's outcome, shown once" } },
        },
      },
    },
    async (req, reply) => {
      const uid = uidOf(req.params);
      const d = uid ? await data.detail(uid) : undefined;
      if (!uid || !d) return html(reply, notFoundPage(`No series ${req.params.uid}.`), 404);
      const sr = await loadSr(data, uid);
      const flash = req.query.msg ? { ok: req.query.ok === '1', message: req.query.msg.slice(0, 300) } : undefined;
      return html(
        reply,
        seriesPage(d, {
          showPhi,
          destinations,
          ...(sr.doc ? { sr: sr.doc } : {}),
          ...(sr.error ? { srError: sr.error } : {}),
          ...(flash ? { flash } : {}),
        }),
      );
    },
  );
  for (const action of ACTIONS) {
    app.post<{ Params: { uid: string } }>(`/admin/series/:uid/${action}`, { schema: { params: uidParams } }, async (req, reply) => {
      const uid = uidOf(req.params);
      if (!uid) return html(reply, notFoundPage('Not a series UID.'), 404);
      const r = await auditedSeriesAction(deps, req, 'dashboard', action, uid).catch((err: Error) => ({ ok: false, message: err.message }));
      return reply.redirect(`/admin/series/${uid}?ok=${r.ok ? 1 : 0}&msg=${encodeURIComponent(`${action}: ${r.message}`)}`, 303);
    });
  }
  app.get<{ Querystring: { limit?: string } }>('/admin/associations', { schema: { querystring: limitQuery } }, async (req, reply) =>
    html(reply, associationsPage(await listAssociations(deps.redis, config, deps.logger, limitOf(req.query)))),
  );
};
