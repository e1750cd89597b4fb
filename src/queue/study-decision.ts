/**
 * Settle step 2 in study mode (results.perSeries false), decide: from every series of a complete
 * study, gathered and summarised, which one is scored for the study and what each series and the
 * study record. Pure: no Redis, no clock (the caller passes `now`); the tracker writes the result
 * (src/queue/series-tracker.ts, settleStudy).
 *
 * - The series are taken in SeriesNumber order (then UID), so roles read in the study's order.
 * - Selection (src/queue/series-selection.ts) gives every series a role and reason, the chosen
 *   one and the candidates' preference order (the fallback when the chosen one cannot be scored).
 * - No candidate, but chest CT series that routing accepts (reformats, non-axial, short coverage):
 *   the largest of them carries the study's "not scored" report. A study with nothing for this
 *   model (other modality, body part, only localizers or too few slices) is ignored, no report.
 * - One inference job per study content: its id comes from the study UID and a hash over every
 *   series' content, so a resent study adds nothing and a grown one is scored again once.
 */
import { instancesHash, studyInferenceJobId, type StudyJobContext, type StudySeriesRole } from './jobs.js';
import type { IgnoreCode } from './routing.js';
import type { SeriesContent } from './series-content.js';
import { selectSeries, type SelectionRules, type SeriesSummary } from './series-selection.js';

/** One series of the study as the settle gathered it: its content and selection's summary of it. */
export interface StudySeries {
  uid: string;
  content: SeriesContent;
  summary: SeriesSummary;
}

/** What the study's previous settle recorded, as far as the decision needs it. */
export interface PreviousStudySettle {
  chosenSeries?: string;
}

export interface StudyDecision {
  /** The study's series in SeriesNumber order. */
  series: StudySeries[];
  /** sha256 over the series' "<series UID>:<instances hash>" pairs. */
  contentHash: string;
  /** How many series are candidates (axial chest stacks). */
  candidates: number;
  /** Every series' role and reason (carried by the job into the SR). */
  roles: StudySeriesRole[];
  /** The series scored for the study (or, with noCandidate, the one reporting "not scored"). */
  chosen?: StudySeries;
  /** True when no series is a candidate and the chosen one only reports why. */
  noCandidate: boolean;
  /** The study's inference job id (with a chosen series). */
  jobId?: string;
  /** The study job's context (with a chosen series). */
  context?: StudyJobContext;
  /** The fields the study's hash records. */
  studyFields: Record<string, string>;
  /** Every series but the chosen one, with the code and reason it is recorded ignored with. */
  notChosen: Array<{ series: StudySeries; code: IgnoreCode; reason: string }>;
}

/** Series in SeriesNumber order (a missing or non-numeric number last), then by UID. */
export function bySeriesNumber(series: readonly StudySeries[]): StudySeries[] {
  const num = (s: SeriesSummary): number => Number(s.seriesNumber) || Number.MAX_SAFE_INTEGER;
  return [...series].sort((a, b) => num(a.summary) - num(b.summary) || (a.uid < b.uid ? -1 : 1));
}

export function decideStudy(
  studyInstanceUid: string,
  gathered: readonly StudySeries[],
  previous: PreviousStudySettle,
  rules: SelectionRules,
  now: number,
): StudyDecision {
  const series = bySeriesNumber(gathered);
  const selection = selectSeries(
    series.map((x) => x.summary),
    rules,
  );
  const contentHash = instancesHash(series.map((x) => `${x.uid}:${x.content.hash}`));
  const byUid = new Map(series.map((x) => [x.uid, x]));
  const roles: StudySeriesRole[] = selection.roles.map((r) => {
    const s = (byUid.get(r.seriesInstanceUid) as StudySeries).summary;
    return {
      seriesInstanceUid: r.seriesInstanceUid,
      seriesNumber: s.seriesNumber,
      seriesDescription: s.seriesDescription,
      role: r.role,
      reason: r.reason,
    };
  });

  let chosen = selection.chosen ? byUid.get(selection.chosen) : undefined;
  let noCandidate = false;
  if (!chosen) {
    const reportable = series
      .filter((x) => x.summary.route.route === 'score')
      .sort((a, b) => b.content.instanceCount - a.content.instanceCount)[0];
    if (reportable) {
      chosen = reportable;
      noCandidate = true;
    }
  }

  const jobId = chosen ? studyInferenceJobId(studyInstanceUid, contentHash) : undefined;
  const reason = noCandidate
    ? 'no series of the study could be scored (each series says why)'
    : chosen
      ? ''
      : 'no series of the study is for this model (each series says why)';
  const studyFields: Record<string, string> = {
    status: chosen ? 'queued' : 'ignored',
    contentHash,
    settledAt: String(now),
    seriesCount: String(series.length),
    candidates: String(selection.order.length),
    noCandidate: noCandidate ? '1' : '0',
    reason,
    ...(chosen && jobId ? { chosenSeries: chosen.uid, jobId } : {}),
  };

  let context: StudyJobContext | undefined;
  if (chosen) {
    const fallback = noCandidate
      ? []
      : selection.order.slice(1).map((u) => {
          const f = (byUid.get(u) as StudySeries).content;
          return { seriesInstanceUid: u, seriesDir: f.seriesDir, instanceCount: f.instanceCount, instancesHash: f.hash };
        });
    context = {
      contentHash,
      roles,
      fallback,
      ...(previous.chosenSeries && previous.chosenSeries !== chosen.uid ? { previousSeries: previous.chosenSeries } : {}),
      ...(noCandidate ? { noCandidate: true } : {}),
    };
  }

  const notChosen = series
    .filter((x) => x !== chosen)
    .map((x) => {
      const role = roles.find((r) => r.seriesInstanceUid === x.uid) as StudySeriesRole;
      const route = x.summary.route;
      const code: IgnoreCode = route.route === 'ignore' ? route.code : role.role === 'candidate' ? 'not-chosen' : 'not-candidate';
      return { series: x, code, reason: role.reason };
    });

  return {
    series,
    contentHash,
    candidates: selection.order.length,
    roles,
    ...(chosen ? { chosen } : {}),
    noCandidate,
    ...(jobId ? { jobId } : {}),
    ...(context ? { context } : {}),
    studyFields,
    notChosen,
  };
}

/** Role and selection fields recorded in a series' hash (study mode). */
export function roleFields(s: SeriesSummary, roles: readonly StudySeriesRole[]): Record<string, string> {
  const r = roles.find((x) => x.seriesInstanceUid === s.seriesInstanceUid);
  const f: Record<string, string> = {
    role: r?.role ?? 'ignored',
    roleReason: r?.reason ?? '',
    seriesNumber: s.seriesNumber,
    seriesDescription: s.seriesDescription,
    orientation: s.orientation,
    kernel: s.kernel,
  };
  if (s.sliceThicknessMm !== null) f.sliceThicknessMm = String(s.sliceThicknessMm);
  if (s.spacingMm !== null) f.spacingMm = String(Number(s.spacingMm.toFixed(3)));
  if (s.coverageMm !== null) f.coverageMm = String(Number(s.coverageMm.toFixed(1)));
  return f;
}
