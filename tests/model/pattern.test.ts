/**
 * Distribution features and the pattern rule (src/model/pattern.ts, pattern-series.ts, pattern-rule.ts, zones.ts)
 * on phantoms whose masks are generated here, with answers known by construction.
 */
import { describe, expect, it } from 'vitest';
import type { Mask } from '../../src/model/morphology.js';
import { slicePattern, squaredDistance, type SlicePattern } from '../../src/model/pattern.js';
import { categorizePattern, PATTERN_RULE } from '../../src/model/pattern-rule.js';
import { FOCUS_MIN_ML, seriesPatternFeatures } from '../../src/model/pattern-series.js';
import { lungZones } from '../../src/model/zones.js';

const W = 160;
const H = 120;
const PX: [number, number] = [1.25, 1.25];
const SPACING = 2.5;

interface Blob {
  /** centre (x, y) in working pixels, z in slice index */
  x: number;
  y: number;
  z: number;
  /** radius in mm (a sphere; on each slice a disc) */
  r: number;
  high?: boolean;
  /** in-plane stretch of x (an ellipse) */
  sx?: number;
}

/** Two elliptic lungs (image left / right) of semi-axes 30 × 45 px, every slice of `n`; opacity discs from blobs. */
function phantomSeries(n: number, blobs: Blob[], opts: { crescents?: { slices: [number, number] } } = {}): SlicePattern[] {
  const out: SlicePattern[] = [];
  for (let z = 0; z < n; z++) {
    const lung: Mask = { width: W, height: H, data: new Uint8Array(W * H) };
    const opacity: Mask = { width: W, height: H, data: new Uint8Array(W * H) };
    const high: Mask = { width: W, height: H, data: new Uint8Array(W * H) };
    const side = new Int8Array(W * H).fill(-1);
    const centres = [45, 115];
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const i = y * W + x;
        for (const [s, cx] of centres.entries()) {
          const e = ((x - cx) / 30) ** 2 + ((y - 60) / 45) ** 2;
          if (e <= 1) {
            lung.data[i] = 1;
            side[i] = s;
            // subpleural crescent: the outer rim band of each lung, lateral half only
            if (
              opts.crescents &&
              z >= opts.crescents.slices[0] &&
              z <= opts.crescents.slices[1] &&
              e >= 0.6 &&
              e <= 0.92 &&
              (s === 0 ? x < cx : x > cx)
            )
              opacity.data[i] = 1;
          }
        }
        for (const b of blobs) {
          const dz = (z - b.z) * SPACING;
          const rr = b.r * b.r - dz * dz;
          if (rr <= 0) continue;
          const dx = ((x - b.x) * PX[1]) / (b.sx ?? 1);
          const dy = (y - b.y) * PX[0];
          if (dx * dx + dy * dy <= rr && lung.data[i]) {
            opacity.data[i] = 1;
            if (b.high) high.data[i] = 1;
          }
        }
      }
    }
    out.push(slicePattern({ lung, side, opacity, high }, PX));
  }
  return out;
}

const series = (ps: SlicePattern[], iop: number[] | null = [1, 0, 0, 0, 1, 0]) =>
  seriesPatternFeatures(
    ps.map((pattern, k) => ({ pattern, position: -k * SPACING })),
    iop,
    SPACING,
  );

describe("zones: thirds of each lung's craniocaudal extent", () => {
  it('splits the extent in thirds by position, ignores specks below 1 % of the largest area', () => {
    const areas = [0, 0, 50, 100, 100, 100, 100, 100, 100, 100, 100, 0.5, 0];
    const z = lungZones(
      areas,
      areas.map((_, i) => 100 - 3 * i),
    );
    // extent: slices 2..10 (27 mm... 9 slices, length 24 mm): u = 0,3,..,24; upper u < 8, middle u < 16
    expect(z).toEqual([
      'upper',
      'upper',
      'upper',
      'upper',
      'upper',
      'middle',
      'middle',
      'middle',
      'lower',
      'lower',
      'lower',
      'lower',
      'lower',
    ]);
    // without positions: indices
    expect(
      lungZones(
        areas,
        areas.map(() => null),
      ),
    ).toEqual(z);
    expect(lungZones([0, 0], [1, 2])).toEqual(['middle', 'middle']);
  });
});

describe('per-slice summary', () => {
  it('squared distances equal the brute-force minimum over background pixels', () => {
    const w = 23;
    const h = 17;
    let seed = 3;
    const rnd = () => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed / 2147483648;
    };
    const m = Uint8Array.from({ length: w * h }, (_, i) => (i % w > 1 && i % w < w - 2 && rnd() < 0.8 ? 1 : 0));
    const d = squaredDistance(m, w, 0, 0, w - 1, h - 1);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        if (!m[y * w + x]) {
          expect(d[y * w + x]).toBe(0);
          continue;
        }
        let best = Infinity;
        for (let yy = -1; yy <= h; yy++) {
          for (let xx = -1; xx <= w; xx++) {
            const out = xx < 0 || yy < 0 || xx >= w || yy >= h || !m[yy * w + xx];
            if (out) best = Math.min(best, (xx - x) ** 2 + (yy - y) ** 2);
          }
        }
        expect(d[y * w + x]).toBe(best);
      }
    }
  });

  it('a disc lesion is round, a 1:3 ellipse is not; the lung periphery is the outer third', () => {
    const [disc] = phantomSeries(1, [{ x: 45, y: 60, z: 0, r: 20 }]);
    expect(disc!.foci).toHaveLength(1);
    expect(disc!.foci[0]!.roundness).toBeGreaterThan(0.95);
    const [ell] = phantomSeries(1, [{ x: 115, y: 60, z: 0, r: 10, sx: 3 }]);
    expect(ell!.foci[0]!.roundness).toBeGreaterThan(0.28);
    expect(ell!.foci[0]!.roundness).toBeLessThan(0.38);
    // outer third by depth of a 30 × 45 px ellipse: depth ≤ 10 px; the deeper core is about π·20·35 px², so the
    // periphery is ≈ 1 − 700/1350 = 0.48 of the lung, ≈ 0.45 without the outermost pixel ring (≈ 236 px of 4241)
    const share = (disc!.lungPeripheralPx[0] + disc!.lungPeripheralPx[1]) / (disc!.lungInnerPx[0] + disc!.lungInnerPx[1]);
    expect(share).toBeGreaterThan(0.42);
    expect(share).toBeLessThan(0.5);
    // a central disc is not peripheral
    expect(disc!.foci[0]!.peripheralPx / (disc!.foci[0]!.px[0] + disc!.foci[0]!.px[1])).toBeLessThan(0.1);
    expect(disc!.foci[0]!.px[1]).toBe(0);
  });
});

