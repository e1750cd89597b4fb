/**
 * Series selection: which series of a complete study is scored (one result per study).
 *
 * A PACS forwards the whole examination: localizer, thin and thick axial reconstructions, coronal
 * and sagittal reformats, MIPs, a dose screen. Each series gets a role:
 *
 * - ignored:   routing says it is not for this model (src/queue/routing.ts: modality, body part,
 *              SOP class stored unscored, only localizer images, too few slices), or it is not an
 *              axial acquisition: a reformat or projection by ImageType (series.selection.
 *              excludeImageTypes: DERIVED, REFORMATTED, MPR, MIP, PROJECTION, …), a non-axial
 *              orientation (coronal, sagittal, oblique from ImageOrientationPatient), or a
 *              z coverage shorter than series.selection.minCoverageMm (not a whole chest);
 * - candidate: an axial stack covering the chest; a second contrast phase or a second acquisition
 *              of the same anatomy is a candidate like any other;
 * - chosen:    the first candidate in preference order. Whether it really shows the lungs is told by
 *              the lung segmentation when it is scored; if it cannot be scored, the next candidate is
 *              scored instead (src/worker/inference).
 *
 * Preference (series.selection), for HU opacity quantification, in this order:
 * 1. slices no thicker than `thinSliceMm` (default 3 mm) first: thick slabs average opacities with
 *    aerated lung (partial volume) and under-measure ground-glass;
 * 2. kernel `preferKernel`: "soft" (default) puts soft/standard kernels (anything not matching
 *    `sharpKernels`) before sharp lung/bone kernels: a sharp kernel adds noise and edge overshoot to
 *    HU, which quantitative lung CT tools (densitometry, opacity scores) avoid; "sharp" the opposite,
 *    "any" ignores the kernel;
 * 3. thinner slices; 4. closer slice spacing; 5. longer z coverage; 6. more slices;
 * 7. lower SeriesNumber, then SeriesInstanceUID (so the choice is deterministic).
 *
 * Every series not chosen gets a reason that says which rule decided.
 */
import type { Config } from '../config/schema.js';
import { routeSeries, type RouteDecision, type RoutableInstance } from './routing.js';

export type SelectionRules = Config['series']['selection'];

/** What selection needs from one instance (the tracker keeps it per instance in Redis). */
export interface SelectableInstance extends RoutableInstance {
  sopClassUid?: string;
  /** Six direction cosines, or null. */
  orientation?: number[] | null;
  /** Three coordinates, or null. */
  position?: number[] | null;
  sliceThickness?: number | null;
  kernel?: string;
  seriesNumber?: string;
  seriesDescription?: string;
}

export type Orientation = 'axial' | 'coronal' | 'sagittal' | 'oblique' | 'unknown';

/** One series as selection sees it. */
export interface SeriesSummary {
  seriesInstanceUid: string;
  seriesNumber: string;
  seriesDescription: string;
  instanceCount: number;
  route: RouteDecision;
  sopClasses: string[];
  imageTypes: string[];
  orientation: Orientation;
  /** Median SliceThickness (mm), null when absent. */
  sliceThicknessMm: number | null;
  /** Median distance between neighbouring distinct positions along the slice normal (mm). */
  spacingMm: number | null;
  /** Distance between the outermost positions along the normal (mm). */
  coverageMm: number | null;
  kernel: string;
}

export type SeriesRole = 'chosen' | 'candidate' | 'ignored';

export interface SeriesChoice {
  seriesInstanceUid: string;
  role: SeriesRole;
  /** Why chosen, or why not. */
  reason: string;
  /** 1-based place in the preference order (candidates and the chosen one). */
  rank?: number;
}

export interface StudySelection {
  /** The chosen series, if any candidate. */
  chosen?: string;
  /** Candidates in preference order (chosen first): the fallback order when one cannot be scored. */
  order: string[];
  roles: SeriesChoice[];
}

const AXIAL_MIN_COS = 0.9;

function normalOf(iop: readonly number[]): [number, number, number] {
  const [rx, ry, rz, cx, cy, cz] = iop as [number, number, number, number, number, number];
  const n: [number, number, number] = [ry * cz - rz * cy, rz * cx - rx * cz, rx * cy - ry * cx];
  const len = Math.hypot(...n);
  return len > 0 ? [n[0] / len, n[1] / len, n[2] / len] : [0, 0, 0];
}

