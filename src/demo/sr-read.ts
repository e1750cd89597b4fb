/**
 * Reads the numbers and codes of a DICOM SR back from Orthanc's simplified tags
 * (GET /instances/<id>/simplified-tags): every NUM and CODE content item with the chain of
 * concept names above it. Used to check that the score the PACS holds is the score we computed.
 */

type Tags = Record<string, unknown>;

export interface SrItem {
  valueType: string;
  /** Concept names from the document root down to this item. */
  path: string[];
  /** Depth in the content tree (0 = the root's direct children). */
  depth: number;
  concept: string;
  /** NUM: the numeric value. */
  value?: number;
  /** NUM: the unit's code value (e.g. "1" or "{probability}"). */
  unit?: string;
  /** CODE: the code meaning. */
  code?: string;
  /** TEXT: the text. */
  text?: string;
}

const first = (v: unknown): Tags | undefined => (Array.isArray(v) && v.length ? (v[0] as Tags) : undefined);
const str = (v: unknown): string => (typeof v === 'string' ? v.trim() : '');

/** Flattens the content tree of an SR (simplified tags) into items. */
export function srItems(tags: Tags): SrItem[] {
  const out: SrItem[] = [];
  const walk = (items: unknown, path: string[], depth: number): void => {
    if (!Array.isArray(items)) return;
    for (const it of items as Tags[]) {
      const concept = str(first(it.ConceptNameCodeSequence)?.CodeMeaning);
      const valueType = str(it.ValueType);
      const item: SrItem = { valueType, path: [...path, concept], depth, concept };
      if (valueType === 'NUM') {
        const mv = first(it.MeasuredValueSequence);
        // FloatingPointValue (full precision) when present, else the DS NumericValue.
        const fp = Number(str(mv?.FloatingPointValue));
        const n = Number(str(mv?.NumericValue));
        if (mv && str(mv.FloatingPointValue) !== '' && Number.isFinite(fp)) item.value = fp;
        else if (mv && Number.isFinite(n)) item.value = n;
        const unit = first(mv?.MeasurementUnitsCodeSequence);
        if (unit) item.unit = str(unit.CodeValue);
      } else if (valueType === 'CODE') {
        item.code = str(first(it.ConceptCodeSequence)?.CodeMeaning);
      } else if (valueType === 'TEXT') {
        item.text = str(it.TextValue);
      }
      out.push(item);
      walk(it.ContentSequence, item.path, depth + 1);
    }
  };
  walk(tags.ContentSequence, [str(first(tags.ConceptNameCodeSequence)?.CodeMeaning)], 0);
  return out;
}

/**
 * The series probability of our SR (0..1): the NUM item named "… probability, series" (src/results/sr.ts),
 * else the shallowest NUM item whose concept name says "probability"; a value in "%" is divided by 100.
 */
export function srSeriesProbability(tags: Tags): number | undefined {
  const nums = srItems(tags).filter((i) => i.valueType === 'NUM' && i.value !== undefined && /probab/i.test(i.concept));
  const series = nums.find((i) => /series/i.test(i.concept));
  const fraction = (i: SrItem | undefined): number | undefined =>
    i?.value === undefined ? undefined : i.unit === '%' ? Number((i.value / 100).toFixed(6)) : i.value;
  if (series) return fraction(series);
  nums.sort((a, b) => a.depth - b.depth);
  return fraction(nums[0]);
}

/** The category code meaning (likely / unlikely / indeterminate …), if the SR holds one. */
export function srCategory(tags: Tags): string | undefined {
  return srItems(tags).find((i) => i.valueType === 'CODE' && /categor|likelihood|assessment/i.test(i.concept))?.code;
}
