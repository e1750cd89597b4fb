/**
 * The pattern of a scored HU series: distribution features of its opacity (src/model/pattern-series.ts) and the
 * category the rule gives them (src/model/pattern-rule.ts, docs/pattern-rule.md). An automated description of
 * how the measured opacity is distributed, reported beside the score; never a diagnosis.
 */
import type { SlicePattern } from '../model/pattern.js';
import { categorizePattern, PATTERN_RULE, type PatternCategory } from '../model/pattern-rule.js';
import { seriesPatternFeatures, type PatternFeatures } from '../model/pattern-series.js';

export interface SeriesPattern {
  category: PatternCategory;
  /** Rule name and version. */
  rule: string;
  /** The criteria that decided the category, in words. */
  criteria: string[];
  /** The features, rounded for reporting (shares to 4 decimals, mL to 2, % to 3). */
  features: PatternFeatures;
}

const r = (x: number, d: number): number => +x.toFixed(d);

export function roundFeatures(f: PatternFeatures): PatternFeatures {
  const s = (x: number): number => r(x, 4);
  return {
    opacityMl: r(f.opacityMl, 2),
    percentOpacity: r(f.percentOpacity, 3),
    groundGlassShare: s(f.groundGlassShare),
    rightOpacityMl: r(f.rightOpacityMl, 2),
    leftOpacityMl: r(f.leftOpacityMl, 2),
    minorityLungShare: s(f.minorityLungShare),
    peripheralShare: s(f.peripheralShare),
    lungPeripheralShare: s(f.lungPeripheralShare),
    dorsalShare: s(f.dorsalShare),
    lungDorsalShare: s(f.lungDorsalShare),
    zoneShare: { upper: s(f.zoneShare.upper), middle: s(f.zoneShare.middle), lower: s(f.zoneShare.lower) },
    lungZoneShare: { upper: s(f.lungZoneShare.upper), middle: s(f.lungZoneShare.middle), lower: s(f.lungZoneShare.lower) },
    foci: f.foci,
    smallFoci: f.smallFoci,
    smallFociShare: s(f.smallFociShare),
    largestFocusMl: r(f.largestFocusMl, 2),
    largestFocusShare: s(f.largestFocusShare),
    roundness: f.roundness === null ? null : s(f.roundness),
  };
}

/**
 * The series' pattern from its slices in scored order (superior first); undefined when a slice has no summary
 * (no HU, no pixel spacing). The category is decided on the unrounded features.
 */
export function seriesPattern(
  slices: readonly { pattern?: SlicePattern; position: number | null }[],
  imageOrientationPatient: readonly number[] | null,
  sliceSpacingMm: number,
): SeriesPattern | undefined {
  if (slices.length === 0 || !slices.every((s) => s.pattern)) return undefined;
  const features = seriesPatternFeatures(
    slices.map((s) => ({ pattern: s.pattern as SlicePattern, position: s.position })),
    imageOrientationPatient,
    sliceSpacingMm,
  );
  const d = categorizePattern(features);
  return { category: d.category, rule: PATTERN_RULE, criteria: d.criteria, features: roundFeatures(features) };
}
