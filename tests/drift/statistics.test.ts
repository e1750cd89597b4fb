/**
 * The drift statistics against independent computations: SciPy (scipy.stats.ks_2samp with
 * method="exact", scipy.special.kolmogorov, scipy.stats.chi2.sf, numpy.quantile / searchsorted)
 * on the same numbers through /usr/bin/python3, and the PSI recomputed here from its formula.
 */
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import {
  binCounts,
  chiSquareSf,
  KS_EXACT_MAX_PRODUCT,
  ks2,
  kolmogorovSf,
  psi,
  psiChancePValue,
  PSI_EPSILON,
  quantileEdges,
} from '../../src/drift/statistics.js';
import { prng } from '../../src/demo/phantom.js';

/** A normal deviate (Box–Muller) from the demo's seeded generator (mulberry32), so the samples are fixed. */
function normals(n: number, mean: number, sd: number, seed: number, decimals?: number): number[] {
  const r = prng(seed);
  return Array.from({ length: n }, () => {
    const v = mean + sd * Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
    return decimals === undefined ? v : Number(v.toFixed(decimals));
  });
}

function python(script: string, input: unknown): unknown {
  const out = execFileSync('/usr/bin/python3', ['-c', script], { input: JSON.stringify(input), encoding: 'utf8' });
  return JSON.parse(out);
}

const KS_PY = `
import json, sys
from scipy import stats
cases = json.load(sys.stdin)
out = []
for a, b in cases:
    r = stats.ks_2samp(a, b, alternative='two-sided', method='exact')
    out.append([float(r.statistic), float(r.pvalue)])
print(json.dumps(out))
`;

describe('two-sample Kolmogorov–Smirnov', () => {
  const cases: [number[], number[]][] = [
    [normals(30, 0, 1, 1), normals(40, 0, 1, 2)], // same distribution
    [normals(50, 0, 1, 3), normals(45, 0.8, 1, 4)], // shifted
    [normals(60, 0.5, 0.2, 5), normals(60, 0.5, 0.2, 6)], // n = m (SciPy's other exact algorithm)
    [normals(80, 10, 5, 7, 0), normals(70, 12, 5, 8, 0)], // many ties (rounded to integers)
    [normals(120, 0.3, 0.1, 9), normals(150, 0.45, 0.1, 10)], // a strong shift: tiny p
    [
      [0.1, 0.2, 0.3],
      [0.1, 0.2, 0.3],
    ], // identical samples: D = 0, p = 1
  ];
  const scipy = python(KS_PY, cases) as [number, number][];

  it('gives SciPy’s exact statistic and p-value', () => {
    cases.forEach(([a, b], i) => {
      const r = ks2(a, b);
      expect(r.method).toBe('exact');
      expect(r.statistic).toBeCloseTo(scipy[i]![0], 12);
      // Absolute agreement to 1e-9; relative to 1e-6 where p is small.
      expect(Math.abs(r.pValue - scipy[i]![1])).toBeLessThan(Math.max(1e-9, 1e-6 * scipy[i]![1]));
    });
    expect(scipy[1]![1]).toBeLessThan(0.01);
    expect(scipy[0]![1]).toBeGreaterThan(0.05);
  });

  it('uses Kolmogorov’s limit (Stephens’ correction) above KS_EXACT_MAX_PRODUCT, as scipy.special.kolmogorov', () => {
    const a = normals(2500, 0, 1, 11);
    const b = normals(2000, 0.06, 1, 12);
    expect(a.length * b.length).toBeGreaterThan(KS_EXACT_MAX_PRODUCT);
    const r = ks2(a, b);
    expect(r.method).toBe('asymptotic');
    const [d, lam, k] = python(
      `
import json, sys, math
from scipy import stats, special
a, b = json.load(sys.stdin)
d = float(stats.ks_2samp(a, b).statistic)
en = len(a) * len(b) / (len(a) + len(b))
lam = (math.sqrt(en) + 0.12 + 0.11 / math.sqrt(en)) * d
print(json.dumps([d, lam, float(special.kolmogorov(lam))]))
`,
      [a, b],
    ) as number[];
    expect(r.statistic).toBeCloseTo(d!, 12);
    expect(r.pValue).toBeCloseTo(k!, 10);
    const lambdas = [0.3, 0.5, 0.8, 1, 1.36, 2];
    const refs = python(
      'import json,sys\nfrom scipy import special\nprint(json.dumps([float(special.kolmogorov(l)) for l in json.load(sys.stdin)]))',
      lambdas,
    ) as number[];
    lambdas.forEach((l, i) => {
      expect(kolmogorovSf(l)).toBeCloseTo(refs[i]!, 10);
    });
    expect(lam).toBeGreaterThan(0);
  });
});

