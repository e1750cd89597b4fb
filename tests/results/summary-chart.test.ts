import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { chartSvg, layoutLabels, type ChartInput } from '../../src/results/render.js';
import { REPO_ROOT } from '../helpers/dicom-listener.js';

/**
 * The summary Secondary Capture's chart (chartSvg): key-slice labels never overlap, however close
 * the key slices are (#95/#96/#100/#102 side by side used to print over each other), and the x
 * axis is in mm along the slice normal with round ticks, as on the dashboard's chart.
 */
const W = 1024;
const H = 512;

function input(n: number, keys: number[]): ChartInput {
  return {
    title: 'mlsam-mobilenetv2 1.0.0: COVID-19 pattern probability per slice',
    subtitle: `Series 2, ${n} slices scored.`,
    probabilities: Array.from({ length: n }, (_, i) => 0.3 + 0.4 * Math.sin((i / n) * Math.PI)),
    positions: Array.from({ length: n }, (_, i) => -i * 2.5), // head first: z falls along the scan
    threshold: 0.5366,
    margin: 0.1,
    score: 0.62,
    category: 'indeterminate',
    keySlices: keys,
    keyLabels: keys.map((k) => `#${k + 1}`),
  };
}

interface Label {
  x: number;
  y: number;
  size: number;
  text: string;
}
const labels = (svg: string): Label[] =>
  [...svg.matchAll(/<text class="key-label" x="([\d.]+)" y="([\d.]+)" font-size="([\d.]+)"[^>]*>([^<]*)<\/text>/g)].map((m) => ({
    x: Number(m[1]),
    y: Number(m[2]),
    size: Number(m[3]),
    text: m[4]!,
  }));

function expectNoOverlap(ls: Label[]): void {
  for (const a of ls) {
    for (const b of ls) {
      if (a === b || a.y !== b.y) continue;
      const need = (a.text.length * a.size * 0.62 + b.text.length * b.size * 0.62) / 2;
      expect(Math.abs(a.x - b.x), `${a.text} and ${b.text}`).toBeGreaterThanOrEqual(need - 0.01);
    }
  }
}

describe('summary chart (chartSvg)', () => {
  it('places labels of neighbouring key slices apart, with leader lines, and draws mm ticks (test-artifacts/results-summary-labels.png)', async () => {
    const svg = chartSvg(W, H, input(120, [94, 95, 99, 101, 60]));
    const ls = labels(svg);
    expect(ls.map((l) => l.text).sort()).toEqual(['#100', '#102', '#61', '#95', '#96']);
    expectNoOverlap(ls);
    expect(svg).toContain('position along the scan (mm along the slice normal, superior on the left)');
    // Ticks every 50 mm from 0 down to -250 (the scan spans 0 … -297.5 mm).
    for (const t of ['0', '-50', '-100', '-150', '-200', '-250']) expect(svg).toContain(`text-anchor="middle">${t}</text>`);
    const png = await sharp(Buffer.from(svg)).png().toBuffer();
    await mkdir(join(REPO_ROOT, 'test-artifacts'), { recursive: true });
    await writeFile(join(REPO_ROOT, 'test-artifacts', 'results-summary-labels.png'), png);
  });

  it('fits up to 50 key-slice labels in at most 3 rows, shrinking the font only when it must', () => {
    const keys = Array.from({ length: 50 }, (_, i) => 20 + i * 2);
    const ls = labels(chartSvg(W, H, input(200, keys)));
    expect(ls).toHaveLength(50);
    expectNoOverlap(ls);
    expect(new Set(ls.map((l) => l.y)).size).toBeLessThanOrEqual(3);
    const few = layoutLabels([100, 300], [20, 20], 0, 500, 5);
    expect(few).toEqual({ x: [100, 300], row: [0, 0], rows: 1, fontScale: 1 });
    const squeezed = layoutLabels([100, 101, 102], [30, 30, 30], 0, 500, 5);
    expect(squeezed.rows).toBe(1);
    expect(squeezed.x[1]! - squeezed.x[0]!).toBeGreaterThanOrEqual(35);
    expect(squeezed.x[2]! - squeezed.x[1]!).toBeGreaterThanOrEqual(35);
  });
});
