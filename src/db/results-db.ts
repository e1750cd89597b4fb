/**
 * The typed query layer of the results store: every read and write of results, feedback, label
 * imports, the audit trail and settings goes through here (Kysely; the same queries on SQLite and
 * PostgreSQL).
 */
import type { Kysely, Transaction } from 'kysely';
import type { LabelRow, ReferenceLabel } from '../contracts/feedback.js';
import type { StoreConnection } from './database.js';
import type { AuditRow, Database, FeedbackRow, NewResultRow, ResultRow, SettingRow } from './tables.js';

/** A scored row as the drift watch reads it. */
export type DriftInputRow = Pick<
  ResultRow,
  | 'study_instance_uid'
  | 'series_instance_uid'
  | 'score'
  | 'opacity_percent'
  | 'manufacturer'
  | 'kernel'
  | 'slice_thickness_mm'
  | 'kvp'
  | 'contrast'
  | 'finished_at'
  | 'model_version'
>;

/** A feedback row that said agree (1) or disagree (0). */
export type AgreementAnswerRow = Pick<FeedbackRow, 'study_instance_uid' | 'series_instance_uid' | 'user_name' | 'agree' | 'created_at'>;

export interface NewFeedback {
  studyInstanceUid: string;
  seriesInstanceUid?: string;
  label: ReferenceLabel;
  agree: boolean | null;
  comment?: string;
  user: string;
  /** The user's role, kept in the audit entry. */
  role?: string;
  source: 'dashboard' | 'api' | 'import';
}

export interface AuditEntry {
  user: string;
  action: string;
  studyInstanceUid?: string;
  seriesInstanceUid?: string;
  detail?: unknown;
}

export class ResultsDb {
  readonly db: Kysely<Database>;

  constructor(readonly conn: StoreConnection) {
    this.db = conn.db;
  }

  /** Inserts, or replaces the row of the same (series, content, model): writing twice is harmless. */
  async saveResult(row: NewResultRow): Promise<void> {
    const { study_instance_uid: _s, series_instance_uid: _r, instances_hash: _h, model_version: _m, ...rest } = row;
    await this.db
      .insertInto('results')
      .values(row)
      .onConflict((oc) => oc.columns(['series_instance_uid', 'instances_hash', 'model_version']).doUpdateSet(rest))
      .execute();
  }

  /** The newest row of every series (by finished_at), optionally of one study. */
  async latestResults(studyInstanceUid?: string): Promise<ResultRow[]> {
    let q = this.db.selectFrom('results').selectAll().orderBy('finished_at', 'asc').orderBy('id', 'asc');
    if (studyInstanceUid) q = q.where('study_instance_uid', '=', studyInstanceUid);
    const latest = new Map<string, ResultRow>();
    for (const r of await q.execute()) latest.set(r.series_instance_uid, r);
    return [...latest.values()];
  }

  /**
   * What the drift watch reads (src/drift): the few columns of every scored row, oldest first
   * (one narrow query; no key slices or outputs).
   */
  async driftInputs(): Promise<DriftInputRow[]> {
    return this.db
      .selectFrom('results')
      .select([
        'study_instance_uid',
        'series_instance_uid',
        'score',
        'opacity_percent',
        'manufacturer',
        'kernel',
        'slice_thickness_mm',
        'kvp',
        'contrast',
        'finished_at',
        'model_version',
      ])
      .where('status', '=', 'scored')
      .where('score', 'is not', null)
      .orderBy('finished_at', 'asc')
      .orderBy('id', 'asc')
      .execute();
  }

  /** Radiologist answers that said agree or disagree (label imports say neither), oldest first. */
  async agreementAnswers(): Promise<AgreementAnswerRow[]> {
    return this.db
      .selectFrom('feedback')
      .select(['study_instance_uid', 'series_instance_uid', 'user_name', 'agree', 'created_at'])
      .where('agree', 'is not', null)
      .orderBy('created_at', 'asc')
      .orderBy('id', 'asc')
      .execute();
  }

  async studyExists(studyInstanceUid: string): Promise<boolean> {
    const r = await this.db
      .selectFrom('results')
      .select('id')
      .where('study_instance_uid', '=', studyInstanceUid)
      .limit(1)
      .executeTakeFirst();
    return r !== undefined;
  }

  async addFeedback(f: NewFeedback, at = new Date()): Promise<FeedbackRow> {
    return this.db.transaction().execute(async (trx) => {
      const row = await insertFeedback(trx, f, at.toISOString());
      await insertAudit(
        trx,
        {
          user: f.user,
          action: 'feedback',
          studyInstanceUid: f.studyInstanceUid,
          ...(f.seriesInstanceUid ? { seriesInstanceUid: f.seriesInstanceUid } : {}),
          detail: { label: f.label, agree: f.agree, source: f.source, ...(f.role ? { role: f.role } : {}) },
        },
        at.toISOString(),
      );
      return row;
    });
  }

