/**
 * Browser sessions of the dashboard: the login page (GET/POST /login), logout (POST /logout), the
 * session cookie and CSRF protection for everything a cookie session changes.
 *
 * - Sessions: @fastify/session with @fastify/cookie; the session lives in the results store
 *   (src/db/sessions.ts: SQLite or PostgreSQL, the same place as the users), so a login survives a
 *   restart of the node and of Redis, and ends after http.sessions.maxAgeHours, at logout, or when
 *   the user's password changes or the user is removed. The cookie is signed (secret kept in the
 *   store), HttpOnly, SameSite=Lax, and Secure per http.sessions.secureCookie ("auto": whenever the
 *   browser came over HTTPS — the node serves plain HTTP, so through a TLS proxy with
 *   http.trustProxy; on plain HTTP, e.g. the loopback first start, the cookie is not Secure and the
 *   login page says so).
 * - Roles: the session names the user; the role is read from the users table on every request,
 *   so a role change or removal takes effect at once; identity.ts enforces it as for basic auth.
 * - CSRF: @fastify/csrf-protection, its secret in the session. Every state-changing request that a
 *   session cookie authenticates carries a token: the hidden `_csrf` field that is added to every
 *   POST form of the pages (decorateHtml), or the `x-csrf-token` header (page scripts read it from
 *   <meta name="csrf-token">). The login form has one too (a short session holding only that
 *   secret). Bull Board's own page cannot send a token: its API calls (PUT/POST under
 *   /admin/queues/api) need the browser's same-origin `Origin` header instead, which a page of
 *   another site cannot forge (and SameSite=Lax already keeps the cookie off cross-site requests).
 *   Requests with basic auth or a bearer API token carry no cookie authority and need no token.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import fastifyCookie from '@fastify/cookie';
import fastifyCsrf from '@fastify/csrf-protection';
import fastifyRateLimit from '@fastify/rate-limit';
import fastifySession, { type SessionStore } from '@fastify/session';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Config } from '../config/schema.js';
import { isLoopback } from '../config/schema.js';
import { StoreUnavailableError, type StoreHandle } from '../db/handle.js';
import { Sessions } from '../db/sessions.js';
import type { Logger } from '../log.js';
import type { Identity } from './identity.js';
import { atTopOfMain, isHtmlPage } from './page-banner.js';
import { esc, layout } from './pages.js';

declare module 'fastify' {
  interface Session {
    /** Who logged in: a local user (users table) or the configured http.username. */
    user?: { name: string; via: 'local' | 'config'; mark?: string };
    /** The CSRF secret (@fastify/csrf-protection). */
    _csrf?: string;
  }
}

/** What the session code needs of the users (src/db/users.ts through the store handle). */
export interface SessionUsers {
  verify(name: string, password: string): Promise<Identity | undefined>;
  /** The user's current identity (role) by name; undefined once removed. */
  find(name: string): Promise<Identity | undefined>;
}

export interface SessionOptions {
  config: Config;
  logger: Logger;
  store: StoreHandle;
  users?: SessionUsers;
}

/** The login form's session (its CSRF secret only) lasts this long. */
const LOGIN_FORM_MS = 30 * 60_000;
const UNSAFE = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const BULL_BOARD_API = /^\/admin\/queues\/api\//;

const cookieAuthenticated = new WeakSet<FastifyRequest>();

/** Whether the request's identity came from a session cookie (it then needs a CSRF token to change anything). */
export function viaSession(req: FastifyRequest): boolean {
  return cookieAuthenticated.has(req);
}

