/**
 * One HTTP(S) request to a target (DICOMweb archive, FHIR server, webhook receiver): node:http /
 * node:https with the target's CA and client certificate, a hard timeout, and the body read back
 * (capped). Never throws for an HTTP status; throws for a connection problem or the timeout.
 */
import { request as httpRequest, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { readFileSync } from 'node:fs';
import type { HttpAuth, TargetTls } from '../config/targets.js';

export interface HttpResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export interface HttpRequestOptions {
  method: 'GET' | 'POST' | 'PUT';
  url: string;
  headers?: OutgoingHttpHeaders;
  /** The body as one buffer or as parts written one after the other (multipart). */
  body?: Buffer | readonly Buffer[];
  auth?: HttpAuth;
  tls?: TargetTls;
  timeoutMs: number;
  /** Response bytes kept (the rest is read and dropped); default 4 MiB. */
  maxResponseBytes?: number;
}

/** The Authorization header for the target's credentials (none: undefined). */
export function authorizationHeader(auth: HttpAuth | undefined): string | undefined {
  if (!auth || auth.type === 'none') return undefined;
  if (auth.type === 'bearer') return `Bearer ${auth.token}`;
  return `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}`;
}

export class HttpTargetError extends Error {
  override name = 'HttpTargetError';
}

export function httpRequestTo(opts: HttpRequestOptions): Promise<HttpResponse> {
  const url = new URL(opts.url);
  const parts = opts.body === undefined ? [] : Buffer.isBuffer(opts.body) ? [opts.body] : [...opts.body];
  const length = parts.reduce((n, p) => n + p.length, 0);
  const authz = authorizationHeader(opts.auth);
  const headers: OutgoingHttpHeaders = {
    ...opts.headers,
    ...(authz ? { authorization: authz } : {}),
    ...(opts.body !== undefined ? { 'content-length': length } : {}),
  };
  const secure = url.protocol === 'https:';
  const tls = opts.tls;
  const tlsOptions =
    secure && tls
      ? {
          ...(tls.caFile ? { ca: readFileSync(tls.caFile) } : {}),
          ...(tls.certFile ? { cert: readFileSync(tls.certFile) } : {}),
          ...(tls.keyFile ? { key: readFileSync(tls.keyFile) } : {}),
          ...(tls.verifyHostname === false ? { checkServerIdentity: () => undefined } : {}),
          minVersion: 'TLSv1.2' as const,
        }
      : {};
  const max = opts.maxResponseBytes ?? 4 * 1024 * 1024;
  return new Promise<HttpResponse>((resolve, reject) => {
    const req = (secure ? httpsRequest : httpRequest)(
      url,
      { method: opts.method, headers, ...tlsOptions, timeout: opts.timeoutMs },
      (res) => {
        const chunks: Buffer[] = [];
        let kept = 0;
        res.on('data', (c: Buffer) => {
          if (kept < max) {
            chunks.push(c.subarray(0, max - kept));
            kept += Math.min(c.length, max - kept);
          }
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      },
    );
    const timer = setTimeout(() => req.destroy(new HttpTargetError(`no answer within ${opts.timeoutMs} ms`)), opts.timeoutMs);
    req.on('close', () => clearTimeout(timer));
    req.on('timeout', () => req.destroy(new HttpTargetError(`no answer within ${opts.timeoutMs} ms`)));
    req.on('error', (err) =>
      reject(
        err instanceof HttpTargetError ? err : new HttpTargetError(`${url.host}: ${(err as NodeJS.ErrnoException).code ?? err.message}`),
      ),
    );
    for (const p of parts) req.write(p);
    req.end();
  });
}

/** A short, log-safe description of an unexpected response ("HTTP 500: first 200 characters of the body"). */
export function describeResponse(r: HttpResponse): string {
  const text = r.body.subarray(0, 200).toString('utf8').replace(/\s+/g, ' ').trim();
  return `HTTP ${r.status}${text ? `: ${text}` : ''}`;
}
