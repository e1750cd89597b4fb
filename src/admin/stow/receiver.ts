/**
 * DICOMweb STOW-RS receiver (PS3.18 10.5) on the node's HTTP server: POST /dicom-web/studies with a
 * multipart/related; type="application/dicom" body. An archive that speaks only DICOMweb can push
 * studies to the node the way a PACS does over C-STORE, with the same guarantees:
 *
 * - who: the client's address must be in http.stow.allowedHosts, then a bearer token from
 *   http.stow.tokens (or, with http.stow.basicAuth, the dashboard's credentials); 401/403 otherwise;
 * - what: the whole request is checked before anything is stored: a broken multipart body or a part
 *   that is not a Part-10 file → 400, a media type other than application/dicom → 415, a request or
 *   part above its size limit → 413; nothing is stored then;
 * - how: each instance goes through the spool's InstanceWriter (the C-STORE path): header validated,
 *   fsync of the file and its directory before the response, an instance already in the spool kept
 *   once, the disk watermark checked before and during the write (above it: Failure Reason 0xA700);
 * - then: each stored instance is handed to the series tracker like a C-STORE'd one (quiet period,
 *   routing, scoring);
 * - the answer: the PS3.18 response dataset (application/dicom+json): Referenced SOP Sequence for the
 *   stored instances, Failed SOP Sequence with the Failure Reason for the others; 200 when all were
 *   stored, 202 when some, 409 when none.
 */
import { timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { resolvePath } from '../../config/load.js';
import type { Config } from '../../config/schema.js';
import type { InstanceSink } from '../../dicom/received-instance.js';
import { InstanceWriter, StoreStatus } from '../../dicom/spool/instance-writer.js';
import { DiskWatermark, prepareSpool, spoolTmpDir } from '../../dicom/spool/spool-layout.js';
import type { Logger } from '../../log.js';
import { parseMultipartRelated, readPart10Meta, stowBoundary, StowInputError, type Part10Meta } from './multipart.js';

/** How the node calls itself in the tracker's "calling AE title" for instances that came by STOW-RS. */
export const STOW_SOURCE = 'DICOMWEB';
export const STOW_PATH = '/dicom-web/studies';

export interface StowReceiverOptions {
  config: Config;
  logger: Logger;
  /** Where stored instances go (the series tracker). */
  sink: InstanceSink;
  /** fsync before answering (default true; a switch for benchmarks only). */
  fsync?: boolean;
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** null when the request may store; else the status and message to answer. */
export function stowAuthProblem(
  config: Config,
  ip: string,
  authorization: string | undefined,
): { code: 401 | 403; message: string } | null {
  const s = config.http.stow;
  const host = ip.replace(/^::ffff:/, '');
  if (!s.allowedHosts.includes('*') && !s.allowedHosts.includes(host))
    return { code: 403, message: `client ${host} is not in http.stow.allowedHosts` };
  const auth = authorization ?? '';
  if (auth.startsWith('Bearer ')) {
    const token = auth.slice(7).trim();
    if (s.tokens.some((t) => safeEqual(t, token))) return null;
    return { code: 401, message: 'unknown bearer token' };
  }
  if (auth.startsWith('Basic ') && s.basicAuth) {
    const [user, ...pw] = Buffer.from(auth.slice(6), 'base64').toString('utf8').split(':');
    if (safeEqual(user ?? '', config.http.username) && safeEqual(pw.join(':'), config.http.password)) return null;
    return { code: 401, message: 'wrong username or password' };
  }
  return { code: 401, message: s.basicAuth ? 'a bearer token or basic auth is required' : 'a bearer token is required' };
}

type DicomJsonItem = Record<string, { vr: string; Value?: unknown[] }>;

/** The PS3.18 response dataset. */
export function stowResponse(
  stored: { sopClassUid: string; sopInstanceUid: string }[],
  failed: { sopClassUid: string; sopInstanceUid: string; reason: number }[],
): DicomJsonItem {
  const ref = (i: { sopClassUid: string; sopInstanceUid: string }): DicomJsonItem => ({
    '00081150': { vr: 'UI', Value: [i.sopClassUid] },
    '00081155': { vr: 'UI', Value: [i.sopInstanceUid] },
  });
  return {
    '00081198': failed.length
      ? { vr: 'SQ', Value: failed.map((f) => ({ ...ref(f), '00081197': { vr: 'US', Value: [f.reason] } })) }
      : { vr: 'SQ' },
    '00081199': stored.length ? { vr: 'SQ', Value: stored.map(ref) } : { vr: 'SQ' },
  };
}

/** The receiver as a fastify plugin (registered by src/admin/server.ts when http.stow.enabled). */
export async function stowReceiver(app: FastifyInstance, opts: StowReceiverOptions): Promise<void> {
  const { config } = opts;
  const s = config.http.stow;
  const log = opts.logger.child({ component: 'stow-rs' });
  const spoolDir = resolvePath(config.spool.dir);
  await prepareSpool(spoolDir);
  const tmpDir = spoolTmpDir(spoolDir);
  const watermark = new DiskWatermark(spoolDir, config.spool.maxDiskUsagePercent);
  const maxRequest = Math.round(s.maxRequestMB * 1024 * 1024);
  const maxInstance = Math.round(s.maxInstanceMB * 1024 * 1024);

  // Any body is taken as bytes here; the handler checks the media type (415) itself.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: maxRequest }, (_req, body, done) => done(null, body));

  const fail = (reply: FastifyReply, code: number, message: string): FastifyReply =>
    reply.code(code).header('content-type', 'application/json').send({ error: message });

  app.addHook('onRequest', async (req, reply) => {
    const problem = stowAuthProblem(config, req.ip, req.headers.authorization);
    if (!problem) return;
    log.warn({ client: req.ip, code: problem.code, reason: problem.message }, 'STOW-RS request refused');
    if (problem.code === 401)
      void reply.header('WWW-Authenticate', s.basicAuth ? 'Basic realm="mlsam-node DICOMweb"' : 'Bearer realm="mlsam-node DICOMweb"');
    return fail(reply, problem.code, problem.message);
  });

  app.post(STOW_PATH, { bodyLimit: maxRequest }, async (req: FastifyRequest, reply) => {
    const t0 = Date.now();
    let parts: { meta: Part10Meta; body: Buffer }[];
    try {
      const boundary = stowBoundary(req.headers['content-type']);
      const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
      parts = parseMultipartRelated(body, boundary).map((p) => {
        const type = (p.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
        if (type !== 'application/dicom')
          throw new StowInputError(415, `part ${p.index}: Content-Type ${type || 'none'}; only application/dicom parts are accepted`);
        if (p.body.length > maxInstance)
          throw new StowInputError(413, `part ${p.index}: ${p.body.length} bytes, above http.stow.maxInstanceMB (${s.maxInstanceMB} MB)`);
        return { meta: readPart10Meta(p.body, p.index), body: p.body };
      });
    } catch (err) {
      if (err instanceof StowInputError) {
        log.warn({ client: req.ip, code: err.statusCode, reason: err.message }, 'STOW-RS request rejected: nothing stored');
        return fail(reply, err.statusCode, err.message);
      }
      throw err;
    }

    const stored: { sopClassUid: string; sopInstanceUid: string }[] = [];
    const failed: { sopClassUid: string; sopInstanceUid: string; reason: number }[] = [];
    let bytes = 0;
    for (const { meta, body } of parts) {
      const over = watermark.exceeded();
      const writer = new InstanceWriter({
        spoolDir,
        tmpDir,
        fsync: opts.fsync ?? true,
        limits: { maxSequenceDepth: config.dicom.maxSequenceDepth, maxItems: config.dicom.maxItemsPerInstance },
        watermark,
        meta: {
          sopClassUid: meta.sopClassUid,
          sopInstanceUid: meta.sopInstanceUid,
          transferSyntaxUid: meta.transferSyntaxUid,
          sourceAeTitle: STOW_SOURCE,
        },
        ...(over !== undefined
          ? {
              refuse: {
                status: StoreStatus.OutOfResources,
                reason: `spool disk ${over.toFixed(1)}% used, above ${config.spool.maxDiskUsagePercent}%`,
              },
            }
          : {}),
      });
      writer.write(body.subarray(meta.datasetOffset));
      writer.end();
      const o = await writer.outcome;
      await writer.released;
      if (!o.ok) {
        log.warn({ sopInstanceUid: meta.sopInstanceUid, status: o.status, reason: o.reason }, 'STOW-RS instance not stored');
        failed.push({ sopClassUid: meta.sopClassUid, sopInstanceUid: meta.sopInstanceUid, reason: o.status });
        continue;
      }
      bytes += o.bytes;
      stored.push({ sopClassUid: meta.sopClassUid, sopInstanceUid: meta.sopInstanceUid });
      const h = o.header;
      // Like a C-STORE: the tracker hears of it once it is durable; a failing sink loses nothing (the reconciler).
      opts.sink
        .instanceStored({
          sopClassUid: h.sopClassUid,
          sopInstanceUid: h.sopInstanceUid,
          studyInstanceUid: h.studyInstanceUid,
          seriesInstanceUid: h.seriesInstanceUid,
          transferSyntaxUid: meta.transferSyntaxUid,
          modality: h.modality,
          bodyPartExamined: h.bodyPartExamined,
          imageType: h.imageType,
          path: o.path,
          bytes: o.bytes,
          callingAeTitle: STOW_SOURCE,
          callingHost: req.ip,
          receivedAt: Date.now(),
          isNew: o.isNew,
        })
        .catch((err: Error) => log.warn({ err: err.message }, 'series tracker did not take the instance (the reconciler will)'));
    }
    const code = failed.length === 0 ? 200 : stored.length === 0 ? 409 : 202;
    log.info({ client: req.ip, stored: stored.length, failed: failed.length, bytes, ms: Date.now() - t0 }, 'STOW-RS request stored');
    return reply
      .code(code)
      .header('content-type', 'application/dicom+json')
      .send(JSON.stringify(stowResponse(stored, failed)));
  });
}
