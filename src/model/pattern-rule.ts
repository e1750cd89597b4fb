/**
 * The pattern category from the distribution features (pattern-series.ts), after the RSNA expert consensus on
 * reporting chest CT findings related to COVID-19 (Simpson et al. 2020) and CO-RADS (Prokop et al. 2020).
 * The rule, its sources and why each number is what it is: docs/pattern-rule.md (written and committed before
 * the rule was computed on any real series). Twin: training/pattern.py `categorize`.
 *
 * An automated description of how the measured opacity is distributed, never a diagnosis.
 */
import type { PatternFeatures } from './pattern-series.js';

/** Name and version of the rule; a changed number is a new version. */
export const PATTERN_RULE = 'rsna-distribution-v1';

export const PATTERN_CATEGORIES = ['typical', 'indeterminate', 'atypical', 'no-opacity'] as const;
export type PatternCategory = (typeof PATTERN_CATEGORIES)[number];

export const PATTERN_RULE_PARAMS = {
  /** Below this % of the lung volume the measurement is at its background (no opacity). */
  noOpacityPercent: 0.6,
  /** A lung is involved with at least this much opacity (mL) and this share of it. */
  involvedMl: 1,
  involvedShare: 0.1,
  /** Peripheral predominance: the opacity's share in the outer third ≥ max(this, the lung's own share + margin). */
  peripheralShare: 0.65,
  peripheralMargin: 0.1,
  /** Ground glass predominates at this share of the opacity; below `withoutGroundGlass` consolidation stands alone. */
  groundGlassShare: 0.5,
  withoutGroundGlass: 1 / 3,
  /** Multifocal: at least this many foci of ≥ 1 cm. */
  multifocal: 3,
  /** Rounded morphology: area-weighted roundness at least this. */
  round: 0.6,
  /** Isolated: one focus holds at least this share of the opacity. */
  isolatedShare: 0.6,
  /** Discrete small nodules: at least this many foci under 1 cm and none larger. */
  smallNodules: 3,
} as const;

export interface PatternDecision {
  category: PatternCategory;
  /** The criteria that decided it, in words (the SR and the dashboard print them). */
  criteria: string[];
}

export function categorizePattern(f: PatternFeatures): PatternDecision {
  const p = PATTERN_RULE_PARAMS;
  const pct = (x: number): string => `${Math.round(100 * x)} %`;
  if (f.percentOpacity < p.noOpacityPercent) {
    return {
      category: 'no-opacity',
      criteria: [`opacity ${f.percentOpacity.toFixed(2)} % of the lung volume, below ${p.noOpacityPercent} %`],
    };
  }
  const involved = (ml: number): boolean => ml >= p.involvedMl && ml >= p.involvedShare * f.opacityMl;
  const bilateral = involved(f.rightOpacityMl) && involved(f.leftOpacityMl);
  const peripheral = f.peripheralShare >= Math.max(p.peripheralShare, f.lungPeripheralShare + p.peripheralMargin);
  const ggo = f.groundGlassShare >= p.groundGlassShare;
  const multifocal = f.foci >= p.multifocal;
  const round = f.roundness !== null && f.roundness >= p.round;
  const typical: string[] = [];
  if (bilateral && peripheral && ggo) {
    typical.push(
      `bilateral (the less involved lung holds ${pct(f.minorityLungShare)})`,
      `peripheral (${pct(f.peripheralShare)} in the outer third, lung ${pct(f.lungPeripheralShare)})`,
      `ground glass ${pct(f.groundGlassShare)}`,
    );
  }
  if (multifocal && round && ggo) {
    typical.push(`multifocal (${f.foci} foci ≥ 1 cm)`, `rounded (roundness ${(f.roundness as number).toFixed(2)})`);
    if (!typical.some((c) => c.startsWith('ground glass'))) typical.push(`ground glass ${pct(f.groundGlassShare)}`);
  }
  if (typical.length) return { category: 'typical', criteria: typical };
  const atypical: string[] = [];
  if (!bilateral && f.groundGlassShare < p.withoutGroundGlass && f.largestFocusShare >= p.isolatedShare) {
    atypical.push(
      `isolated consolidation (one focus holds ${pct(f.largestFocusShare)}, one lung)`,
      `little ground glass (${pct(f.groundGlassShare)})`,
    );
  }
  if (f.foci === 0 && f.smallFoci >= p.smallNodules && f.groundGlassShare < p.groundGlassShare) {
    atypical.push(`discrete small dense foci (${f.smallFoci} under 1 cm, none larger)`);
  }
  if (atypical.length) return { category: 'atypical', criteria: atypical };
  const why: string[] = [];
  why.push(bilateral ? 'bilateral' : 'not bilateral');
  why.push(peripheral ? 'peripheral' : `not peripheral (${pct(f.peripheralShare)} in the outer third, lung ${pct(f.lungPeripheralShare)})`);
  why.push(ggo ? `ground glass ${pct(f.groundGlassShare)}` : `consolidation ${pct(1 - f.groundGlassShare)}`);
  if (!(multifocal && round))
    why.push(multifocal ? `foci not rounded (${f.roundness === null ? 'n/a' : f.roundness.toFixed(2)})` : `${f.foci} foci ≥ 1 cm`);
  return { category: 'indeterminate', criteria: why };
}

/** The words a report uses for a category (an automated description, never a diagnosis). */
export function patternWording(c: PatternCategory): string {
  switch (c) {
    case 'typical':
      return 'typical COVID-19 appearance';
    case 'indeterminate':
      return 'indeterminate COVID-19 appearance';
    case 'atypical':
      return 'atypical COVID-19 appearance';
    default:
      return 'no opacity';
  }
}
