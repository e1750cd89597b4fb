/**
 * The admin HTTP server (fastify): dashboard pages, Bull Board, JSON API, /metrics, /healthz and
 * /readyz. HTTP basic auth (config.http.username/password) guards every route except /healthz and
 * /readyz (left open for probes; they reveal no PHI). POSTs from another site are refused (the
 * browser sends basic-auth credentials with cross-site form posts).
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { timingSafeEqual } from 'node:crypto';
import fastifyBasicAuth from '@fastify/basic-auth';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import type { Queue } from 'bullmq';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Config } from '../config/schema.js';
import { isLoopback } from '../config/schema.js';
import type { Logger } from '../log.js';
import { listAssociations } from '../stores/audit.js';
import { whenReady } from '../stores/redis.js';
import { listWorkers } from '../stores/worker-registry.js';
import { readDestinationEchoes } from '../stores/destination-echoes.js';
import type { Redis } from 'ioredis';
import type { ActionName, AdminActions } from './actions.js';
import type { AdminData } from './data.js';
import { part10ToPng, readSr, srText, type SrDocument } from './dicom-view.js';
import type { ReadinessChecker } from './health.js';
import type { Metrics } from './metrics.js';
import { ACTIVE_STATUSES } from './data.js';
import { LiveStreams, type LiveEvent } from './live.js';
import type { StoreHandle } from '../db/handle.js';
import { validationRoutes } from './validation-routes.js';
import { enforceRole, setIdentity, type Identity } from './identity.js';
import { studiesPlugin } from './studies.js';
import { associationsPage, LIVE_JS, notFoundPage, seriesListPage, seriesPage, seriesRows, seriesStatusHtml, SERIES_CHART_JS } from './pages.js';
import type { InstanceSink } from '../dicom/received-instance.js';
import { stowReceiver } from './stow/receiver.js';
import { targetsPlugin } from './targets.js';
import { allTargets } from '../config/dispatch-targets.js';

/** How long a request waits for a (re)connecting Redis before it is answered 503. */
const REDIS_WAIT_MS = 2_000;

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
  /** Local users (src/db/users.ts): basic-auth name and password, or an API token (Bearer). */
  users?: {
    verify(name: string, password: string): Promise<Identity | undefined>;
    verifyToken(token: string): Promise<Identity | undefined>;
  };
}

const UID = /^[0-9]+(\.[0-9]+)*$/;
const OPEN_PATHS = new Set(['/healthz', '/readyz']);
const REDIS_DOWN = /writeable|ECONNREFUSED|Connection is closed|redis not connected|enableOfflineQueue|MaxRetriesPerRequest/i;
const ACTIONS: readonly ActionName[] = ['force', 'rescore', 'resend'];

/**
 * Bull Board's page, made to work on an offline hospital network and to lead back: the web-font
 * stylesheet it loads from the internet is dropped (its CSS falls back to the system fonts) and a
 * link to the series dashboard is added.
 */
export function bullBoardHtml(html: string): string {
  return html
    .replace(/<link[^>]+href="https?:\/\/fonts\.(googleapis|gstatic)\.com[^"]*"[^>]*>\s*/g, '')
    .replace(/<body([^>]*)>/, '<body$1><a id="mlsam-back" href="/admin" style="position:fixed;right:16px;bottom:12px;z-index:1000;background:#1d3557;color:#fff;padding:6px 12px;border-radius:4px;font:600 13px system-ui,sans-serif;text-decoration:none;box-shadow:0 1px 4px rgba(0,0,0,.3)">← Series dashboard</a>');
}