describe('chi-square tail (for the PSI’s chance p-value)', () => {
  it('matches scipy.stats.chi2.sf', () => {
    const pts: [number, number][] = [
      [0.5, 1],
      [3.84, 1],
      [9.49, 4],
      [2, 9],
      [21.67, 9],
      [40, 9],
      [100, 30],
      [0.01, 2],
    ];
    const ref = python(
      'import json,sys\nfrom scipy import stats\nprint(json.dumps([float(stats.chi2.sf(x, k)) for x, k in json.load(sys.stdin)]))',
      pts,
    ) as number[];
    pts.forEach(([x, k], i) => {
      expect(Math.abs(chiSquareSf(x, k) - ref[i]!)).toBeLessThan(1e-12 + 1e-9 * ref[i]!);
    });
  });

  it('psiChancePValue is P(χ²(B−1) ≥ PSI / (1/n + 1/m))', () => {
    const ref = python('import json,sys\nfrom scipy import stats\nprint(json.dumps(float(stats.chi2.sf(0.2 / (1/100 + 1/80), 4))))', 0);
    expect(psiChancePValue(0.2, 5, 100, 80)).toBeCloseTo(ref as number, 12);
    expect(psiChancePValue(0.5, 1, 100, 80)).toBe(1);
  });
});

describe('PSI', () => {
  /** The formula, written out again: Σ (a − e) ln(a / e) over shares, 0 → 1e-4. */
  const byHand = (ref: number[], cur: number[]): number => {
    const n = ref.reduce((x, y) => x + y, 0);
    const m = cur.reduce((x, y) => x + y, 0);
    let s = 0;
    for (let i = 0; i < ref.length; i++) {
      if (ref[i] === 0 && cur[i] === 0) continue;
      const e = ref[i] === 0 ? 1e-4 : ref[i]! / n;
      const a = cur[i] === 0 ? 1e-4 : cur[i]! / m;
      s += (a - e) * Math.log(a / e);
    }
    return s;
  };

  it('is the formula; an empty bin counts with the epsilon; identical mixes give 0', () => {
    expect(PSI_EPSILON).toBe(1e-4);
    const ref = [50, 30, 20, 0];
    const cur = [20, 30, 20, 30]; // a new category (a new kernel) in the current window
    expect(psi(ref, cur).value).toBeCloseTo(byHand(ref, cur), 14);
    // By hand for the new category alone: (0.3 − 0.0001)·ln(0.3 / 0.0001).
    expect(psi(ref, cur).terms[3]).toBeCloseTo((0.3 - 1e-4) * Math.log(0.3 / 1e-4), 14);
    expect(psi([10, 20, 30], [20, 40, 60]).value).toBeCloseTo(0, 15);
    expect(psi([10, 0, 30], [20, 0, 60]).terms[1]).toBe(0);
    // Symmetric: swapping the windows gives the same value (it is the Jeffreys divergence).
    expect(psi(cur, ref).value).toBeCloseTo(psi(ref, cur).value, 14);
    expect(() => psi([0, 0], [1, 2])).toThrow(/no values/);
  });

  it('bins at the reference quantiles as numpy.quantile and searchsorted do (ties merged)', () => {
    const ref = normals(200, 0.4, 0.2, 21);
    const cur = normals(150, 0.5, 0.2, 22);
    const withTies = [...Array<number>(80).fill(0), ...normals(120, 5, 2, 23, 1)];
    const got = [ref, withTies].map((r) => {
      const edges = quantileEdges(r, 10);
      return { edges, ref: binCounts(r, edges), cur: binCounts(cur, edges) };
    });
    const want = python(
      `
import json, sys
import numpy as np
samples, cur = json.load(sys.stdin)
out = []
for r in samples:
    q = np.quantile(np.array(r), [k / 10 for k in range(1, 10)])
    edges = []
    for v in q:
        if not edges or v > edges[-1]: edges.append(float(v))
    cnt = lambda xs: np.bincount(np.searchsorted(edges, xs, side='left'), minlength=len(edges) + 1).tolist()
    out.append({'edges': edges, 'ref': cnt(r), 'cur': cnt(cur)})
print(json.dumps(out))
`,
      [[ref, withTies], cur],
    ) as { edges: number[]; ref: number[]; cur: number[] }[];
    got.forEach((g, i) => {
      expect(g.edges.length).toBe(want[i]!.edges.length);
      g.edges.forEach((e, j) => {
        expect(e).toBeCloseTo(want[i]!.edges[j]!, 12);
      });
      expect(g.ref).toEqual(want[i]!.ref);
      expect(g.cur).toEqual(want[i]!.cur);
    });
    expect(got[1]!.edges.length).toBeLessThan(9); // the 40 % of zeros share one edge
    expect(got[0]!.ref.every((c) => c === 20)).toBe(true); // equal-count bins on untied data
    expect(psi(got[0]!.ref, got[0]!.cur).value).toBeCloseTo(byHand(got[0]!.ref, got[0]!.cur), 14);
  });
});
