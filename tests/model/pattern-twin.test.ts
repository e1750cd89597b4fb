/**
 * Distribution features on the shared COVID-CT-MD series: TypeScript (src/model/pattern*.ts) = Python
 * (training/pattern.py, on training/lung.py's masks) slice by slice and for the series, and what the rule
 * rsna-distribution-v1 (committed before it was first computed here) says of each series.
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { decodeDicomFile, readDicomHeaderFile } from '../../src/dicom/decode/index.js';
import { loadModelMetadata, type ModelMetadata } from '../../src/model/metadata.js';
import { slicePattern, type SlicePattern } from '../../src/model/pattern.js';
import { PATTERN_RULE } from '../../src/model/pattern-rule.js';
import type { PatternFeatures } from '../../src/model/pattern-series.js';
import { seriesPattern } from '../../src/scoring/series-pattern.js';
import { sliceSpacing } from '../../src/scoring/series-opacity.js';
import { selectSlices } from '../../src/scoring/select-slices.js';
import { analyseDecoded } from '../../src/scoring/slice-preparer.js';
import { CTMD } from '../helpers/ctmd.js';
import { SHIPPED_METADATA } from '../helpers/model.js';
import { readdirSync } from 'node:fs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

let meta: ModelMetadata;
beforeAll(async () => {
  meta = (await loadModelMetadata(SHIPPED_METADATA)).metadata;
});

interface PySlice extends Omit<SlicePattern, 'foci'> {
  foci: (Omit<SlicePattern['foci'][number], 'runs'> & { runs: number })[];
}

async function both(name: string) {
  const dir = path.join(CTMD, name);
  const cands = await Promise.all(
    readdirSync(dir).map(async (f) => ({ file: path.join(dir, f), header: await readDicomHeaderFile(path.join(dir, f)) })),
  );
  const sel = selectSlices(cands).slices;
  const positions = sel.map((s) => s.position);
  const iop = sel[0]!.header.imageOrientationPatient;
  const spacingMm = +sliceSpacing(positions).toFixed(3);
  const ts: { pattern: SlicePattern; position: number }[] = [];
  for (const s of sel) {
    const d = await decodeDicomFile(s.file);
    const a = analyseDecoded(d.image, { preprocessing: meta.preprocessing, quantification: meta.quantification! })!;
    ts.push({ pattern: slicePattern({ ...a.segmentation, ...a.masks }, a.grid.pxMm), position: s.position });
  }
  const py = JSON.parse(
    execFileSync('/usr/bin/python3', [path.join(root, 'training', 'pattern_dump.py')], {
      input: JSON.stringify({ files: sel.map((s) => s.file), positions, iop, spacingMm }),
      maxBuffer: 256 << 20,
    }).toString(),
  ) as { slices: PySlice[]; features: PatternFeatures; category: string; rule: string };
  return { ts, py, iop, spacingMm, pattern: seriesPattern(ts, iop, spacingMm)! };
}

function expectClose(a: unknown, b: unknown, where: string): void {
  if (typeof a === 'number' && typeof b === 'number') {
    expect(Math.abs(a - b), `${where}: ${a} vs ${b}`).toBeLessThanOrEqual(1e-9 * Math.max(1, Math.abs(b)));
  } else if (a && b && typeof a === 'object' && typeof b === 'object') {
    for (const k of Object.keys(b)) expectClose((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], `${where}.${k}`);
  } else {
    expect(a, where).toEqual(b);
  }
}

describe('distribution features on the shared series', () => {
  const got: Record<string, { category: string; features: PatternFeatures; criteria: string[] }> = {};

  for (const name of ['P001', 'cap001', 'normal001']) {
    it(`${name}: TypeScript = Python, slice by slice and for the series`, async () => {
      const { ts, py, pattern } = await both(name);
      expect(py.slices).toHaveLength(ts.length);
      let foci = 0;
      ts.forEach((s, k) => {
        const p = py.slices[k]!;
        const { foci: tf, ...rest } = s.pattern;
        const { foci: pf, ...prest } = p;
        expectClose(rest, prest, `${name}[${k}]`);
        expect(tf).toHaveLength(pf.length);
        tf.forEach((f, j) => {
          const { runs, ...fr } = f;
          const { runs: pr, ...pfr } = pf[j]!;
          expectClose(fr, pfr, `${name}[${k}].foci[${j}]`);
          expect(runs.length / 3).toBe(pr);
        });
        foci += tf.length;
      });
      expect(foci).toBeGreaterThan(0); // the comparison covered slices with opacity
      // the series features from the same summaries (unrounded in Python, rounded in the report)
      for (const [k, v] of Object.entries(py.features)) {
        const t = (pattern.features as unknown as Record<string, unknown>)[k];
        if (typeof v === 'number') expect(Math.abs((t as number) - v), k).toBeLessThanOrEqual(0.006);
        else if (v && typeof v === 'object')
          for (const [z, zv] of Object.entries(v))
            expect(Math.abs((t as Record<string, number>)[z]! - (zv as number)), `${k}.${z}`).toBeLessThanOrEqual(5e-5);
        else expect(t, k).toEqual(v);
      }
      expect(pattern.category).toBe(py.category);
      expect(pattern.rule).toBe(PATTERN_RULE);
      expect(py.rule).toBe(PATTERN_RULE);
      got[name] = pattern;
    }, 600_000);
  }

  it('what the rule says: reported as it is (P001 is hoped typical, normal001 no-opacity)', () => {
    // No expectation on P001 or cap001 here: the rule was fixed before it saw them, and what it gives is
    // reported (MODEL_CARD.md). The normal series must not read as a COVID-19 pattern.
    for (const [n, p] of Object.entries(got)) console.log(n, p.category, JSON.stringify(p.criteria), JSON.stringify(p.features));
    expect(Object.keys(got)).toHaveLength(3);
    expect(['no-opacity', 'indeterminate', 'atypical']).toContain(got.normal001!.category);
  });
});
