/**
 * The zone score's bins (Pan et al., Radiology 2020) at their edges, and seriesZones on a hand-made series: the
 * zones follow lungZones (the shared rule), each lung's zones add up to it, the sides follow ImageOrientationPatient.
 */
import { describe, expect, it } from 'vitest';
import { extentScore, lungZones, seriesZones, ZONES, type ZoneSliceInput } from '../../src/model/zones.js';

describe('zone score', () => {
  it('bins: 0 none, 1 < 5 %, 2 5–25 %, 3 26–49 %, 4 50–75 %, 5 > 75 %', () => {
    const cases: [number, number][] = [
      [0, 0],
      [0.01, 1],
      [4.99, 1],
      [5, 2],
      [25, 2],
      [25.01, 3],
      [49.99, 3],
      [50, 4],
      [75, 4],
      [75.01, 5],
      [100, 5],
    ];
    for (const [pct, bin] of cases) expect(extentScore(pct), `${pct} %`).toBe(bin);
    expect(extentScore(3, 0)).toBe(0); // no opacity volume at all: none
  });

  it('seriesZones: lungZones per lung, volumes add up, score = sum of the six bins, patient sides from the orientation', () => {
    // 12 slices, 5 mm apart; the image-left lung (patient right with rows along +x) spans slices 0–11, the other 3–11.
    const slices: ZoneSliceInput[] = Array.from({ length: 12 }, (_, i) => ({
      position: -5 * i,
      imageLeft: { lungMm2: 1000, opacityMm2: i < 4 ? 300 : 0, highMm2: i < 4 ? 100 : 0 },
      imageRight: { lungMm2: i >= 3 ? 800 : 0, opacityMm2: i >= 9 ? 800 : 0, highMm2: 0 },
    }));
    const z = seriesZones(slices, 5, [1, 0, 0, 0, 1, 0]);
    const rightZones = lungZones(
      slices.map((s) => s.imageLeft.lungMm2),
      slices.map((s) => s.position),
    );
    for (const name of ZONES) expect(z.right[name].slices).toBe(rightZones.filter((v) => v === name).length);
    const sum = (side: 'right' | 'left', f: (m: (typeof z)['right']['upper']) => number) => ZONES.reduce((s, n) => s + f(z[side][n]), 0);
    expect(sum('right', (m) => m.lungMl)).toBeCloseTo((12 * 1000 * 5) / 1000, 2);
    expect(sum('right', (m) => m.opacityMl)).toBeCloseTo((4 * 300 * 5) / 1000, 2);
    expect(sum('left', (m) => m.lungMl)).toBeCloseTo((9 * 800 * 5) / 1000, 2);
    // right upper holds all the right lung's opacity (slices 0-3): 30 % -> bin 3; left lower fully opacified -> 5
    expect(z.right.upper.percentOpacity).toBeCloseTo(30, 3);
    expect(z.right.upper.score).toBe(3);
    expect(z.left.lower.percentOpacity).toBe(100);
    expect(z.left.lower.score).toBe(5);
    expect(z.score).toBe(ZONES.reduce((s, n) => s + z.right[n].score + z.left[n].score, 0));
    // rows along -x: the image-left lung is the patient's left
    const flipped = seriesZones(slices, 5, [-1, 0, 0, 0, 1, 0]);
    expect(flipped.left.upper.percentOpacity).toBeCloseTo(30, 3);
  });
});
