/**
 * Both engines of the results store for tests: a fresh SQLite file in a temp folder, or a fresh
 * PostgreSQL database (created on 127.0.0.1:5432 as user postgres, trust auth; dropped afterwards).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Page } from 'playwright-core';
import pg from 'pg';
import { expect } from 'vitest';

export type EngineName = 'sqlite' | 'postgres';
export const ENGINES: readonly EngineName[] = ['sqlite', 'postgres'];

export const PG_ADMIN_URL = process.env.MLSAM_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export interface TestStore {
  url: string;
  drop(): Promise<void>;
}

async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: PG_ADMIN_URL });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

export async function createTestStore(engine: EngineName): Promise<TestStore> {
  if (engine === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'mlsam-db-'));
    return { url: `sqlite:${join(dir, 'store.sqlite')}`, drop: async () => rmSync(dir, { recursive: true, force: true }) };
  }
  const name = `mlsam_test_${process.pid}_${randomBytes(4).toString('hex')}`;
  await admin((c) => c.query(`CREATE DATABASE ${name}`));
  const url = new URL(PG_ADMIN_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: () =>
      admin(async (c) => {
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      }),
  };
}

import { createHash } from 'node:crypto';
import { resultRecordSchema, type ResultRecord } from '../../src/contracts/result-record.js';

/** A valid finished record (no files behind it) for store-level tests. */
export function fakeRecord(study: string, series: string, score: number, over: Partial<ResultRecord> = {}): ResultRecord {
  const category = score >= 0.6 ? 'likely' : score >= 0.4 ? 'indeterminate' : 'unlikely';
  return resultRecordSchema.parse({
    studyInstanceUid: study,
    seriesInstanceUid: series,
    instancesHash: createHash('sha256').update(series).digest('hex'),
    jobId: `job-${series}`,
    seriesDir: `/nonexistent/${series}`,
    callingAeTitle: 'TESTSCU',
    status: 'scored',
    model: { name: 'mlsam', version: '2.1.0', sha256: 'ab'.repeat(32) },
    provider: 'cpu',
    instanceCount: 40,
    score,
    category,
    threshold: 0.5,
    indeterminateMargin: 0.1,
    slices: [],
    keySlices: [{ index: 3, sopInstanceUid: `${series}.4`, probability: score }],
    dropped: [],
    timings: {},
    startedAt: '2026-12-07T10:00:00.000Z',
    finishedAt: '2026-12-07T10:00:05.000Z',
    attemptsMade: 1,
    ...over,
  });
}

/**
 * Opens an exported validation report (a file on disk, no server) in the page and checks that it
 * shows both pictures: the ROC curve (one polyline) and the calibration points, each at least
 * 200 px square. Returns what the page requested beyond the file (it should be nothing).
 */
export async function expectReportPictures(page: Page, file: string): Promise<string[]> {
  const requests: string[] = [];
  page.on('request', (r) => requests.push(r.url()));
  await page.goto(`file://${file}`);
  for (const id of ['#roc', '#calibration']) {
    const box = await page.locator(id).boundingBox();
    expect(box!.width).toBeGreaterThan(200);
    expect(box!.height).toBeGreaterThan(200);
  }
  expect(await page.locator('#roc polyline').count()).toBe(1);
  expect(await page.locator('#calibration circle').count()).toBeGreaterThan(0);
  return requests.filter((u) => !u.startsWith('file://'));
}