describe('series features and the rule on phantoms', () => {
  it('no opacity: category no-opacity', () => {
    const f = series(phantomSeries(12, []));
    expect(f.opacityMl).toBe(0);
    expect(categorizePattern(f).category).toBe('no-opacity');
    expect(PATTERN_RULE).toMatch(/-v\d+$/);
  });

  it('bilateral subpleural ground glass: typical (bilateral, peripheral), dorsal half of it, zones', () => {
    const f = series(phantomSeries(30, [], { crescents: { slices: [20, 29] } }));
    expect(f.minorityLungShare).toBeGreaterThan(0.45);
    expect(f.peripheralShare).toBeGreaterThan(0.95);
    expect(f.lungPeripheralShare).toBeLessThan(0.62);
    expect(f.groundGlassShare).toBe(1);
    expect(f.dorsalShare).toBeGreaterThan(0.4);
    expect(f.dorsalShare).toBeLessThan(0.6);
    // slices 20-29 of 30: the lower third of each lung
    expect(f.zoneShare.lower).toBe(1);
    expect(f.lungZoneShare.lower).toBeGreaterThan(0.3);
    expect(f.foci).toBe(2); // one crescent per lung, joined across slices
    const d = categorizePattern(f);
    expect(d.category).toBe('typical');
    expect(d.criteria.join(' ')).toMatch(/bilateral.*peripheral/);
  });

  it('one central consolidation in one lung: atypical (isolated consolidation); a flipped orientation flips sides and dorsal', () => {
    const ps = phantomSeries(20, [{ x: 115, y: 72, z: 10, r: 16, high: true }]);
    const f = series(ps);
    // row direction +x: image right is the patient's left
    expect(f.rightOpacityMl).toBe(0);
    expect(f.leftOpacityMl).toBeGreaterThan(10);
    expect(f.groundGlassShare).toBe(0);
    expect(f.foci).toBe(1);
    expect(f.largestFocusShare).toBe(1);
    expect(f.dorsalShare).toBeGreaterThan(0.8);
    const d = categorizePattern(f);
    expect(d.category).toBe('atypical');
    expect(d.criteria.join(' ')).toMatch(/isolated consolidation/);
    const flipped = series(ps, [-1, 0, 0, 0, -1, 0]);
    expect(flipped.leftOpacityMl).toBe(0);
    expect(flipped.rightOpacityMl).toBeCloseTo(f.leftOpacityMl, 9);
    expect(flipped.dorsalShare).toBeCloseTo(1 - f.dorsalShare, 9);
  });

  it('the same lesion as ground glass in one lung, central: indeterminate (not bilateral, not peripheral)', () => {
    const f = series(
      phantomSeries(20, [
        { x: 115, y: 60, z: 10, r: 16 },
        { x: 110, y: 30, z: 6, r: 7 },
      ]),
    );
    expect(f.groundGlassShare).toBe(1);
    const d = categorizePattern(f);
    expect(d.category).toBe('indeterminate');
    expect(d.criteria).toContain('not bilateral');
  });

  it('counts 3-D foci once however many slices they span, and tells focus from small focus by volume', () => {
    const blobs: Blob[] = [
      { x: 40, y: 40, z: 8, r: 9 },
      { x: 45, y: 85, z: 10, r: 8 },
      { x: 115, y: 50, z: 9, r: 8 }, // ≥ 1 cm
      { x: 120, y: 85, z: 14, r: 3.5 }, // small: a 7 mm sphere
    ];
    const f = series(phantomSeries(24, blobs));
    expect(f.foci).toBe(3);
    expect(f.smallFoci).toBe(1);
    expect(f.largestFocusMl).toBeGreaterThan(FOCUS_MIN_ML);
    // volume of a 9 mm sphere ≈ 3.05 mL (discretised: within 25 %)
    expect(f.largestFocusMl).toBeGreaterThan((0.75 * ((4 / 3) * Math.PI * 729)) / 1000);
    expect(f.largestFocusMl).toBeLessThan((1.25 * ((4 / 3) * Math.PI * 729)) / 1000);
    expect(f.roundness).toBeGreaterThan(0.85);
    // multifocal rounded ground glass, not peripheral: typical by criterion (b)
    const d = categorizePattern(f);
    expect(d.category).toBe('typical');
    expect(d.criteria.join(' ')).toMatch(/multifocal.*rounded/);
  });
});
