/**
 * Studies in the dashboard and the API (one result per study): a fastify plugin registered by
 * src/admin/server.ts.
 *
 * - GET /api/studies            newest first: date, description, modalities, series count, status,
 *                               the chosen series, score, category
 * - GET /api/studies/:uid       the study and every series with its role (chosen / candidate not
 *                               chosen / ignored) and reason, plus the series summaries
 * - GET /admin/studies          the studies list
 * - GET /admin/studies/:uid     the study page; each series links to its series page
 *
 * The study status folds the tracker's study state into the chosen series' status: receiving /
 * waiting (quiet period) / queued / scoring / scored / not-scored / failed / dispatching / sent;
 * "ignored" when no series of the study is for this model.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { StudyState } from '../queue/study-state.js';
import type { SeriesState } from '../queue/series-state.js';
import type { AdminData, SeriesSummary } from './data.js';
import { esc, fmtDate, layout, notFoundPage } from './pages.js';

export interface StudySeriesView {
  seriesInstanceUid: string;
  seriesNumber?: string;
  seriesDescription?: string;
  modalities: string[];
  instances: number;
  /** chosen (the study's result is computed on it) / candidate (not chosen) / ignored; absent in per-series mode. */
  role?: string;
  reason?: string;
  status: string;
  orientation?: string;
  sliceThicknessMm?: number;
  spacingMm?: number;
  coverageMm?: number;
  kernel?: string;
  score?: number;
  category?: string;
}

export interface StudyView {
  studyInstanceUid: string;
  studyDate?: string;
  studyDescription?: string;
  modalities: string[];
  seriesCount: number;
  status: string;
  statusText: string;
  reason?: string;
  chosenSeries?: string;
  score?: number;
  category?: string;
  firstReceivedAt?: string;
  lastReceivedAt?: string;
  series: StudySeriesView[];
}

const iso = (ms: number | undefined): string | undefined => (ms ? new Date(ms).toISOString() : undefined);

function seriesView(t: SeriesState | undefined, s: SeriesSummary | undefined, uid: string): StudySeriesView {
  const v: StudySeriesView = {
    seriesInstanceUid: uid,
    modalities: t?.modalities ?? (s?.info.modality ? [s.info.modality] : []),
    instances: t?.instancesReceived ?? s?.instancesReceived ?? 0,
    status: s?.status ?? t?.status ?? 'unknown',
  };
  const number = t?.seriesNumber ?? s?.info.seriesNumber;
  const desc = t?.seriesDescription ?? s?.info.seriesDescription;
  if (number) v.seriesNumber = number;
  if (desc) v.seriesDescription = desc;
  if (t?.role) v.role = t.role;
  const reason = t?.roleReason ?? t?.reason ?? s?.reason;
  if (reason) v.reason = reason;
  if (t?.orientation) v.orientation = t.orientation;
  if (t?.sliceThicknessMm !== undefined) v.sliceThicknessMm = t.sliceThicknessMm;
  if (t?.spacingMm !== undefined) v.spacingMm = t.spacingMm;
  if (t?.coverageMm !== undefined) v.coverageMm = t.coverageMm;
  if (t?.kernel) v.kernel = t.kernel;
  if (s?.score !== undefined && (t?.role === 'chosen' || !t?.role)) v.score = s.score;
  if (s?.category !== undefined && (t?.role === 'chosen' || !t?.role)) v.category = s.category;
  return v;
}

/** One study as the API and the pages show it. */
export async function studyView(data: AdminData, st: StudyState): Promise<StudyView> {
  const series = await Promise.all(
    st.seriesInstanceUids.map(async (uid) => {
      const [t, s] = await Promise.all([data.tracker.getSeries(uid), data.summary(uid).catch(() => undefined)]);
      return seriesView(t, s, uid);
    }),
  );
  const num = (v: StudySeriesView): number => Number(v.seriesNumber) || Number.MAX_SAFE_INTEGER;
  series.sort((a, b) => num(a) - num(b) || a.seriesInstanceUid.localeCompare(b.seriesInstanceUid));
  const chosen = series.find((x) => x.role === 'chosen');
  let status: string = st.status;
  let statusText: string;
  if (st.status === 'receiving') statusText = 'receiving (waiting for the study to be quiet)';
  else if (st.status === 'ignored') statusText = 'ignored: no series for this model';
  else {
    status = chosen?.status ?? 'queued';
    statusText = st.noCandidate
      ? `${status}: no series could be scored`
      : chosen
        ? `${status} on series ${chosen.seriesNumber ?? chosen.seriesInstanceUid}`
        : status;
  }
  const v: StudyView = {
    studyInstanceUid: st.studyInstanceUid,
    modalities: [...new Set(series.flatMap((x) => x.modalities))].filter(Boolean).sort(),
    seriesCount: series.length,
    status,
    statusText,
    series,
  };
  if (st.studyDate) v.studyDate = st.studyDate;
  if (st.studyDescription) v.studyDescription = st.studyDescription;
  if (st.reason) v.reason = st.reason;
  if (chosen && !st.noCandidate) {
    v.chosenSeries = chosen.seriesInstanceUid;
    if (chosen.score !== undefined) v.score = chosen.score;
    if (chosen.category !== undefined) v.category = chosen.category;
  }
  const first = iso(st.firstReceivedAt);
  const last = iso(st.lastReceivedAt);
  if (first) v.firstReceivedAt = first;
  if (last) v.lastReceivedAt = last;
  return v;
}

