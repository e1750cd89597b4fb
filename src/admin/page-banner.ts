/**
 * What the admin server's onSend hooks share when they add to a rendered page (the signed-in user
 * and first-start notice, the drift banner, the silent-mode banner): which replies are HTML pages,
 * and where a banner goes — the top of layout()'s <main>.
 */
import type { FastifyReply } from 'fastify';

/** The reply is an HTML page as a string (not a stream, JSON or an image). */
export function isHtmlPage(reply: FastifyReply, payload: unknown): payload is string {
  return typeof payload === 'string' && String(reply.getHeader('content-type') ?? '').startsWith('text/html');
}

/** The page with `html` at the top of its first <main>; the page as it is when it has none or `html` is ''. */
export function atTopOfMain(page: string, html: string): string {
  const at = page.indexOf('<main>');
  if (!html || at < 0) return page;
  const cut = at + '<main>'.length;
  return page.slice(0, cut) + html + page.slice(cut);
}