export function orientationOf(iop: readonly number[] | null | undefined): Orientation {
  if (iop?.length !== 6) return 'unknown';
  const [x, y, z] = normalOf(iop).map(Math.abs) as [number, number, number];
  if (z > AXIAL_MIN_COS) return 'axial';
  if (y > AXIAL_MIN_COS) return 'coronal';
  if (x > AXIAL_MIN_COS) return 'sagittal';
  return x + y + z > 0 ? 'oblique' : 'unknown';
}

/** Parses "a\b\c" decimal strings; null unless exactly `count` finite numbers. */
export function decimals(text: string | undefined, count: number): number[] | null {
  if (!text) return null;
  const v = text.split('\\').map((s) => Number(s.trim()));
  return v.length === count && v.every((n) => Number.isFinite(n)) ? v : null;
}

function median(values: number[]): number | null {
  if (values.length === 0) return null;
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

function mostCommon(values: string[]): string {
  const counts = new Map<string, number>();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  let best = '';
  let n = 0;
  for (const [v, c] of counts) if (c > n || (c === n && v < best)) [best, n] = [v, c];
  return best;
}

/** Summarises one series' instances (routing decision, geometry, kernel). */
export function summarizeSeries(
  seriesInstanceUid: string,
  instances: readonly SelectableInstance[],
  routing: Config['series']['routing'],
): SeriesSummary {
  const route = routeSeries(instances, routing);
  const images = instances.filter((i) => !i.imageType.includes('LOCALIZER'));
  const orientations = images.map((i) => orientationOf(i.orientation ?? null));
  const orientation = (mostCommon(orientations) || 'unknown') as Orientation;
  // Positions along the mean normal of the series' images of the main orientation.
  const oriented = images.filter((i) => i.orientation && orientationOf(i.orientation) === orientation);
  let spacingMm: number | null = null;
  let coverageMm: number | null = null;
  if (oriented.length > 0) {
    const n = normalOf(oriented[0]!.orientation as number[]);
    const pos = [
      ...new Set(
        oriented
          .filter((i) => i.position)
          .map((i) => {
            const p = i.position as number[];
            return Math.round((p[0]! * n[0] + p[1]! * n[1] + p[2]! * n[2]) * 1000) / 1000;
          }),
      ),
    ].sort((a, b) => a - b);
    if (pos.length > 1) {
      coverageMm = (pos[pos.length - 1] as number) - (pos[0] as number);
      spacingMm = median(pos.slice(1).map((p, k) => p - (pos[k] as number)));
    }
  }
  const thicknesses = images.map((i) => i.sliceThickness).filter((t): t is number => typeof t === 'number' && t > 0);
  return {
    seriesInstanceUid,
    seriesNumber: mostCommon(instances.map((i) => i.seriesNumber ?? '')),
    seriesDescription: mostCommon(instances.map((i) => i.seriesDescription ?? '')),
    instanceCount: instances.length,
    route,
    sopClasses: [...new Set(instances.map((i) => i.sopClassUid ?? ''))].filter(Boolean).sort(),
    imageTypes: [...new Set(instances.flatMap((i) => i.imageType))].sort(),
    orientation,
    sliceThicknessMm: median(thicknesses),
    spacingMm,
    coverageMm,
    kernel: mostCommon(images.map((i) => i.kernel ?? '')),
  };
}

/** Why a series is not a candidate (routed to scoring but not an axial chest stack), or null. */
export function notCandidateReason(s: SeriesSummary, rules: SelectionRules): string | null {
  if (s.route.route === 'ignore') return s.route.reason;
  const excluded = new Set(rules.excludeImageTypes.map((t) => t.trim().toUpperCase()));
  const hits = s.imageTypes.filter((t) => excluded.has(t));
  if (hits.length > 0) return `reformat or projection (ImageType ${hits.join(', ')})`;
  if (s.orientation !== 'axial' && s.orientation !== 'unknown') return `not axial (${s.orientation} orientation)`;
  if (s.coverageMm !== null && s.coverageMm < rules.minCoverageMm) {
    return `covers ${s.coverageMm.toFixed(0)} mm along z, less than the ${rules.minCoverageMm} mm of a chest (series.selection.minCoverageMm)`;
  }
  return null;
}

export function isSharpKernel(kernel: string, rules: SelectionRules): boolean {
  const k = kernel.trim();
  if (k === '') return false;
  return rules.sharpKernels.some((p) => new RegExp(p, 'i').test(k));
}

interface Keyed {
  s: SeriesSummary;
  thin: boolean;
  sharp: boolean;
}

const fmt = (v: number | null, unit = ' mm'): string => (v === null ? '?' : `${Number(v.toFixed(2))}${unit}`);

/** The comparison of two candidates (negative: a first), with the rule that decided it. */
function compare(a: Keyed, b: Keyed, rules: SelectionRules): { d: number; rule: string } {
  const num = (x: number | null, missing: number): number => (x === null ? missing : x);
  const steps: Array<[number, string]> = [
    [Number(!a.thin) - Number(!b.thin), `thin slices (≤ ${rules.thinSliceMm} mm) preferred for HU quantification`],
    [
      rules.preferKernel === 'any'
        ? 0
        : rules.preferKernel === 'soft'
          ? Number(a.sharp) - Number(b.sharp)
          : Number(b.sharp) - Number(a.sharp),
      rules.preferKernel === 'soft'
        ? 'soft/standard kernel preferred over a sharp kernel (noise in HU)'
        : 'sharp kernel preferred (series.selection.preferKernel)',
    ],
    [num(a.s.sliceThicknessMm, 1e6) - num(b.s.sliceThicknessMm, 1e6), 'thinner slices preferred'],
    [num(a.s.spacingMm, 1e6) - num(b.s.spacingMm, 1e6), 'closer slice spacing preferred'],
    [num(b.s.coverageMm, 0) - num(a.s.coverageMm, 0), 'longer z coverage preferred'],
    [b.s.route.scorableInstances - a.s.route.scorableInstances, 'more slices preferred'],
    [num(Number(a.s.seriesNumber) || null, 1e9) - num(Number(b.s.seriesNumber) || null, 1e9), 'equal by every rule: lower SeriesNumber'],
    [
      a.s.seriesInstanceUid < b.s.seriesInstanceUid ? -1 : a.s.seriesInstanceUid > b.s.seriesInstanceUid ? 1 : 0,
      'equal by every rule: SeriesInstanceUID order',
    ],
  ];
  for (const [d, rule] of steps) if (Math.abs(d) > 1e-6) return { d, rule };
  return { d: 0, rule: 'identical' };
}

function describe(s: SeriesSummary, sharp: boolean): string {
  return `${fmt(s.sliceThicknessMm)} slices, spacing ${fmt(s.spacingMm)}, kernel ${s.kernel || '?'}${s.kernel ? (sharp ? ' (sharp)' : ' (soft/standard)') : ''}`;
}

/** The role of every series of a study, the chosen one, and the fallback order. */
export function selectSeries(summaries: readonly SeriesSummary[], rules: SelectionRules): StudySelection {
  const roles: SeriesChoice[] = [];
  const cands: Keyed[] = [];
  for (const s of summaries) {
    const why = notCandidateReason(s, rules);
    if (why) roles.push({ seriesInstanceUid: s.seriesInstanceUid, role: 'ignored', reason: why });
    else {
      cands.push({
        s,
        thin:
          s.sliceThicknessMm !== null ? s.sliceThicknessMm <= rules.thinSliceMm : s.spacingMm !== null && s.spacingMm <= rules.thinSliceMm,
        sharp: isSharpKernel(s.kernel, rules),
      });
    }
  }
  cands.sort((a, b) => compare(a, b, rules).d);
  const best = cands[0];
  cands.forEach((c, i) => {
    if (i === 0) {
      const others = cands.length - 1;
      roles.push({
        seriesInstanceUid: c.s.seriesInstanceUid,
        role: 'chosen',
        rank: 1,
        reason: `axial chest stack, ${describe(c.s, c.sharp)}${others ? `; preferred over ${others} other candidate${others > 1 ? 's' : ''}` : '; the only candidate'}`,
      });
      return;
    }
    const { rule } = compare(best as Keyed, c, rules);
    roles.push({
      seriesInstanceUid: c.s.seriesInstanceUid,
      role: 'candidate',
      rank: i + 1,
      reason: `candidate not chosen: ${rule} (this series: ${describe(c.s, c.sharp)}; chosen: ${describe((best as Keyed).s, (best as Keyed).sharp)})`,
    });
  });
  const order = cands.map((c) => c.s.seriesInstanceUid);
  // Keep the input order of the series in roles (stable for pages and tests).
  const at = new Map(summaries.map((s, i) => [s.seriesInstanceUid, i]));
  roles.sort((a, b) => (at.get(a.seriesInstanceUid) ?? 0) - (at.get(b.seriesInstanceUid) ?? 0));
  return { ...(order[0] ? { chosen: order[0] } : {}), order, roles };
}
