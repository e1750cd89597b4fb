import type { Config } from '../config/schema.js';
import { sopClassName, STORAGE_SOP_CLASSES } from '../dicom/uids.js';

export type RoutingRules = Config['series']['routing'];

/** What routing needs from each instance (as the listener reports it, upper-cased). */
export interface RoutableInstance {
  modality: string;
  bodyPartExamined: string;
  imageType: string[];
  /** SOP Class UID (absent in records written before it was kept: taken as CT Image Storage). */
  sopClassUid?: string;
}

export type IgnoreCode =
  | 'empty'
  | 'sop-class'
  | 'not-chosen'
  | 'not-candidate'
  | 'modality'
  | 'body-part'
  | 'only-excluded-image-types'
  | 'too-few-slices';

export type RouteDecision =
  | { route: 'score'; scorableInstances: number; excludedInstances: number }
  | { route: 'ignore'; code: IgnoreCode; reason: string; scorableInstances: number; excludedInstances: number };

const norm = (s: string): string => s.trim().toUpperCase();
const list = (values: Iterable<string>): string => [...values].map((v) => (v === '' ? '""' : v)).join(', ');

/** True when the instance's ImageType holds one of the excluded values (e.g. LOCALIZER). */
export function isExcludedImageType(imageType: readonly string[], rules: RoutingRules): boolean {
  const excluded = new Set(rules.excludeImageTypes.map(norm));
  return imageType.some((v) => excluded.has(norm(v)));
}

/**
 * Decides whether a complete series is scored. Every instance must have an allowed Modality and
 * BodyPartExamined ("" in the list accepts a missing or empty one); instances whose ImageType holds
 * an excluded value do not count as slices; at least `minSlices` slices must remain.
 */
export function routeSeries(instances: readonly RoutableInstance[], rules: RoutingRules): RouteDecision {
  const excludedInstances = instances.filter((i) => isExcludedImageType(i.imageType, rules)).length;
  const scorableInstances = instances.length - excludedInstances;
  const counts = { scorableInstances, excludedInstances };
  if (instances.length === 0) return { route: 'ignore', code: 'empty', reason: 'no instances', ...counts };

  // Storage SOP classes accepted unscored (dicom.acceptUnscoredSopClasses): dose screens, SRs, …
  const unscored = new Set(instances.map((i) => i.sopClassUid ?? '').filter((c) => c !== '' && !STORAGE_SOP_CLASSES.includes(c)));
  if (unscored.size > 0) {
    return {
      route: 'ignore',
      code: 'sop-class',
      reason: `${[...unscored].sort().map(sopClassName).join(', ')}: stored, not scored (only CT Image Storage is scored)`,
      ...counts,
    };
  }

  const modalities = new Set(rules.modalities.map(norm));
  const badModalities = new Set(instances.map((i) => norm(i.modality)).filter((m) => !modalities.has(m)));
  if (badModalities.size > 0) {
    return {
      route: 'ignore',
      code: 'modality',
      reason: `modality ${list(badModalities)} not in [${list(modalities)}]`,
      ...counts,
    };
  }
  const bodyParts = new Set(rules.bodyParts.map(norm));
  const badParts = new Set(instances.map((i) => norm(i.bodyPartExamined)).filter((b) => !bodyParts.has(b)));
  if (badParts.size > 0) {
    return {
      route: 'ignore',
      code: 'body-part',
      reason: `body part ${list(badParts)} not in [${list(bodyParts)}]`,
      ...counts,
    };
  }
  if (scorableInstances === 0) {
    return {
      route: 'ignore',
      code: 'only-excluded-image-types',
      reason: `all ${excludedInstances} instances have an excluded image type (${rules.excludeImageTypes.join(', ')})`,
      ...counts,
    };
  }
  if (scorableInstances < rules.minSlices) {
    return {
      route: 'ignore',
      code: 'too-few-slices',
      reason:
        `${scorableInstances} slices, fewer than the minimum ${rules.minSlices}` +
        (excludedInstances ? ` (${excludedInstances} excluded by image type)` : ''),
      ...counts,
    };
  }
  return { route: 'score', ...counts };
}
