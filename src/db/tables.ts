/**
 * The relational store's tables as Kysely sees them (src/db/migrations.ts creates them). Same
 * column types on SQLite and PostgreSQL: times are ISO-8601 text, booleans 0/1 integers, JSON text.
 * Rows are keyed by StudyInstanceUID and SeriesInstanceUID, so per-series and per-study results fit.
 */
import type { Generated, Insertable, Selectable } from 'kysely';

/** One scored (or not-scored) result: the latest of each (series, content, model). */
export interface ResultsTable {
  id: Generated<number>;
  study_instance_uid: string;
  /** '' for a study-level result. */
  series_instance_uid: string;
  instances_hash: string;
  job_id: string;
  status: string;
  reason: string | null;
  model_name: string;
  model_version: string;
  score: number | null;
  category: string | null;
  threshold: number | null;
  indeterminate_margin: number | null;
  cnn_score: number | null;
  fusion: string | null;
  instance_count: number;
  opacity_percent: number | null;
  high_opacity_percent: number | null;
  lung_ml: number | null;
  /** JSON: key slices without attention maps ({index, sopInstanceUid, probability, opacityPercent, …}). */
  key_slices: string;
  /** JSON: the result objects written (kind, SOP Instance UID, series). */
  outputs: string;
  manufacturer: string | null;
  manufacturer_model: string | null;
  kernel: string | null;
  slice_thickness_mm: number | null;
  kvp: number | null;
  /** ContrastBolusAgent, '' when the header says none, null when unknown. */
  contrast: string | null;
  calling_ae_title: string;
  started_at: string;
  finished_at: string;
  stored_at: string;
}

/** A radiologist's reference finding for a study (or one series), or a row of a label import. */
export interface FeedbackTable {
  id: Generated<number>;
  study_instance_uid: string;
  /** '' when the answer is for the whole study. */
  series_instance_uid: string;
  label: string;
  /** 1 agree, 0 disagree with the node's category, null not said (label imports). */
  agree: number | null;
  comment: string | null;
  user_name: string;
  /** 'dashboard' | 'api' | 'import'. */
  source: string;
  created_at: string;
}

export interface UsersTable {
  name: string;
  password_hash: string;
  role: string;
  created_at: string;
  updated_at: string;
}

export interface ApiTokensTable {
  id: Generated<number>;
  /** sha256 of the token (the token itself is shown once). */
  token_hash: string;
  user_name: string;
  label: string;
  created_at: string;
}

/** Every user action: feedback, label import, re-score, retry, resend, silent-mode switch. */
export interface AuditTable {
  id: Generated<number>;
  at: string;
  user_name: string;
  action: string;
  study_instance_uid: string | null;
  series_instance_uid: string | null;
  detail: string | null;
}

/** Named switches an admin flips (dispatch release), as text. */
export interface SettingsTable {
  name: string;
  value: string;
  updated_at: string;
  updated_by: string;
}

/** A browser session of the dashboard (src/db/sessions.ts). */
export interface SessionsTable {
  /** sha256 of the session id (the id is only in the signed cookie). */
  id_hash: string;
  /** Who logged in; null for the short session of the login form (its CSRF secret only). */
  user_name: string | null;
  /** The session as JSON (cookie settings, CSRF secret, who and how). */
  data: string;
  created_at: string;
  /** ISO time after which the session is void (and deleted). */
  expires_at: string;
}

export interface Database {
  results: ResultsTable;
  feedback: FeedbackTable;
  users: UsersTable;
  api_tokens: ApiTokensTable;
  audit: AuditTable;
  settings: SettingsTable;
  sessions: SessionsTable;
}

export type ResultRow = Selectable<ResultsTable>;
export type NewResultRow = Insertable<ResultsTable>;
export type FeedbackRow = Selectable<FeedbackTable>;
export type AuditRow = Selectable<AuditTable>;
export type SettingRow = Selectable<SettingsTable>;