  /** All label rows in one transaction (all or nothing), with one audit entry. */
  async importLabels(rows: readonly LabelRow[], user: string, detail: Record<string, unknown>, at = new Date()): Promise<number> {
    const iso = at.toISOString();
    return this.db.transaction().execute(async (trx) => {
      for (const r of rows)
        await insertFeedback(trx, { studyInstanceUid: r.studyInstanceUid, label: r.label, agree: null, user, source: 'import' }, iso);
      await insertAudit(trx, { user, action: 'label-import', detail: { ...detail, imported: rows.length } }, iso);
      return rows.length;
    });
  }

  /** Every feedback row, oldest first (the latest per study is the reference). */
  async allFeedback(): Promise<FeedbackRow[]> {
    return this.db.selectFrom('feedback').selectAll().orderBy('created_at', 'asc').orderBy('id', 'asc').execute();
  }

  async feedbackOf(studyInstanceUid: string): Promise<FeedbackRow[]> {
    return this.db
      .selectFrom('feedback')
      .selectAll()
      .where('study_instance_uid', '=', studyInstanceUid)
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .execute();
  }

  async audit(entry: AuditEntry, at = new Date()): Promise<void> {
    await insertAudit(this.db, entry, at.toISOString());
  }

  async listAudit(limit = 200): Promise<AuditRow[]> {
    return this.db.selectFrom('audit').selectAll().orderBy('id', 'desc').limit(limit).execute();
  }

  async getSetting(name: string): Promise<string | undefined> {
    return (await this.db.selectFrom('settings').select('value').where('name', '=', name).executeTakeFirst())?.value;
  }

  async setSetting(name: string, value: string, user: string, at = new Date()): Promise<void> {
    const iso = at.toISOString();
    await this.db.transaction().execute(async (trx) => {
      await trx
        .insertInto('settings')
        .values({ name, value, updated_at: iso, updated_by: user })
        .onConflict((oc) => oc.column('name').doUpdateSet({ value, updated_at: iso, updated_by: user }))
        .execute();
      await insertAudit(trx, { user, action: 'setting', detail: { name, value } }, iso);
    });
  }

  /** The settings whose name starts with `prefix`. */
  async settingsLike(prefix: string): Promise<SettingRow[]> {
    return this.db.selectFrom('settings').selectAll().where('name', 'like', `${prefix}%`).orderBy('name').execute();
  }

  /** Several settings and the one audit entry that says why, in one transaction (all or nothing). */
  async setSettings(entries: readonly { name: string; value: string }[], audit: AuditEntry, at = new Date()): Promise<void> {
    const iso = at.toISOString();
    await this.db.transaction().execute(async (trx) => {
      for (const { name, value } of entries) {
        await trx
          .insertInto('settings')
          .values({ name, value, updated_at: iso, updated_by: audit.user })
          .onConflict((oc) => oc.column('name').doUpdateSet({ value, updated_at: iso, updated_by: audit.user }))
          .execute();
      }
      await insertAudit(trx, audit, iso);
    });
  }

  /** Deletes results finished more than `days` ago (0: keeps all); feedback and audit stay. */
  async pruneResults(days: number, now = Date.now()): Promise<number> {
    if (days <= 0) return 0;
    const cutoff = new Date(now - days * 86_400_000).toISOString();
    const r = await this.db.deleteFrom('results').where('finished_at', '<', cutoff).executeTakeFirst();
    return Number(r.numDeletedRows);
  }
}

async function insertFeedback(db: Kysely<Database> | Transaction<Database>, f: NewFeedback, iso: string): Promise<FeedbackRow> {
  return db
    .insertInto('feedback')
    .values({
      study_instance_uid: f.studyInstanceUid,
      series_instance_uid: f.seriesInstanceUid ?? '',
      label: f.label,
      agree: f.agree === null ? null : f.agree ? 1 : 0,
      comment: f.comment ?? null,
      user_name: f.user,
      source: f.source,
      created_at: iso,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
}

async function insertAudit(db: Kysely<Database> | Transaction<Database>, e: AuditEntry, iso: string): Promise<void> {
  await db
    .insertInto('audit')
    .values({
      at: iso,
      user_name: e.user,
      action: e.action,
      study_instance_uid: e.studyInstanceUid ?? null,
      series_instance_uid: e.seriesInstanceUid ?? null,
      detail: e.detail === undefined ? null : JSON.stringify(e.detail),
    })
    .execute();
}
