/**
 * The score's category with the band it comes from, in words read at a glance: "0.53 — indeterminate
 * (0.35–0.65)", "0.72 — likely (0.65 or above)", "0.12 — unlikely (0.35 or below)". A score just
 * above the threshold is not "positive": the band around the threshold (± indeterminateMargin, model
 * metadata) is indeterminate, and saying so beside the number keeps the two from reading as a
 * contradiction. `ascii` gives the DICOM text form (default character repertoire: "-" for the dashes).
 */
import type { SeriesCategory } from './aggregate.js';

export interface BandPolicy {
  threshold: number;
  indeterminateMargin: number;
}

export interface BandTextOptions {
  /** Decimals of the band limits (default 2). */
  digits?: number;
  /** Decimals of the score (default: digits). */
  scoreDigits?: number;
  /** ASCII only (DICOM text values). */
  ascii?: boolean;
}

/** The band the category covers: "0.35–0.65", "0.65 or above", "0.35 or below". */
export function categoryBand(category: SeriesCategory | string, p: BandPolicy, o: BandTextOptions = {}): string {
  const d = o.digits ?? 2;
  const lo = Math.max(0, p.threshold - p.indeterminateMargin).toFixed(d);
  const hi = Math.min(1, p.threshold + p.indeterminateMargin).toFixed(d);
  if (category === 'likely') return `${hi} or above`;
  if (category === 'unlikely') return `${lo} or below`;
  return `${lo}${o.ascii ? '-' : '–'}${hi}`;
}

/** "indeterminate (0.35–0.65)". */
export function categoryWithBand(category: SeriesCategory | string, p: BandPolicy, o: BandTextOptions = {}): string {
  return `${category} (${categoryBand(category, p, o)})`;
}

/** "0.53 — indeterminate (0.35–0.65)". */
export function scoreWithBand(score: number, category: SeriesCategory | string, p: BandPolicy, o: BandTextOptions = {}): string {
  return `${score.toFixed(o.scoreDigits ?? o.digits ?? 2)}${o.ascii ? ' - ' : ' — '}${categoryWithBand(category, p, o)}`;
}

/** The three bands in one phrase, for a legend: "unlikely 0.35 or below, indeterminate 0.35–0.65, likely 0.65 or above". */
export function bandsLegend(p: BandPolicy, o: BandTextOptions = {}): string {
  return (['unlikely', 'indeterminate', 'likely'] as const).map((c) => `${c} ${categoryBand(c, p, o)}`).join(', ');
}
