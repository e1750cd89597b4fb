/**
 * /admin/static/:file: the dashboard's browser scripts (src/admin/static/*.js, copied next to the
 * compiled code by `npm run build`) and uPlot from node_modules. Only the files named here are served.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyPluginAsync } from 'fastify';
import type { AdminServerDeps } from './context.js';

/** The folder of the dashboard's own browser scripts (src/admin/static, or dist/admin/static once built). */
export const STATIC_DIR = fileURLToPath(new URL('../static/', import.meta.url));

function uplotDir(): string {
  const require = createRequire(import.meta.url);
  return dirname(require.resolve('uplot/dist/uPlot.iife.min.js'));
}

const JS = 'text/javascript; charset=utf-8';

/** Served file name → [path on disk, content type, cache-control]. */
function staticFiles(): Record<string, [string, string, string | undefined]> {
  const udir = uplotDir();
  return {
    'series-chart.js': [join(STATIC_DIR, 'series-chart.js'), JS, undefined],
    'live.js': [join(STATIC_DIR, 'live.js'), JS, undefined],
    'uPlot.iife.min.js': [join(udir, 'uPlot.iife.min.js'), JS, 'max-age=3600'],
    'uPlot.min.css': [join(udir, 'uPlot.min.css'), 'text/css; charset=utf-8', 'max-age=3600'],
  };
}

export const staticRoutes: FastifyPluginAsync<AdminServerDeps> = async (app) => {
  const files = staticFiles();
  app.get<{ Params: { file: string } }>(
    '/admin/static/:file',
    { schema: { params: { type: 'object', properties: { file: { type: 'string' } }, required: ['file'] } } },
    async (req, reply) => {
      const s = Object.hasOwn(files, req.params.file) ? files[req.params.file] : undefined;
      if (!s) return reply.code(404).send({ error: 'not found' });
      if (s[2]) void reply.header('cache-control', s[2]);
      return reply.type(s[1]).send(await readFile(s[0]));
    },
  );
};
