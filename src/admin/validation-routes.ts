/**
 * Feedback, label import and the local validation report (a fastify plugin, registered by
 * src/admin/server.ts):
 *   POST /api/studies/:studyInstanceUid/feedback   JSON {label, agree?, comment?, seriesInstanceUid?}
 *   POST /api/validation/labels                     text/csv "StudyInstanceUID,label" (good rows imported in one transaction, bad rows reported by line)
 *   GET  /api/validation | /api/validation.csv | /api/validation.html
 *   GET  /admin/review[?study=]  POST /admin/review/:studyInstanceUid   (the radiologist's page)
 *   GET  /admin/validation
 * Every write lands in the audit table with the user.
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import {
  agreesWith,
  dicomUidSchema,
  feedbackBodySchema,
  parseLabelCsv,
  REFERENCE_LABELS,
  referenceLabelSchema,
} from '../contracts/feedback.js';
import type { StoreHandle } from '../db/handle.js';
import type { ResultsDb } from '../db/results-db.js';
import { buildReport } from '../validation/report.js';
import { reportCsv, reportHtml } from '../validation/render.js';
import { reviewPage, validationPage } from './review-pages.js';

import { identityOf, type Identity } from './identity.js';
export type { Identity } from './identity.js';

export interface ValidationRoutesOptions {
  store: StoreHandle;
  /** Who is asking; default: what the server's auth hook found (basic auth or token), else the basic-auth user name as admin. */
  identify?: (req: FastifyRequest) => Identity;
}

const LABEL_CSV_LIMIT = 8 * 1024 * 1024;

export function basicAuthUser(req: FastifyRequest): string | undefined {
  const h = req.headers.authorization;
  if (!h?.startsWith('Basic ')) return undefined;
  const user = Buffer.from(h.slice(6), 'base64').toString('utf8').split(':')[0];
  return user || undefined;
}

const defaultIdentify = (req: FastifyRequest): Identity => identityOf(req) ?? { name: basicAuthUser(req) ?? 'admin', role: 'admin' };

async function studyRows(db: ResultsDb, study: string) {
  return db.latestResults(study);
}

/** Studies with a scored result and no reference yet, oldest result first. */
async function pendingStudies(db: ResultsDb): Promise<string[]> {
  const answered = new Set((await db.allFeedback()).map((f) => f.study_instance_uid));
  const rows = (await db.latestResults()).filter((r) => r.status === 'scored').sort((a, b) => a.finished_at.localeCompare(b.finished_at));
  return [...new Set(rows.map((r) => r.study_instance_uid))].filter((s) => !answered.has(s));
}