const UID = /^[0-9]+(\.[0-9]+)*$/;
const limitOf = (q: unknown): number => {
  const n = Number((q as { limit?: string } | undefined)?.limit);
  return Number.isInteger(n) && n > 0 ? Math.min(n, 1000) : 100;
};

const roleText = (r: string | undefined): string =>
  r === 'chosen' ? 'scored (chosen)' : r === 'candidate' ? 'candidate, not chosen' : r === 'ignored' ? 'ignored' : '—';
const mm = (v: number | undefined): string => (v === undefined ? '' : `${Number(v.toFixed(2))} mm`);

export function studiesListPage(list: readonly StudyView[]): string {
  const rows = list
    .map(
      (s) => `<tr><td><a href="/admin/studies/${esc(s.studyInstanceUid)}" class="mono">${esc(s.studyInstanceUid)}</a></td>
<td>${esc(fmtDate(s.studyDate))}</td><td>${esc(s.studyDescription ?? '')}</td><td>${esc(s.modalities.join(', '))}</td><td>${s.seriesCount}</td>
<td>${esc(s.statusText)}</td><td>${s.chosenSeries ? `<a href="/admin/series/${esc(s.chosenSeries)}" class="mono">${esc(s.series.find((x) => x.seriesInstanceUid === s.chosenSeries)?.seriesNumber ?? s.chosenSeries)}</a>` : ''}</td>
<td>${s.score !== undefined ? s.score.toFixed(3) : ''}</td><td>${esc(s.category ?? '')}</td></tr>`,
    )
    .join('\n');
  const body = `<h1>Studies</h1><p class="notice">NOT FOR DIAGNOSTIC USE</p>
<p>One result per study, computed on the series best suited to quantitative lung CT; every other series says why it was not used.</p>
<table><thead><tr><th>Study</th><th>Date</th><th>Description</th><th>Modalities</th><th>Series</th><th>Status</th><th>Chosen series</th><th>Score</th><th>Category</th></tr></thead>
<tbody>${rows || '<tr><td colspan="9">No studies yet.</td></tr>'}</tbody></table>`;
  return layout('Studies', body, { refreshSeconds: 10 });
}

export function studyPage(s: StudyView): string {
  const rows = s.series
    .map(
      (
        x,
      ) => `<tr data-series="${esc(x.seriesInstanceUid)}" data-role="${esc(x.role ?? '')}"><td><a href="/admin/series/${esc(x.seriesInstanceUid)}">${esc(x.seriesNumber ?? '')}</a></td>
<td>${esc(x.seriesDescription ?? '')}</td><td>${esc(x.modalities.join(', '))}</td><td>${x.instances}</td><td>${esc(x.orientation ?? '')}</td>
<td>${esc(mm(x.sliceThicknessMm))}</td><td>${esc(mm(x.spacingMm))}</td><td>${esc(x.kernel ?? '')}</td>
<td class="role">${esc(roleText(x.role))}</td><td class="reason">${esc(x.reason ?? '')}</td><td>${esc(x.status)}</td>
<td>${x.score !== undefined ? x.score.toFixed(3) : ''}</td></tr>`,
    )
    .join('\n');
  const body = `<h1>Study <span class="mono">${esc(s.studyInstanceUid)}</span>${s.studyDescription ? ` <span class="muted">${esc(s.studyDescription)}</span>` : ''}</h1>
<p class="notice">NOT FOR DIAGNOSTIC USE</p>
<p>Date ${esc(fmtDate(s.studyDate))} · ${s.seriesCount} series · <strong id="study-status">${esc(s.statusText)}</strong>${s.score !== undefined ? ` · score ${s.score.toFixed(3)} (${esc(s.category ?? '')})` : ''}${s.reason ? ` · ${esc(s.reason)}` : ''}</p>
<table><thead><tr><th>Series</th><th>Description</th><th>Modality</th><th>Instances</th><th>Orientation</th><th>Thickness</th><th>Spacing</th><th>Kernel</th><th>Role</th><th>Reason</th><th>Status</th><th>Score</th></tr></thead>
<tbody>${rows}</tbody></table>`;
  return layout(`Study ${s.studyInstanceUid}`, body, { refreshSeconds: 10 });
}

export interface StudiesPluginOptions {
  data: AdminData;
}

/** The studies routes (API and pages). */
export const studiesPlugin: FastifyPluginAsync<StudiesPluginOptions> = async (app, opts) => {
  const { data } = opts;
  const list = async (limit: number): Promise<StudyView[]> =>
    Promise.all((await data.tracker.listStudies(limit)).map((st) => studyView(data, st)));
  const one = async (uid: string): Promise<StudyView | undefined> => {
    if (!UID.test(uid)) return undefined;
    const st = await data.tracker.getStudy(uid);
    return st ? studyView(data, st) : undefined;
  };
  app.get('/api/studies', async (req) => list(limitOf(req.query)));
  app.get<{ Params: { uid: string } }>(
    '/api/studies/:uid',
    async (req, reply) => (await one(req.params.uid)) ?? reply.code(404).send({ error: 'study not found' }),
  );
  app.get('/admin/studies', async (req, reply) =>
    reply.type('text/html; charset=utf-8').send(studiesListPage(await list(limitOf(req.query)))),
  );
  app.get<{ Params: { uid: string } }>('/admin/studies/:uid', async (req, reply) => {
    const s = await one(req.params.uid);
    if (!s)
      return reply
        .code(404)
        .type('text/html; charset=utf-8')
        .send(notFoundPage(`No study ${req.params.uid}.`));
    return reply.type('text/html; charset=utf-8').send(studyPage(s));
  });
};