/** Refuses to serve the admin on a non-loopback address without a password (the config schema does too). */
export function assertSafeBinding(config: Config): void {
  if (config.http.password === '' && !isLoopback(config.http.host)) {
    throw new Error(`http.password must be set when http.host (${config.http.host}) is not a loopback address`);
  }
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function uplotDir(): string {
  const require = createRequire(import.meta.url);
  return dirname(require.resolve('uplot/dist/uPlot.iife.min.js'));
}

export async function buildAdminServer(deps: AdminServerDeps): Promise<FastifyInstance> {
  const { config, data, actions, readiness, metrics } = deps;
  assertSafeBinding(config);
  const app = Fastify({ logger: false, trustProxy: false, bodyLimit: 64 * 1024 });
  const stowEnabled = config.http.stow.enabled && deps.stowSink !== undefined;
  const log = deps.logger.child({ component: 'admin-http' });

  await app.register(fastifyBasicAuth, {
    validate: async (username: string, password: string, req: FastifyRequest) => {
      if (safeEqual(username, config.http.username) && safeEqual(password, config.http.password)) {
        setIdentity(req, { name: username, role: 'admin' });
        return;
      }
      const who = deps.users ? await deps.users.verify(username, password).catch(() => undefined) : undefined;
      if (!who) throw new Error('wrong username or password');
      setIdentity(req, who);
    },
    authenticate: { realm: 'mlsam-node' },
  });
  app.addHook('onRequest', (req, reply, done) => {
    const path = req.url.split('?')[0] ?? '';
    if (OPEN_PATHS.has(path)) return done();
    // The STOW-RS receiver checks its own allow-list and credentials (src/admin/stow/receiver.ts).
    if (stowEnabled && path.startsWith('/dicom-web/')) return done();
    if (req.method === 'POST') {
      const site = req.headers['sec-fetch-site'];
      const origin = req.headers.origin;
      let foreign = false;
      try {
        foreign = Boolean(origin && origin !== 'null' && new URL(origin).host !== req.headers.host);
      } catch {
        foreign = true; // a malformed Origin
      }
      if (site === 'cross-site' || foreign) {
        void reply.code(403).send({ error: 'cross-site request refused' });
        return;
      }
    }
    const bearer = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '')?.[1];
    if (bearer && deps.users) {
      deps.users.verifyToken(bearer).then(
        (who) => {
          if (!who) return void reply.code(401).send({ error: 'unknown API token' });
          setIdentity(req, who);
          done();
        },
        (err: Error) => void reply.code(503).send({ error: `cannot check the API token: ${err.message}` }),
      );
      return;
    }
    app.basicAuth(req, reply, done);
  });
  app.addHook('preHandler', enforceRole);
  // The command connection does not queue commands while it (re)connects: a request right after
  // start-up or a Redis blip waits briefly for it instead of failing at once (still 503 if it stays down).
  app.addHook('preHandler', async (req) => {
    if (req.url === '/healthz' || req.url === '/readyz') return;
    await whenReady(deps.redis, REDIS_WAIT_MS).catch(() => undefined);
  });
  app.setErrorHandler((err: Error & { statusCode?: number }, req, reply) => {
    const redisDown = !err.statusCode && REDIS_DOWN.test(err.message);
    const code = redisDown ? 503 : err.statusCode && err.statusCode >= 400 ? err.statusCode : 500;
    if (code >= 500) log.error({ err: err.message, url: req.url.split('?')[0] }, 'admin request failed');
    if (code === 401) void reply.header('WWW-Authenticate', 'Basic realm="mlsam-node"');
    void reply.code(code).send({ error: code === 401 ? 'authentication required' : redisDown ? `redis unavailable: ${err.message}` : err.message });
  });

  if (stowEnabled) await app.register(stowReceiver, { config, logger: deps.logger, sink: deps.stowSink! });
  await app.register(targetsPlugin, { config, redis: deps.redis });

  // Bull Board: inference and dispatch (the internal series-settle queue is left out).
  const board = new FastifyAdapter();
  createBullBoard({
    queues: deps.queues.map((q) => new BullMQAdapter(q)),
    serverAdapter: board,
    options: { uiConfig: { boardTitle: 'mlsam-node queues', hideDocsLink: true, miscLinks: [{ text: 'Series dashboard', url: '/admin' }] } },
  });
  board.setBasePath('/admin/queues');
  // (Registered before the board's plugin so that its routes inherit it.)
  app.addHook('onSend', async (req, reply, payload) => {
    if (typeof payload !== 'string' || !req.url.startsWith('/admin/queues')) return payload;
    if (!String(reply.getHeader('content-type') ?? '').startsWith('text/html')) return payload;
    return bullBoardHtml(payload);
  });
  await app.register(board.registerPlugin() as never, { prefix: '/admin/queues' });

  // Probes.
  app.get('/healthz', async () => ({ ok: true, pid: process.pid, uptimeSeconds: Math.round(process.uptime()) }));
  app.get('/readyz', async (_req, reply) => {
    const r = await readiness.check();
    return reply.code(r.ok ? 200 : 503).send(r);
  });
  app.get('/metrics', async (_req, reply) => {
    const m = await metrics.render();
    return reply.type(m.contentType).send(m.body);
  });

  // Static: uPlot from node_modules, the chart script.
  const udir = uplotDir();
  const statics: Record<string, [string, string]> = {
    'uPlot.iife.min.js': [join(udir, 'uPlot.iife.min.js'), 'text/javascript; charset=utf-8'],
    'uPlot.min.css': [join(udir, 'uPlot.min.css'), 'text/css; charset=utf-8'],
  };
  app.get<{ Params: { file: string } }>('/admin/static/:file', async (req, reply) => {
    if (req.params.file === 'series-chart.js') return reply.type('text/javascript; charset=utf-8').send(SERIES_CHART_JS);
    if (req.params.file === 'live.js') return reply.type('text/javascript; charset=utf-8').send(LIVE_JS);
    const s = statics[req.params.file];
    if (!s) return reply.code(404).send({ error: 'not found' });
    return reply.type(s[1]).header('cache-control', 'max-age=3600').send(await readFile(s[0]));
  });

  const html = (reply: FastifyReply, body: string, code = 200): FastifyReply =>
    reply.code(code).type('text/html; charset=utf-8').header('cache-control', 'no-store').send(body);
  const limitOf = (q: unknown): number => {
    const n = Number((q as { limit?: string } | undefined)?.limit ?? 100);
    return Number.isInteger(n) && n >= 1 && n <= 1000 ? n : 100;
  };
  const uidOf = (req: FastifyRequest<{ Params: { uid: string } }>): string | undefined => (UID.test(req.params.uid) && req.params.uid.length <= 64 ? req.params.uid : undefined);

  async function loadSr(uid: string): Promise<{ doc?: SrDocument; error?: string }> {
    const rec = await data.getResult(uid);
    const sr = rec?.outputs?.find((o) => o.kind === 'sr');
    if (!sr) return {};
    try {
      return { doc: await readSr(sr.path) };
    } catch (err) {
      return { error: `SR ${sr.sopInstanceUid} not readable: ${(err as Error).message}` };
    }
  }

  // Pages.
  app.get('/', async (_req, reply) => reply.redirect('/admin'));
  app.get('/favicon.ico', async (_req, reply) => reply.code(204).send());
  // Every target a result goes to (destinations, DICOMweb, notifications): the list line and the re-send action.
  const destinations = allTargets(config).map((t) => t.name);
  const showPhi = config.http.showPhi;
  app.get('/admin', async (req, reply) => {
    const limit = limitOf(req.query);
    return html(reply, seriesListPage(await data.listSeries(limit), {
      limit, showPhi, destinations, resultsDir: join(config.spool.dir, 'results'),
      workers: await listWorkers(deps.redis, config.redis.keyPrefix).catch(() => []),
    }));
  });
  // Live updates (server-sent events): the list's rows; a series page's status, and a reload once it changed.
  const live = new LiveStreams();
  app.addHook('preClose', (done) => {
    live.closeAll();
    done();
  });
  app.get('/admin/live', (req, reply) => {
    const limit = limitOf(req.query);
    live.serve(req, reply, async () => {
      const list = await data.listSeries(limit);
      return { active: list.some((s) => ACTIVE_STATUSES.has(s.status)), events: [{ event: 'html', data: { id: 'series-rows', html: seriesRows(list, showPhi) } }] };
    });
  });
  app.get<{ Params: { uid: string }; Querystring: { status?: string } }>('/admin/series/:uid/live', (req, reply) => {
    const uid = uidOf(req);
    if (!uid) return reply.code(404).send({ error: 'not a series UID' });
    const rendered = req.query.status;
    live.serve(req, reply, async () => {
      const s = await data.summary(uid);
      if (!s) return { active: false, events: [] };
      const events: LiveEvent[] = [{ event: 'html', data: { id: 'series-status', html: seriesStatusHtml(s) } }];
      if (rendered && s.status !== rendered) events.push({ event: 'reload', data: { status: s.status } });
      return { active: ACTIVE_STATUSES.has(s.status), events };
    });
  });
  app.get<{ Params: { uid: string }; Querystring: { ok?: string; msg?: string } }>('/admin/series/:uid', async (req, reply) => {
    const uid = uidOf(req);
    const d = uid ? await data.detail(uid) : undefined;
    if (!uid || !d) return html(reply, notFoundPage(`No series ${req.params.uid}.`), 404);
    const sr = await loadSr(uid);
    const flash = req.query.msg ? { ok: req.query.ok === '1', message: req.query.msg.slice(0, 300) } : undefined;
    return html(reply, seriesPage(d, { showPhi, destinations, ...(sr.doc ? { sr: sr.doc } : {}), ...(sr.error ? { srError: sr.error } : {}), ...(flash ? { flash } : {}) }));
  });
  for (const action of ACTIONS) {
    app.post<{ Params: { uid: string } }>(`/admin/series/:uid/${action}`, async (req, reply) => {
      const uid = uidOf(req);
      if (!uid) return html(reply, notFoundPage('Not a series UID.'), 404);
      const r = await actions.run(action, uid).catch((err: Error) => ({ ok: false, message: err.message }));
      return reply.redirect(`/admin/series/${uid}?ok=${r.ok ? 1 : 0}&msg=${encodeURIComponent(`${action}: ${r.message}`)}`, 303);
    });
  }
  app.get<{ Querystring: { limit?: string } }>('/admin/associations', async (req, reply) =>
    html(reply, associationsPage(await listAssociations(deps.redis, config, deps.logger, limitOf(req.query)))),
  );

  await app.register(studiesPlugin, { data });
  // JSON API.
  app.get('/api/series', async (req) => data.listSeries(limitOf(req.query)));
  app.get<{ Params: { uid: string } }>('/api/series/:uid', async (req, reply) => {
    const uid = uidOf(req);
    const d = uid ? await data.detail(uid) : undefined;
    return d ?? reply.code(404).send({ error: 'series not found' });
  });
  app.get<{ Params: { uid: string } }>('/api/series/:uid/sr', async (req, reply) => {
    const uid = uidOf(req);
    if (!uid) return reply.code(404).send({ error: 'series not found' });
    const sr = await loadSr(uid);
    if (sr.error) return reply.code(500).send({ error: sr.error });
    if (!sr.doc) return reply.code(404).send({ error: 'no SR for this series' });
    return { ...sr.doc, text: srText(sr.doc) };
  });
  app.get<{ Params: { uid: string; sop: string } }>('/api/series/:uid/images/:sop', async (req, reply) => {
    const uid = uidOf(req);
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
  });
  for (const action of ACTIONS) {
    app.post<{ Params: { uid: string } }>(`/api/series/:uid/${action}`, async (req, reply) => {
      const uid = uidOf(req);
      if (!uid) return reply.code(404).send({ error: 'series not found' });
      const r = await actions.run(action, uid);
      return reply.code(r.ok ? 200 : r.message === 'series not found' ? 404 : 409).send(r);
    });
  }
  app.get<{ Querystring: { limit?: string } }>('/api/associations', async (req) => listAssociations(deps.redis, config, deps.logger, limitOf(req.query)));
  app.get('/api/queues', async () => {
    const out: Record<string, Record<string, number>> = {};
    for (const q of deps.queues) out[q.name] = await q.getJobCounts('waiting', 'active', 'delayed', 'failed', 'completed', 'paused', 'prioritized');
    return out;
  });
  app.get('/api/workers', async () => listWorkers(deps.redis, config.redis.keyPrefix));
  app.get('/api/destinations', async () => {
    const echoes = new Map((await readDestinationEchoes(deps.redis, config)).map((e) => [e.destination, e]));
    return config.destinations.map((d) => ({ name: d.name, aeTitle: d.aeTitle, host: d.host, port: d.port, lastEcho: echoes.get(d.name) ?? null }));
  });
  app.get<{ Querystring: { limit?: string } }>('/api/results/undispatched', async (req, reply) => {
    if (!deps.listUndispatched) return reply.code(404).send({ error: 'not available' });
    return deps.listUndispatched(limitOf(req.query));
  });
  app.post('/api/retention/run', async (_req, reply) => {
    if (!deps.runRetention) return reply.code(404).send({ error: 'retention not available' });
    return deps.runRetention();
  });
  if (deps.store) await app.register(validationRoutes, { store: deps.store });
  app.setNotFoundHandler((req, reply) => {
    if (req.url.startsWith('/api/')) return reply.code(404).send({ error: 'not found' });
    return html(reply, notFoundPage(req.url.split('?')[0] ?? ''), 404);
  });
  return app;
}
