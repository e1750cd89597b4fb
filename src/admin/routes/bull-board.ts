/** Bull Board under /admin/queues: inference and dispatch (the internal series-settle queue is left out). */
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import type { FastifyPluginAsync } from 'fastify';
import type { AdminServerDeps } from './context.js';

const BASE = '/admin/queues';

/**
 * Bull Board's page, made to work on an offline hospital network and to lead back: the web-font
 * stylesheet it loads from the internet is dropped (its CSS falls back to the system fonts) and a
 * link to the series dashboard is added.
 */
export function bullBoardHtml(html: string): string {
  return html
    .replace(/<link[^>]+href="https?:\/\/fonts\.(googleapis|gstatic)\.com[^"]*"[^>]*>\s*/g, '')
    .replace(
      /<body([^>]*)>/,
      '<body$1><a id="mlsam-back" href="/admin" style="position:fixed;right:16px;bottom:12px;z-index:1000;background:#1d3557;color:#fff;padding:6px 12px;border-radius:4px;font:600 13px system-ui,sans-serif;text-decoration:none;box-shadow:0 1px 4px rgba(0,0,0,.3)">← Series dashboard</a>',
    );
}

export const bullBoardRoutes: FastifyPluginAsync<AdminServerDeps> = async (app, deps) => {
  const board = new FastifyAdapter();
  createBullBoard({
    queues: deps.queues.map((q) => new BullMQAdapter(q)),
    serverAdapter: board,
    options: {
      uiConfig: { boardTitle: 'mlsam-node queues', hideDocsLink: true, miscLinks: [{ text: 'Series dashboard', url: '/admin' }] },
    },
  });
  board.setBasePath(BASE);
  // Job operations (retry, promote, remove, clean, pause…) are user actions: each lands in the audit table.
  app.addHook('onResponse', async (req, reply) => {
    if (!req.url.startsWith(`${BASE}/api/`) || req.method === 'GET' || req.method === 'HEAD') return;
    await deps.audit?.record(req, 'bull-board', {
      action: 'queue-job',
      detail: { method: req.method, path: req.url.split('?')[0], status: reply.statusCode },
    });
  });
  // (Added before the board's plugin so that its routes inherit it.)
  app.addHook('onSend', async (req, reply, payload) => {
    if (typeof payload !== 'string' || !req.url.startsWith(BASE)) return payload;
    if (!String(reply.getHeader('content-type') ?? '').startsWith('text/html')) return payload;
    return bullBoardHtml(payload);
  });
  await app.register(board.registerPlugin() as never, { prefix: BASE });
};
