/**
 * The fast unit lane (`npm run test:unit`): tests that need no Redis, Orthanc, browser, DCMTK,
 * Python or built dist/ — pure code against files generated in the test or read from ../shared/data
 * (the fuzz campaign, tests/robustness/fuzz.test.ts, needs none either but takes over a minute).
 * Checked to pass with no network at all (`unshare -n`). The full suite is `npm test`.
 * A test file belongs here only if it runs that way; list it explicitly.
 */
import { defineConfig } from 'vitest/config';
import base from './vitest.config.js';

export const UNIT_TESTS = [
  'tests/architecture/imports.test.ts',
  'tests/dicom/pdu-stream.test.ts',
  'tests/dicom/uids.test.ts',
  'tests/queue/routing.test.ts',
  'tests/queue/study-decision.test.ts',
  'tests/model/series.test.ts',
  'tests/model/onnx-golden.test.ts',
  'tests/results/heatmap-layout.test.ts',
  'tests/results/result-set.test.ts',
  'tests/results/summary-chart.test.ts',
];

// (Not mergeConfig: it would append to the full suite's include list instead of replacing it.)
export default defineConfig({ ...base, test: { ...base.test, include: UNIT_TESTS } });
