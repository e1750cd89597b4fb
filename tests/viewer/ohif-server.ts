/**
 * OHIF Viewer (its built dist/, fetched by fetch-ohif.sh into a cache outside the repository) served
 * on loopback, with /dicom-web forwarded to Orthanc's DICOMweb plugin.
 *
 * The forwarder splits comma-separated `includefield` values into repeated parameters: OHIF asks
 * `includefield=00081030,00080060`, and Orthanc's DICOMweb 1.7 ignores a comma list (it only takes
 * one tag per parameter), so the study list would lack descriptions and modalities.
 *
 * /app-config.js is generated: one DICOMweb data source pointing at this server, no study-list
 * lazy loading tricks, no confirmation prompts, no service worker, no internet.
 */
import { execFile } from 'node:child_process';
import { createReadStream, existsSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

/** The OHIF dist folder, fetched into the cache (npm pack) when it is not there yet. */
export async function ohifDist(): Promise<string> {
  const { stdout } = await promisify(execFile)('bash', [path.join(here, 'fetch-ohif.sh')], { timeout: 300_000 });
  const dir = stdout.trim().split('\n').at(-1)?.trim() ?? '';
  if (!existsSync(path.join(dir, 'index.html'))) throw new Error(`fetch-ohif.sh gave no OHIF dist (${stdout})`);
  return dir;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.woff': 'font/woff',
  '.ttf': 'font/ttf',
  '.txt': 'text/plain; charset=utf-8',
  '.map': 'application/json',
};

/** OHIF's configuration: one DICOMweb source (Orthanc behind this server), nothing from the internet. */
export function appConfig(): string {
  const config = {
    routerBasename: '/',
    extensions: [],
    modes: [],
    showStudyList: true,
    maxNumberOfWebWorkers: 2,
    showWarningMessageForCrossOrigin: false,
    showCPUFallbackMessage: false,
    showLoadingIndicator: true,
    strictZSpacingForVolumeViewport: true,
    investigationalUseDialog: { option: 'never' },
    defaultDataSourceName: 'orthanc',
    dataSources: [
      {
        namespace: '@ohif/extension-default.dataSourcesModule.dicomweb',
        sourceName: 'orthanc',
        configuration: {
          friendlyName: 'Orthanc (test)',
          name: 'orthanc',
          wadoUriRoot: '/wado',
          qidoRoot: '/dicom-web',
          wadoRoot: '/dicom-web',
          qidoSupportsIncludeField: true,
          supportsReject: false,
          imageRendering: 'wadors',
          thumbnailRendering: 'wadors',
          enableStudyLazyLoad: true,
          supportsFuzzyMatching: false,
          supportsWildcard: true,
          staticWado: false,
          singlepart: 'bulkdata,video',
          bulkDataURI: { enabled: true, relativeResolution: 'studies' },
          omitQuotationForMultipartRequest: true,
        },
      },
    ],
  };
  return `window.config = ${JSON.stringify(config, null, 2)};\n`;
}

/** `a=1&includefield=x,y` → `a=1&includefield=x&includefield=y`. */
export function splitIncludeField(search: string): string {
  const params = new URLSearchParams(search);
  const out = new URLSearchParams();
  for (const [k, v] of params) {
    if (k.toLowerCase() === 'includefield')
      for (const f of v
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean))
        out.append(k, f);
    else out.append(k, v);
  }
  const s = out.toString();
  return s ? `?${s}` : '';
}

export interface OhifServer {
  url: string;
  /** Requests forwarded to Orthanc (path and query as sent there). */
  forwarded: string[];
  close(): Promise<void>;
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'host', 'content-length']);

async function forward(req: IncomingMessage, res: ServerResponse, target: string): Promise<void> {
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string' && !HOP_BY_HOP.has(k)) headers[k] = v;
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const body = chunks.length ? Buffer.concat(chunks) : undefined;
  const r = await fetch(target, {
    method: req.method ?? 'GET',
    headers,
    ...(body && req.method !== 'GET' && req.method !== 'HEAD' ? { body } : {}),
  });
  const out: Record<string, string> = {};
  r.headers.forEach((v, k) => {
    if (!HOP_BY_HOP.has(k) && k !== 'content-encoding') out[k] = v;
  });
  const buf = Buffer.from(await r.arrayBuffer());
  res.writeHead(r.status, { ...out, 'content-length': String(buf.length) });
  res.end(buf);
}

async function serveFile(res: ServerResponse, file: string): Promise<boolean> {
  try {
    const st = await stat(file);
    if (!st.isFile()) return false;
    res.writeHead(200, {
      'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream',
      'content-length': String(st.size),
      'cache-control': 'no-cache',
    });
    await new Promise<void>((resolve, reject) => createReadStream(file).on('error', reject).on('end', resolve).pipe(res));
    return true;
  } catch {
    return false;
  }
}

/** Serves `dist` on 127.0.0.1 (free port) with /dicom-web and /wado forwarded to `orthancUrl`. */
export async function startOhifServer(dist: string, orthancUrl: string): Promise<OhifServer> {
  const forwarded: string[] = [];
  const config = appConfig();
  const root = path.resolve(dist);
  const server: Server = createServer((req, res) => {
    const handle = async (): Promise<void> => {
      const u = new URL(req.url ?? '/', 'http://127.0.0.1');
      if (u.pathname.startsWith('/dicom-web/') || u.pathname === '/dicom-web' || u.pathname.startsWith('/wado')) {
        const target = `${u.pathname}${splitIncludeField(u.search)}`;
        forwarded.push(target);
        await forward(req, res, `${orthancUrl}${target}`);
        return;
      }
      if (u.pathname === '/app-config.js') {
        res.writeHead(200, { 'content-type': TYPES['.js'] as string, 'cache-control': 'no-store' });
        res.end(config);
        return;
      }
      // No service worker: an empty script that registers nothing.
      if (u.pathname === '/sw.js' || u.pathname === '/init-service-worker.js') {
        res.writeHead(200, { 'content-type': TYPES['.js'] as string });
        res.end('');
        return;
      }
      const file = path.resolve(root, `.${decodeURIComponent(u.pathname)}`);
      if (file.startsWith(root + path.sep) && (await serveFile(res, file))) return;
      // Single-page app: every other route is index.html.
      if (!(await serveFile(res, path.join(root, 'index.html')))) {
        res.writeHead(404);
        res.end();
      }
    };
    handle().catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(String(err));
    });
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    forwarded,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