/** @fastify/session's `secure`: "auto" is Secure exactly when the request came over HTTPS. */
export function secureCookie(config: Config): boolean | 'auto' {
  return config.http.sessions.secureCookie;
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** A local path to go back to after the login (never another site). */
export function safeNext(next: unknown): string {
  return typeof next === 'string' && /^\/(?![/\\])[^\s]*$/.test(next) && !next.startsWith('/login') ? next : '/admin';
}

/** @fastify/session's store on the results store; an unreachable database reads as "no session". */
function sessionStore(handle: StoreHandle, logger: Logger): SessionStore {
  type Callback = (err?: Error | null) => void;
  return {
    set(id, session, cb: Callback) {
      const expires = session.cookie.expires ? new Date(session.cookie.expires) : new Date(Date.now() + LOGIN_FORM_MS);
      handle.use((db) => new Sessions(db).set(id, session, session.user?.name ?? null, expires)).then(() => cb(), cb);
    },
    get(id, cb) {
      handle
        .use((db) => new Sessions(db).get(id))
        .then(
          // (The session as @fastify/session serialised it: it restores its own type.)
          (s) => cb(null, (s?.data ?? null) as Parameters<typeof cb>[1]),
          (err: Error) => {
            if (err instanceof StoreUnavailableError) {
              logger.warn({ err: err.message }, 'session not readable: results store unavailable');
              return cb(null, null);
            }
            cb(err);
          },
        );
    },
    destroy(id, cb: Callback) {
      handle.use((db) => new Sessions(db).destroy(id)).then(() => cb(), cb);
    },
  };
}

/**
 * Registers cookie, session and CSRF plugins and the login/logout routes on the root instance
 * (before the auth hook of server.ts, whose onRequest reads the session).
 */
export async function registerSessions(
  app: FastifyInstance,
  opts: SessionOptions,
): Promise<(req: FastifyRequest, reply: FastifyReply) => Promise<Identity | undefined>> {
  const { config, store, users, logger } = opts;
  const log = logger.child({ component: 'admin-sessions' });
  let secret: string;
  try {
    secret = await store.use((db) => new Sessions(db).secret());
  } catch (err) {
    // The store is away at start: sessions still work until the next restart (then everyone logs in again).
    secret = (await import('node:crypto')).randomBytes(48).toString('base64url');
    log.warn({ err: (err as Error).message }, 'session secret not readable from the results store: using one for this run only');
  }
  const secure = secureCookie(config);
  const maxAgeMs = config.http.sessions.maxAgeHours * 3_600_000;
  // Marks a session of the configured admin so that changing http.password ends it.
  const configMark = createHmac('sha256', secret).update(`${config.http.username}\0${config.http.password}`).digest('base64url');

  await app.register(fastifyCookie);
  await app.register(fastifySession, {
    secret,
    // __Host-: only ever sent to this host, over TLS, for the whole site.
    cookieName: secure === true ? '__Host-mlsam_session' : 'mlsam_session',
    cookie: { httpOnly: true, sameSite: 'lax', secure, path: '/', maxAge: maxAgeMs },
    saveUninitialized: false,
    rolling: false,
    store: sessionStore(store, log),
  });
  await app.register(fastifyCsrf, { sessionPlugin: '@fastify/session', getToken: csrfToken });
  // A brake on password guessing: POST /login per client address and user name (a guess at one
  // account from one place), counted in memory; beyond it 429 with Retry-After. global: false keeps
  // every other route unlimited.
  await app.register(fastifyRateLimit, { global: false });

  const firstStart = config.http.password === '';

  /** The identity of the request's session, when it has a live one (and marks it cookie-authenticated). */
  async function sessionIdentity(req: FastifyRequest, reply: FastifyReply): Promise<Identity | undefined> {
    const who = req.session?.user;
    if (!who) return undefined;
    let id: Identity | undefined;
    if (who.via === 'config') {
      id = who.name === config.http.username && who.mark === configMark ? { name: who.name, role: 'admin' } : undefined;
    } else {
      id = await users?.find(who.name);
    }
    if (!id) {
      // Removed user or changed configured password: the session is over.
      await req.session.destroy().catch(() => undefined);
      return undefined;
    }
    cookieAuthenticated.add(req);
    // The CSRF secret exists before the handler runs (the session is saved before decorateHtml adds tokens).
    if (!req.session._csrf) reply.generateCsrf();
    return id;
  }

  function loginPage(req: FastifyRequest, reply: FastifyReply, message?: { text: string; ok: boolean }, code = 200) {
    const token = reply.generateCsrf();
    const next = safeNext((req.query as { next?: string } | undefined)?.next ?? (req.body as { next?: string } | undefined)?.next);
    const https = req.protocol === 'https';
    const local = isLoopback(req.socket.remoteAddress?.replace(/^::ffff:/, '') ?? '');
    const tlsNote = https
      ? ''
      : secure === true
        ? `<p class="flash err" id="tls-warning">This page came over plain HTTP, but http.sessions.secureCookie is true: the browser will not keep the session cookie. Reach the node over HTTPS (a TLS proxy with http.trustProxy).</p>`
        : local
          ? `<p class="note" id="cookie-note">Served over plain HTTP on loopback: the session cookie is not marked Secure. Beyond this machine, reach the node through a TLS proxy (http.trustProxy): the cookie is then Secure.</p>`
          : `<p class="flash err" id="tls-warning">Served over plain HTTP to another machine: the password and the session cookie travel unencrypted. Put the node behind a TLS proxy (http.trustProxy).</p>`;
    const first = firstStart
      ? `<p class="flash err" id="first-start">First-start default: user <b>${esc(config.http.username)}</b> with an <b>empty password</b>, accepted only because the node listens on loopback (${esc(config.http.host)}). Set <code>http.password</code> and add users (<code>mlsam users add</code>) before anyone else uses this node.</p>`
      : '';
    const body = `<h1>Log in</h1><p class="notice">NOT FOR DIAGNOSTIC USE</p>${first}
${message ? `<div class="flash ${message.ok ? 'ok' : 'err'}" id="login-message">${esc(message.text)}</div>` : ''}
<form method="post" action="/login" class="card" id="login-form" style="max-width:420px">
<input type="hidden" name="_csrf" value="${esc(token)}"><input type="hidden" name="next" value="${esc(next)}">
<p><label for="username">User name</label><br><input id="username" name="username" autocomplete="username" required autofocus maxlength="64"></p>
<p><label for="password">Password</label><br><input id="password" name="password" type="password" autocomplete="current-password" maxlength="200"></p>
<p><button type="submit" id="login">Log in</button></p></form>
${tlsNote}<p class="note">Integrations use HTTP basic auth or an API token (<code>Authorization: Bearer …</code>, <code>mlsam users token</code>) instead of a session. A login lasts ${config.http.sessions.maxAgeHours} h.</p>`;
    return reply
      .code(code)
      .type('text/html; charset=utf-8')
      .header('cache-control', 'no-store')
      .send(layout('Log in', body, { bare: true }));
  }

  app.get<{ Querystring: { next?: string; msg?: string } }>('/login', async (req, reply) => {
    if (!req.session._csrf) req.session.cookie.maxAge = LOGIN_FORM_MS;
    const msg = req.query.msg ? { text: req.query.msg.slice(0, 200), ok: true } : undefined;
    return loginPage(req, reply, msg);
  });

  const loginLimit = {
    max: config.http.sessions.loginAttemptsPerMinute,
    timeWindow: 60_000,
    hook: 'preHandler' as const, // after the form body is parsed: the key names the user tried
    keyGenerator: (req: FastifyRequest) => {
      const body = req.body as Record<string, unknown> | undefined;
      const name = typeof body?.username === 'string' ? body.username.trim().slice(0, 128) : '';
      return `${req.ip}\0${name}`;
    },
    onExceeded: (req: FastifyRequest) => log.warn({ ip: req.ip }, 'login attempts over the limit: 429'),
    errorResponseBuilder: (_req: FastifyRequest, ctx: { after: string; statusCode: number }) => ({
      statusCode: ctx.statusCode,
      error: 'Too Many Requests',
      message: `Too many login attempts for this user from this address; try again in ${ctx.after}.`,
    }),
  };
  app.post<{ Body: Record<string, unknown> | undefined }>(
    '/login',
    { preHandler: app.csrfProtection, config: { rateLimit: loginLimit } },
    async (req, reply) => {
      const form = req.body ?? {};
      const name = typeof form.username === 'string' ? form.username.trim() : '';
      const password = typeof form.password === 'string' ? form.password : '';
      let who: { name: string; via: 'local' | 'config'; mark?: string } | undefined;
      if (name && safeEqual(name, config.http.username) && safeEqual(password, config.http.password)) {
        who = { name, via: 'config', mark: configMark };
      } else if (name && users) {
        const id = await users.verify(name, password).catch((err: Error) => {
          throw new StoreUnavailableError(err.message);
        });
        if (id) who = { name: id.name, via: 'local' };
      }
      if (!who) {
        log.info({ user: name.slice(0, 64) }, 'login refused');
        return loginPage(req, reply, { text: 'Wrong user name or password.', ok: false }, 401);
      }
      // A new session id at login (no fixation) with a fresh CSRF secret.
      await req.session.regenerate();
      req.session.cookie.maxAge = maxAgeMs;
      req.session.user = who;
      reply.generateCsrf(); // a fresh CSRF secret with the new session
      await store.use((db) => db.audit({ user: who.name, action: 'login', detail: { via: who.via } })).catch(() => undefined);
      log.info({ user: who.name }, 'logged in');
      return reply.redirect(safeNext(form.next), 303);
    },
  );

  app.post('/logout', async (req, reply) => {
    const who = req.session.user?.name;
    if (who) await store.use((db) => db.audit({ user: who, action: 'logout' })).catch(() => undefined);
    await req.session.destroy();
    return reply.redirect(`/login?msg=${encodeURIComponent('You are logged out.')}`, 303);
  });

  return sessionIdentity;
}

/** The token of a request: the form's `_csrf` field or the `x-csrf-token` header. */
function csrfToken(req: FastifyRequest): string | undefined {
  const body = req.body as { _csrf?: unknown } | undefined;
  if (body && typeof body === 'object' && typeof body._csrf === 'string') return body._csrf;
  const h = req.headers['x-csrf-token'] ?? req.headers['csrf-token'];
  return typeof h === 'string' ? h : undefined;
}

/**
 * preHandler: a state-changing request authenticated by a session cookie must carry its CSRF token
 * (Bull Board's API: a same-origin Origin header). 403 otherwise.
 */
export function csrfGuard(app: FastifyInstance) {
  return (req: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void): void => {
    const path = req.url.split('?')[0] ?? '';
    // (/login: its route checks the token itself.)
    if (!UNSAFE.has(req.method) || !viaSession(req) || path === '/login') {
      done();
      return;
    }
    if (BULL_BOARD_API.test(path)) {
      const origin = req.headers.origin;
      let same = false;
      try {
        same = Boolean(origin && new URL(origin).host === req.headers.host);
      } catch {
        same = false;
      }
      if (same) {
        done();
        return;
      }
      void reply.code(403).send({ error: 'cross-site request refused: Bull Board actions need a same-origin request' });
      return;
    }
    // Answers 403 itself on a missing or wrong token (and then does not call done).
    app.csrfProtection(req, reply, done);
  };
}

/**
 * onSend: on the pages of a session, every POST form gets the hidden `_csrf` field, the head a
 * <meta name="csrf-token">, the header who is logged in and a logout button; on every page the
 * first-start default (empty password on loopback) is marked.
 */
export function decorateHtml(config: Config, who: (req: FastifyRequest) => Identity | undefined) {
  const firstStart = config.http.password === '';
  return async (req: FastifyRequest, reply: FastifyReply, payload: unknown): Promise<unknown> => {
    if (!isHtmlPage(reply, payload) || !payload.includes('<header>')) return payload;
    let out = payload;
    const id = who(req);
    if (viaSession(req)) {
      const token = esc(reply.generateCsrf());
      out = out
        .replace(/(<form\b[^>]*\bmethod="post"[^>]*>)/gi, `$1<input type="hidden" name="_csrf" value="${token}">`)
        .replace('</head>', `<meta name="csrf-token" content="${token}"></head>`);
    }
    const user = id
      ? viaSession(req)
        ? `<span class="who" id="who">${esc(id.name)} (${esc(id.role)})</span><form method="post" action="/logout" class="logout"><input type="hidden" name="_csrf" value="${esc(reply.generateCsrf())}"><button type="submit" id="logout">Log out</button></form>`
        : `<span class="who" id="who">${esc(id.name)} (${esc(id.role)}, ${req.headers.authorization?.startsWith('Bearer ') ? 'API token' : 'basic auth'})</span>`
      : '';
    const banner = firstStart
      ? `<div class="flash err" id="first-start">First-start default: user ${esc(config.http.username)} with an empty password, accepted only because the node listens on loopback. Set http.password and add users (mlsam users add).</div>`
      : '';
    return atTopOfMain(out.replace('</header>', `${user}</header>`), banner);
  };
}