export const validationRoutes: FastifyPluginAsync<ValidationRoutesOptions> = async (app, opts) => {
  const identify = opts.identify ?? defaultIdentify;
  const store = opts.store;
  const canAnswer = (who: Identity): boolean => who.role === 'admin' || who.role === 'radiologist';
  const forbid = (reply: FastifyReply, who: Identity) =>
    reply.code(403).send({ error: `user ${who.name} (${who.role}) may not give feedback: needs the radiologist or admin role` });

  app.addContentTypeParser(['text/csv', 'text/plain'], { parseAs: 'string', bodyLimit: LABEL_CSV_LIMIT }, (_req, body, done) =>
    done(null, body),
  );
  // (The admin server parses form posts already, @fastify/formbody; this plugin alone needs its own.)
  if (!app.hasContentTypeParser('application/x-www-form-urlencoded')) {
    app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => {
      done(null, Object.fromEntries(new URLSearchParams(String(body))));
    });
  }

  /** Validates and stores one answer; the same code for the API and the form. */
  async function answer(db: ResultsDb, study: string, body: unknown, who: Identity, source: 'api' | 'dashboard') {
    const parsed = feedbackBodySchema.safeParse(body);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const where = issue?.path.length ? `${issue.path.join('.')}: ` : '';
      return { code: 400, body: { error: `${where}${issue?.message ?? 'invalid body'}`, allowedLabels: REFERENCE_LABELS } };
    }
    const rows = await studyRows(db, study);
    if (rows.length === 0) return { code: 404, body: { error: `no result for study ${study}` } };
    const f = parsed.data;
    if (f.seriesInstanceUid && !rows.some((r) => r.series_instance_uid === f.seriesInstanceUid)) {
      return { code: 404, body: { error: `study ${study} has no result for series ${f.seriesInstanceUid}` } };
    }
    const scored = rows.filter((r) => r.score !== null).sort((a, b) => (b.score ?? 0) - (a.score ?? 0));
    const target = f.seriesInstanceUid ? rows.find((r) => r.series_instance_uid === f.seriesInstanceUid) : scored[0];
    const agree = f.agree ?? agreesWith(f.label, target?.category ?? null);
    const row = await db.addFeedback({
      studyInstanceUid: study,
      ...(f.seriesInstanceUid ? { seriesInstanceUid: f.seriesInstanceUid } : {}),
      label: f.label,
      agree,
      ...(f.comment ? { comment: f.comment } : {}),
      user: who.name,
      role: who.role,
      source,
    });
    return {
      code: 201,
      body: {
        id: row.id,
        studyInstanceUid: study,
        seriesInstanceUid: row.series_instance_uid || null,
        label: row.label,
        agree: row.agree === null ? null : row.agree === 1,
        comment: row.comment,
        user: row.user_name,
        at: row.created_at,
      },
    };
  }

  app.post<{ Params: { studyInstanceUid: string } }>('/api/studies/:studyInstanceUid/feedback', async (req, reply) => {
    const who = identify(req);
    if (!canAnswer(who)) return forbid(reply, who);
    const uid = dicomUidSchema.safeParse(req.params.studyInstanceUid);
    if (!uid.success) return reply.code(404).send({ error: 'not a StudyInstanceUID' });
    const r = await store.use((db) => answer(db, uid.data, req.body, who, 'api'));
    return reply.code(r.code).send(r.body);
  });

  app.post('/api/validation/labels', { bodyLimit: LABEL_CSV_LIMIT }, async (req, reply) => {
    const who = identify(req);
    if (!canAnswer(who)) return forbid(reply, who);
    if (typeof req.body !== 'string')
      return reply
        .code(415)
        .send({ error: 'send the labels as text/csv with the header StudyInstanceUID,label', allowedLabels: REFERENCE_LABELS });
    const parsed = parseLabelCsv(req.body);
    const result = await store.use(async (db) => {
      const imported = parsed.rows.length
        ? await db.importLabels(parsed.rows, who.name, { source: 'api', role: who.role, errors: parsed.errors.length })
        : 0;
      const scored = new Set((await db.latestResults()).map((r) => r.study_instance_uid));
      return {
        imported,
        errors: parsed.errors,
        notYetScored: [...new Set(parsed.rows.map((r) => r.studyInstanceUid))].filter((s) => !scored.has(s)),
      };
    });
    return reply.code(result.imported === 0 && parsed.errors.length > 0 ? 400 : 200).send({ ...result, allowedLabels: REFERENCE_LABELS });
  });

  const report = () => store.use(async (db) => buildReport(await db.latestResults(), await db.allFeedback()));
  app.get('/api/validation', async () => report());
  app.get('/api/validation.csv', async (_req, reply) =>
    reply
      .type('text/csv; charset=utf-8')
      .header('content-disposition', 'attachment; filename="mlsam-validation.csv"')
      .send(reportCsv(await report())),
  );
  app.get('/api/validation.html', async (_req, reply) =>
    reply
      .type('text/html; charset=utf-8')
      .header('content-disposition', 'attachment; filename="mlsam-validation.html"')
      .send(reportHtml(await report())),
  );
  app.get('/admin/validation', async (_req, reply) =>
    reply
      .type('text/html; charset=utf-8')
      .header('cache-control', 'no-store')
      .send(validationPage(reportHtml(await report()))),
  );

  app.get<{ Querystring: { study?: string; msg?: string } }>('/admin/review', async (req, reply) => {
    const who = identify(req);
    const page = await store.use(async (db) => {
      const pending = await pendingStudies(db);
      const asked = req.query.study && dicomUidSchema.safeParse(req.query.study).success ? req.query.study : undefined;
      const study = asked ?? pending[0];
      if (!study) return reviewPage(undefined, 0, req.query.msg?.slice(0, 200));
      const series = await studyRows(db, study);
      if (series.length === 0) return undefined;
      return reviewPage(
        {
          study,
          series,
          feedback: await db.feedbackOf(study),
          pending,
          user: who.name,
          canAnswer: canAnswer(who),
          ...(req.query.msg ? { flash: req.query.msg.slice(0, 200) } : {}),
        },
        pending.length,
      );
    });
    if (!page) return reply.code(404).type('text/html; charset=utf-8').send(reviewPage(undefined, 0));
    return reply.type('text/html; charset=utf-8').header('cache-control', 'no-store').send(page);
  });

  app.post<{ Params: { studyInstanceUid: string }; Body: Record<string, string> | undefined }>(
    '/admin/review/:studyInstanceUid',
    async (req, reply) => {
      const who = identify(req);
      if (!canAnswer(who)) return forbid(reply, who);
      const uid = dicomUidSchema.safeParse(req.params.studyInstanceUid);
      if (!uid.success) return reply.code(404).send({ error: 'not a StudyInstanceUID' });
      const form = req.body ?? {};
      const label = referenceLabelSchema.safeParse(form.label);
      const body = {
        label: label.success ? label.data : form.label,
        ...(form.agree === 'yes' ? { agree: true } : form.agree === 'no' ? { agree: false } : {}),
        ...(form.comment?.trim() ? { comment: form.comment.trim() } : {}),
      };
      const r = await store.use((db) => answer(db, uid.data, body, who, 'dashboard'));
      if (r.code !== 201) return reply.code(r.code).send(r.body);
      const next = await store.use(async (db) => (await pendingStudies(db))[0]);
      const msg = `Saved ${body.label} for ${uid.data}.`;
      return reply.redirect(`/admin/review?${next ? `study=${encodeURIComponent(next)}&` : ''}msg=${encodeURIComponent(msg)}`, 303);
    },
  );
};
