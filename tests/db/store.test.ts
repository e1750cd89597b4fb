/**
 * The results store on both engines (a fresh SQLite file; a fresh PostgreSQL database): migrations,
 * idempotent result writes, feedback, the transactional label import, the audit trail, and that
 * everything is still there after the store is closed and opened again (a restart).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { migrateToLatest, openStore } from '../../src/db/database.js';
import { ResultsDb } from '../../src/db/results-db.js';
import { resultRow } from '../../src/db/result-row.js';
import { parseLabelCsv } from '../../src/contracts/feedback.js';
import { createTestStore, ENGINES, fakeRecord, type TestStore } from './helpers.js';

async function open(url: string): Promise<ResultsDb> {
  const conn = openStore(url);
  await migrateToLatest(conn);
  return new ResultsDb(conn);
}

describe.each(ENGINES)('results store on %s', (engine) => {
  let ts: TestStore;
  let db: ResultsDb;
  beforeAll(async () => {
    ts = await createTestStore(engine);
    db = await open(ts.url);
  });
  afterAll(async () => {
    await db?.conn.close();
    await ts?.drop();
  });

  it('applies the migrations once, in order', async () => {
    const rows = await sql<{ name: string }>`select name from kysely_migration order by name`.execute(db.db);
    expect(rows.rows.map((r) => r.name)).toEqual(['0001_results', '0002_feedback', '0003_users_audit_settings', '0004_sessions']);
    // A second open applies nothing more.
    const again = openStore(ts.url);
    expect(await migrateToLatest(again)).toEqual([]);
    await again.close();
  });

  it('writes a result with its attributes; writing it again replaces, not duplicates', async () => {
    const rec = fakeRecord('1.2.3', '1.2.3.1', 0.81);
    const attrs = { manufacturer: 'SIEMENS', manufacturerModel: 'SOMATOM', kernel: 'B70f', sliceThicknessMm: 1, kvp: 120, contrast: '' };
    await db.saveResult(resultRow(rec, attrs));
    await db.saveResult(resultRow({ ...rec, score: 0.82 }, attrs));
    const rows = await db.latestResults('1.2.3');
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      score: 0.82,
      category: 'likely',
      manufacturer: 'SIEMENS',
      kernel: 'B70f',
      slice_thickness_mm: 1,
      kvp: 120,
      contrast: '',
      model_version: '2.1.0',
    });
    expect(JSON.parse(rows[0]!.key_slices)).toEqual([{ index: 3, sopInstanceUid: '1.2.3.1.4', probability: 0.81 }]);
  });

  it('keeps a newer content of the same series as the latest', async () => {
    const rec = fakeRecord('1.2.3', '1.2.3.1', 0.3, { instancesHash: 'c'.repeat(64), finishedAt: '2026-12-07T11:00:00.000Z' });
    await db.saveResult(resultRow(rec, null));
    const rows = await db.latestResults('1.2.3');
    expect(rows.map((r) => [r.score, r.instances_hash])).toEqual([[0.3, 'c'.repeat(64)]]);
  });

  it('stores feedback with the user and an audit entry', async () => {
    const row = await db.addFeedback({
      studyInstanceUid: '1.2.3',
      label: 'normal',
      agree: true,
      comment: 'clear lungs',
      user: 'dr.a',
      source: 'api',
    });
    expect(row).toMatchObject({ study_instance_uid: '1.2.3', label: 'normal', agree: 1, user_name: 'dr.a', comment: 'clear lungs' });
    const audit = await db.listAudit();
    expect(audit[0]).toMatchObject({ user_name: 'dr.a', action: 'feedback', study_instance_uid: '1.2.3' });
  });

  it('imports good label rows in one transaction and names the bad lines', async () => {
    const csv = 'StudyInstanceUID,label\n1.2.3,covid-pattern\nnot-a-uid,normal\n\n1.2.4,pneumonia\n1.2.5,other-opacity\n';
    const parsed = parseLabelCsv(csv);
    expect(parsed.errors.map((e) => e.line)).toEqual([3, 5]);
    expect(parsed.errors[1]!.error).toMatch(/covid-pattern, other-opacity, normal, not-assessable/);
    expect(await db.importLabels(parsed.rows, 'importer', { file: 'labels.csv' })).toBe(2);
    const fb = await db.allFeedback();
    expect(fb.filter((f) => f.source === 'import').map((f) => [f.study_instance_uid, f.label])).toEqual([
      ['1.2.3', 'covid-pattern'],
      ['1.2.5', 'other-opacity'],
    ]);
  });

  it('a failing import writes nothing (all or nothing)', async () => {
    const before = (await db.allFeedback()).length;
    const rows = [
      { line: 2, studyInstanceUid: '1.2.9', label: 'normal' as const },
      // A label longer than the column (PostgreSQL refuses; SQLite is made to fail by a NOT NULL).
      { line: 3, studyInstanceUid: null as unknown as string, label: 'normal' as const },
    ];
    await expect(db.importLabels(rows, 'importer', {})).rejects.toThrow();
    expect((await db.allFeedback()).length).toBe(before);
  });

  it('settings and results survive closing and reopening the store (a restart)', async () => {
    await db.setSetting('dispatch.release', 'on', 'admin');
    await db.conn.close();
    db = await open(ts.url);
    expect(await db.getSetting('dispatch.release')).toBe('on');
    expect((await db.latestResults()).length).toBe(1);
    expect((await db.allFeedback()).length).toBe(3);
    expect((await db.listAudit()).map((a) => a.action)).toEqual(['setting', 'label-import', 'feedback']);
  });

  it('prunes results older than the retention, keeps feedback', async () => {
    expect(await db.pruneResults(0)).toBe(0);
    expect(await db.pruneResults(1, Date.parse('2026-12-09T00:00:00Z'))).toBe(2); // both contents of the series
    expect(await db.latestResults()).toEqual([]);
    expect((await db.allFeedback()).length).toBe(3);
  });
});
