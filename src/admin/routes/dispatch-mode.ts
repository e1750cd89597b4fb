/**
 * Silent mode's switch (admin only: src/admin/identity.ts refuses other roles' POSTs):
 *   GET  /api/dispatch/mode       every target's mode, where it comes from, results held
 *   POST /api/dispatch/release    JSON {destination?, sendHeld?: boolean (default false)}: live, held results sent once or withheld
 *   POST /api/dispatch/silence    JSON {destination?}: back to silent
 *   GET  /admin/dispatch          the page; its forms POST /admin/dispatch/release|silence
 * Without `destination`, every target (and the global switch). Each switch is one audit entry.
 */
import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import { z } from 'zod';
import { whoIs } from '../action-audit.js';
import { dispatchModePage } from '../dispatch-mode-page.js';
import { type AdminServerDeps, html } from './context.js';

const releaseBody = z.strictObject({
  destination: z.string().min(1).optional(),
  sendHeld: z.boolean().default(false),
});
const silenceBody = z.strictObject({ destination: z.string().min(1).optional() });

function badRequest(reply: FastifyReply, err: z.ZodError): FastifyReply {
  const issue = err.issues[0];
  return reply.code(400).send({ error: `${issue?.path.length ? `${issue.path.join('.')}: ` : ''}${issue?.message ?? 'invalid body'}` });
}

export const dispatchModeRoutes: FastifyPluginAsync<AdminServerDeps> = async (app, deps) => {
  const control = deps.dispatchModes;
  if (!control) return;
  const fallback = deps.config.http.username;
  // The admin server parses form posts already (@fastify/formbody); registered alone, this plugin needs its own.
  if (!app.hasContentTypeParser('application/x-www-form-urlencoded')) {
    app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => {
      done(null, Object.fromEntries(new URLSearchParams(String(body))));
    });
  }

  app.get('/api/dispatch/mode', async () => control.view());
  app.post('/api/dispatch/release', async (req, reply) => {
    const b = releaseBody.safeParse(req.body ?? {});
    if (!b.success) return badRequest(reply, b.error);
    const who = whoIs(req, fallback);
    return control.release(who, {
      ...(b.data.destination ? { destination: b.data.destination } : {}),
      sendHeld: b.data.sendHeld,
      via: 'api',
    });
  });
  app.post('/api/dispatch/silence', async (req, reply) => {
    const b = silenceBody.safeParse(req.body ?? {});
    if (!b.success) return badRequest(reply, b.error);
    return control.silence(whoIs(req, fallback), { ...(b.data.destination ? { destination: b.data.destination } : {}), via: 'api' });
  });

  app.get<{ Querystring: { ok?: string; msg?: string } }>('/admin/dispatch', async (req, reply) => {
    const flash = req.query.msg ? { ok: req.query.ok === '1', message: req.query.msg.slice(0, 300) } : undefined;
    return html(
      reply,
      dispatchModePage(await control.view(), { canSwitch: whoIs(req, fallback).role === 'admin', ...(flash ? { flash } : {}) }),
    );
  });
  const back = (reply: FastifyReply, ok: boolean, msg: string) =>
    reply.redirect(`/admin/dispatch?ok=${ok ? 1 : 0}&msg=${encodeURIComponent(msg)}`, 303);
  app.post<{ Body: Record<string, string> | undefined }>('/admin/dispatch/release', async (req, reply) => {
    const form = req.body ?? {};
    const sendHeld = form.sendHeld === '1' || form.sendHeld === 'on';
    try {
      const r = await control.release(whoIs(req, fallback), {
        ...(form.destination ? { destination: form.destination } : {}),
        sendHeld,
        via: 'dashboard',
      });
      const sent = r.released.reduce((n, x) => n + x.sent, 0);
      const withheld = r.released.reduce((n, x) => n + x.withheld, 0);
      return back(reply, true, `Released ${r.targets.join(', ')}: ${sent} held result(s) queued for sending, ${withheld} withheld.`);
    } catch (err) {
      return back(reply, false, `Not released: ${(err as Error).message}`);
    }
  });
  app.post<{ Body: Record<string, string> | undefined }>('/admin/dispatch/silence', async (req, reply) => {
    const form = req.body ?? {};
    try {
      const r = await control.silence(whoIs(req, fallback), {
        ...(form.destination ? { destination: form.destination } : {}),
        via: 'dashboard',
      });
      return back(reply, true, `Silent: ${r.targets.join(', ')}. Results are held from now on.`);
    } catch (err) {
      return back(reply, false, `Not switched: ${(err as Error).message}`);
    }
  });
};
