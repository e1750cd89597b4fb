/**
 * The admin HTTP server (fastify): dashboard pages, Bull Board, JSON API, /metrics, /healthz and
 * /readyz, each a plugin in routes/. This file holds what every route shares: authentication on
 * every route except /healthz and /readyz (left open for probes; they reveal no PHI) and the login
 * page — HTTP basic auth (config.http.username/password or a local user), an API token (Bearer),
 * or a browser session from the login page (sessions.ts; with the results store) — then the role
 * check (identity.ts) and, for session requests, the CSRF check; the refusal of state-changing
 * requests from another site (the browser sends basic-auth credentials with cross-site form
 * posts), the short wait for a reconnecting Redis, and the error and not-found answers. A browser
 * that opens a page without credentials is sent to the login page; everything else gets the
 * basic-auth challenge (401).
 *
 * A new group of routes is a plugin file of its own in routes/ (FastifyPluginAsync<AdminServerDeps>),
 * registered with one line in buildAdminServer.
 */
import { timingSafeEqual } from 'node:crypto';
import fastifyBasicAuth from '@fastify/basic-auth';
import fastifyFormbody from '@fastify/formbody';
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import type { Config } from '../config/schema.js';
import { isLoopback } from '../config/schema.js';
import { whenReady } from '../stores/redis.js';
import { ActionAudit } from './action-audit.js';
import { silentBanner, withBanner } from './dispatch-mode-page.js';
import { isHtmlPage } from './page-banner.js';
import { enforceRole, identityOf, setIdentity } from './identity.js';
import { notFoundPage } from './pages.js';
import { csrfGuard, decorateHtml, registerSessions } from './sessions.js';
import { apiRoutes } from './routes/api.js';
import { bullBoardRoutes } from './routes/bull-board.js';
import { type AdminServerDeps, html } from './routes/context.js';
import { dashboardRoutes } from './routes/dashboard.js';
import { dispatchModeRoutes } from './routes/dispatch-mode.js';
import { healthRoutes, OPEN_PATHS } from './routes/health.js';
import { metricsRoutes } from './routes/metrics.js';
import { staticRoutes } from './routes/static.js';
import { studiesPlugin } from './studies.js';
import { stowReceiver } from './stow/receiver.js';
import { targetsPlugin } from './targets.js';
import { validationRoutes } from './validation-routes.js';
import { driftBannerHook } from './drift-banner.js';
import { driftRoutes } from './drift-routes.js';

export type { AdminServerDeps } from './routes/context.js';
export { bullBoardHtml } from './routes/bull-board.js';

/** How long a request waits for a (re)connecting Redis before it is answered 503. */
const REDIS_WAIT_MS = 2_000;

const REDIS_DOWN = /writeable|ECONNREFUSED|Connection is closed|redis not connected|enableOfflineQueue|MaxRetriesPerRequest/i;

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

export async function buildAdminServer(given: AdminServerDeps): Promise<FastifyInstance> {
  const { config } = given;
  const deps: AdminServerDeps = { ...given, audit: given.audit ?? new ActionAudit(given.store, given.logger, config.http.username) };
  assertSafeBinding(config);
  const app = Fastify({ logger: false, trustProxy: config.http.trustProxy, bodyLimit: 64 * 1024 });
  const stowEnabled = config.http.stow.enabled && deps.stowSink !== undefined;
  const log = deps.logger.child({ component: 'admin-http' });

  // Form posts (the dashboard's forms; the login form) parse to an object.
  await app.register(fastifyFormbody);
  // Browser sessions need the store (it keeps them and the users).
  const sessionIdentity = deps.store
    ? await registerSessions(app, { config, logger: deps.logger, store: deps.store, ...(deps.users ? { users: deps.users } : {}) })
    : undefined;
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
    if (path === '/login') return done();
    if (req.method !== 'GET' && req.method !== 'HEAD' && req.method !== 'OPTIONS') {
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
    if (!req.headers.authorization && sessionIdentity) {
      sessionIdentity(req, reply).then(
        (who) => {
          if (who) {
            setIdentity(req, who);
            return done();
          }
          if (path === '/logout') return done(); // no session (any more): the route just goes to the login page
          // A browser opening a page: the login page; anything else: the basic-auth challenge.
          const page = req.method === 'GET' && !path.startsWith('/api/') && path !== '/metrics';
          if (page && /text\/html/.test(req.headers.accept ?? '')) {
            void reply.redirect(`/login?next=${encodeURIComponent(req.url)}`, 303);
            return;
          }
          app.basicAuth(req, reply, done);
        },
        (err: Error) => done(err),
      );
      return;
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
  // A cookie session's state-changing request carries its CSRF token (sessions.ts), then the role decides.
  app.addHook('preHandler', csrfGuard(app));
  app.addHook('preHandler', enforceRole);
  app.addHook('onSend', decorateHtml(config, identityOf));
  // The command connection does not queue commands while it (re)connects: a request right after
  // start-up or a Redis blip waits briefly for it instead of failing at once (still 503 if it stays down).
  app.addHook('preHandler', async (req) => {
    if (OPEN_PATHS.has(req.url)) return;
    await whenReady(deps.redis, REDIS_WAIT_MS).catch(() => undefined);
  });
  app.setErrorHandler((err: Error & { statusCode?: number }, req, reply) => {
    const redisDown = !err.statusCode && REDIS_DOWN.test(err.message);
    const code = redisDown ? 503 : err.statusCode && err.statusCode >= 400 ? err.statusCode : 500;
    if (code >= 500) log.error({ err: err.message, url: req.url.split('?')[0] }, 'admin request failed');
    if (code === 401) void reply.header('WWW-Authenticate', 'Basic realm="mlsam-node"');
    void reply
      .code(code)
      .send({ error: code === 401 ? 'authentication required' : redisDown ? `redis unavailable: ${err.message}` : err.message });
  });

  // Before the route plugins, so that their routes inherit it: the drift banner on every dashboard page.
  if (deps.drift) app.addHook('onSend', driftBannerHook(deps.drift));

  // Silent mode: the banner on every HTML page (not on /api/ downloads such as the validation report's HTML export).
  const control = deps.dispatchModes;
  if (control) {
    app.addHook('onSend', async (req, reply, payload) => {
      if (!isHtmlPage(reply, payload) || req.url.startsWith('/api/')) return payload;
      const view = await control.view().catch(() => undefined);
      return view ? withBanner(payload, silentBanner(view)) : payload;
    });
  }

  if (stowEnabled) await app.register(stowReceiver, { config, logger: deps.logger, sink: deps.stowSink! });
  await app.register(targetsPlugin, { config, redis: deps.redis });
  // Route groups (routes/*.ts); each gets the deps as its options.
  await app.register(bullBoardRoutes, deps);
  await app.register(healthRoutes, deps);
  await app.register(metricsRoutes, deps);
  await app.register(staticRoutes, deps);
  await app.register(dashboardRoutes, deps);
  await app.register(studiesPlugin, { data: deps.data });
  await app.register(apiRoutes, deps);
  await app.register(dispatchModeRoutes, deps);
  if (deps.store) await app.register(validationRoutes, { store: deps.store });
  if (deps.drift) await app.register(driftRoutes, { watch: deps.drift });

  app.setNotFoundHandler((req, reply) => {
    if (req.url.startsWith('/api/')) return reply.code(404).send({ error: 'not found' });
    return html(reply, notFoundPage(req.url.split('?')[0] ?? ''), 404);
  });
  return app;
}
