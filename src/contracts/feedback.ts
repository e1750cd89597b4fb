/**
 * A radiologist's reference finding for a study (API body, dashboard form, CSV label import).
 * 'covid-pattern' is the positive class of the validation; 'other-opacity' and 'normal' are
 * negatives; 'not-assessable' studies are left out of the metrics (and counted).
 */
import { z } from 'zod';

export const REFERENCE_LABELS = ['covid-pattern', 'other-opacity', 'normal', 'not-assessable'] as const;
export type ReferenceLabel = (typeof REFERENCE_LABELS)[number];

export const UID_PATTERN = /^[0-9]+(\.[0-9]+)*$/;
export const dicomUidSchema = z.string().min(1).max(64).regex(UID_PATTERN, 'not a DICOM UID');

export const referenceLabelSchema = z.enum(REFERENCE_LABELS, {
  error: (iss) => `label ${JSON.stringify(iss.input)} is not one of ${REFERENCE_LABELS.join(', ')}`,
});

export const feedbackBodySchema = z.strictObject({
  label: referenceLabelSchema,
  /** Agrees with the node's category; omitted: derived from the label and the category. */
  agree: z.boolean().optional(),
  comment: z.string().max(2000).optional(),
  /** Answer for one scored series of the study (default: the whole study). */
  seriesInstanceUid: dicomUidSchema.optional(),
});
export type FeedbackBody = z.infer<typeof feedbackBodySchema>;

/** Positive (covid-pattern), negative, or left out of the metrics. */
export function referenceClass(label: string): 1 | 0 | null {
  if (label === 'covid-pattern') return 1;
  if (label === 'other-opacity' || label === 'normal') return 0;
  return null;
}

/** Whether a label agrees with a node category (likely ↔ covid-pattern, unlikely ↔ negative); null for indeterminate / not assessable. */
export function agreesWith(label: string, category: string | null): boolean | null {
  const ref = referenceClass(label);
  if (ref === null || category === null || category === 'indeterminate') return null;
  return (category === 'likely') === (ref === 1);
}

export interface LabelRow {
  line: number;
  studyInstanceUid: string;
  label: ReferenceLabel;
}

export interface LabelCsvParse {
  rows: LabelRow[];
  errors: { line: number; error: string }[];
}

/**
 * Parses `StudyInstanceUID,label` CSV (header required, any column order, extra columns ignored,
 * quotes and CRLF allowed, blank lines skipped). Bad rows come back with their 1-based line number.
 */
export function parseLabelCsv(text: string): LabelCsvParse {
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  const cells = (l: string): string[] =>
    l.split(',').map((c) =>
      c
        .trim()
        .replace(/^"(.*)"$/, '$1')
        .trim(),
    );
  const errors: LabelCsvParse['errors'] = [];
  const rows: LabelRow[] = [];
  const headerAt = lines.findIndex((l) => l.trim() !== '');
  if (headerAt < 0) return { rows, errors: [{ line: 1, error: 'empty CSV: expected a header StudyInstanceUID,label' }] };
  const header = cells(lines[headerAt]!).map((h) => h.toLowerCase());
  const uidCol = header.indexOf('studyinstanceuid');
  const labelCol = header.indexOf('label');
  if (uidCol < 0 || labelCol < 0) {
    return {
      rows,
      errors: [{ line: headerAt + 1, error: `header must name StudyInstanceUID and label (got ${lines[headerAt]!.trim().slice(0, 100)})` }],
    };
  }
  for (let i = headerAt + 1; i < lines.length; i++) {
    const raw = lines[i]!;
    if (raw.trim() === '') continue;
    const c = cells(raw);
    const line = i + 1;
    const uid = dicomUidSchema.safeParse(c[uidCol] ?? '');
    if (!uid.success) {
      errors.push({ line, error: `StudyInstanceUID ${JSON.stringify((c[uidCol] ?? '').slice(0, 80))} is not a DICOM UID` });
      continue;
    }
    const label = referenceLabelSchema.safeParse(c[labelCol] ?? '');
    if (!label.success) {
      errors.push({ line, error: label.error.issues[0]?.message ?? 'bad label' });
      continue;
    }
    rows.push({ line, studyInstanceUid: uid.data, label: label.data });
  }
  return { rows, errors };
}
