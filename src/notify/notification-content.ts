/**
 * What every notification (HL7, FHIR, webhook) says about one result, in one place: the category
 * in words, the numbers, the conclusion sentence, and the deterministic ids that let a receiver
 * de-duplicate (same result → same id).
 */
import { createHash } from 'node:crypto';
import { resultKey, type ResultRecord } from '../contracts/result-record.js';
import { ZONE_NAMES, type ZoneName } from '../model/zones.js';

export const NOT_FOR_DIAGNOSTIC_USE = 'NOT FOR DIAGNOSTIC USE';

export const CATEGORY_TEXT: Record<NonNullable<ResultRecord['category']>, string> = {
  likely: 'COVID-19 pneumonia pattern likely',
  indeterminate: 'COVID-19 pneumonia pattern indeterminate',
  unlikely: 'COVID-19 pneumonia pattern unlikely',
};

/** sha256 hex of the result's identity (series, scored content, model version) and a salt (the target). */
export function resultDigest(record: Pick<ResultRecord, 'seriesInstanceUid' | 'instancesHash' | 'model' | 'study'>, salt: string): string {
  return createHash('sha256')
    .update([record.seriesInstanceUid, resultKey(record), record.model.version, salt].join('\n'))
    .digest('hex');
}

/** Numbers of the result (those present). */
export interface ResultNumbers {
  score?: number;
  opacityPercent?: number;
  highOpacityPercent?: number;
  lungMl?: number;
}

export function resultNumbers(r: ResultRecord): ResultNumbers {
  const t = r.opacity?.total;
  return {
    ...(r.score !== undefined ? { score: r.score } : {}),
    ...(t ? { opacityPercent: t.percentOpacity, highOpacityPercent: t.percentHighOpacity, lungMl: t.lungMl } : {}),
  };
}

/** One lung zone of the result (src/model/zones.ts: upper, middle, lower third of each lung's craniocaudal extent). */
export interface ZoneFigure {
  side: 'right' | 'left';
  zone: ZoneName;
  /** RU, RM, RL, LU, LM, LL. */
  abbrev: string;
  /** "right-upper": for codes and ids. */
  slug: string;
  /** "Right upper lung zone". */
  label: string;
  /** Opacity, % of the zone's lung volume. */
  percentOpacity: number;
  /** The zone's extent bin, 0–5. */
  score: number;
}

/** The six zones, right lung first, upper to lower, and the zone score 0–30; undefined when the record has no zones. */
export function zoneFigures(r: ResultRecord): { score: number; zones: ZoneFigure[] } | undefined {
  const z = r.zones;
  if (!z) return undefined;
  const zones = (['right', 'left'] as const).flatMap((side) =>
    ZONE_NAMES.map((zone): ZoneFigure => {
      const m = z[side][zone];
      const sideWord = side === 'right' ? 'Right' : 'Left';
      return {
        side,
        zone,
        abbrev: `${sideWord[0]}${zone[0]!.toUpperCase()}`,
        slug: `${side}-${zone}`,
        label: `${sideWord} ${zone} lung zone`,
        percentOpacity: m.percentOpacity,
        score: m.score,
      };
    }),
  );
  return { score: z.score, zones };
}

/** What a zone is, for the receiver of a notification. */
export const ZONE_DEFINITION = "thirds of each lung's craniocaudal extent; per zone 0-5 by % opacified, summed over six zones";

const round = (x: number, d: number): number => Math.round(x * 10 ** d) / 10 ** d;
export { round };

/** One sentence for a worklist or a report's conclusion. */
export function conclusionText(r: ResultRecord): string {
  if (r.status !== 'scored' || !r.category) {
    return `Not scored by ${r.model.name} ${r.model.version}${r.reason ? `: ${r.reason}` : ''}. ${NOT_FOR_DIAGNOSTIC_USE}.`;
  }
  const n = resultNumbers(r);
  const parts = [`${CATEGORY_TEXT[r.category]} (score ${round(n.score ?? 0, 3)}`];
  if (n.opacityPercent !== undefined) parts.push(`opacity ${round(n.opacityPercent, 2)} % of lung volume`);
  if (n.highOpacityPercent !== undefined) parts.push(`high opacity ${round(n.highOpacityPercent, 2)} %`);
  return `${parts.join(', ')}). AI triage by ${r.model.name} ${r.model.version}. ${NOT_FOR_DIAGNOSTIC_USE}.`;
}
