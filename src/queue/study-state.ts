/**
 * A study as the series tracker keeps it in Redis (hash `<prefix>:study:<uid>`, its series in the
 * set `<prefix>:study:<uid>:series`, listed by last arrival in `<prefix>:study-index`).
 *
 * status: receiving (an instance arrived since the last settle), queued (the chosen series' job is
 * queued: its result record tells scoring / scored / not-scored / failed), ignored (no series of the
 * study is for this model; every series says why).
 */
export type StudyStatus = 'receiving' | 'queued' | 'ignored';

export interface StudyState {
  studyInstanceUid: string;
  status: StudyStatus;
  firstReceivedAt: number;
  lastReceivedAt: number;
  /** StudyDate (YYYYMMDD) and StudyDescription as received (not PHI). */
  studyDate?: string;
  studyDescription?: string;
  seriesInstanceUids: string[];
  /** At the last settle: the chosen series, the study content hash and the inference job. */
  chosenSeries?: string;
  contentHash?: string;
  jobId?: string;
  /** True when no series was a candidate and the job only reports why (a "not scored" SR). */
  noCandidate?: boolean;
  reason?: string;
  settledAt?: number;
}

/** Parses the study hash (undefined when the study is unknown). */
export function parseStudyState(h: Record<string, string>, series: string[]): StudyState | undefined {
  if (!h.studyInstanceUid) return undefined;
  const n = (v: string | undefined): number => (v ? Number(v) : 0);
  const st: StudyState = {
    studyInstanceUid: h.studyInstanceUid,
    status: (h.status as StudyStatus | undefined) ?? 'receiving',
    firstReceivedAt: n(h.firstReceivedAt),
    lastReceivedAt: n(h.lastReceivedAt),
    seriesInstanceUids: [...series].sort(),
  };
  if (h.studyDate) st.studyDate = h.studyDate;
  if (h.studyDescription) st.studyDescription = h.studyDescription;
  if (h.chosenSeries) st.chosenSeries = h.chosenSeries;
  if (h.contentHash) st.contentHash = h.contentHash;
  if (h.jobId) st.jobId = h.jobId;
  if (h.noCandidate === '1') st.noCandidate = true;
  if (h.reason) st.reason = h.reason;
  if (h.settledAt) st.settledAt = Number(h.settledAt);
  return st;
}
