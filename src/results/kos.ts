/**
 * The Key Object Selection document (PS3.3 A.35.4, TID 2010): the key CT slices flagged "Of
 * Interest", so that PACS viewers that show key images (the KIN profile) list them. It lives in
 * its own KO series of the source study.
 *
 *   CONTAINER (113000, DCM, "Of Interest")                                           TID 2010
 *     HAS CONCEPT MOD  Language = English                                           TID 1204
 *     HAS OBS CONTEXT  Observer Type = Device, Device Observer UID/Name/...         TID 1002
 *     CONTAINS TEXT    Key Object Description: what selected them, NOT FOR DIAGNOSTIC USE
 *     CONTAINS IMAGE   each key slice, best first
 */
import { NOT_FOR_DIAGNOSTIC_USE, setObjectHeader, type DocumentInput } from './common.js';
import { hierarchicalReference, image, languageAndDeviceObserver, setDocumentContent, text, type SopRef } from './content.js';
import { setSequence, tagOf, type Code, type Dataset } from './dataset.js';

export const KEY_OBJECT_SELECTION = '1.2.840.10008.5.1.4.1.1.88.59';

const C = {
  ofInterest: { value: '113000', scheme: 'DCM', meaning: 'Of Interest' },
  description: { value: '113012', scheme: 'DCM', meaning: 'Key Object Description' },
} satisfies Record<string, Code>;

export interface KosInput extends DocumentInput {
  /** The key slices, best first, with their probabilities. */
  keySlices: { ref: SopRef; probability: number; instanceNumber: number | null }[];
}

/** The Key Object Selection Document dataset (without file meta). */
export function buildKos(inp: KosInput): Dataset {
  const { record: r, source, model } = inp;
  if (inp.keySlices.length === 0) throw new Error('a Key Object Selection document needs at least one key slice');
  const ds: Dataset = new Map();
  setObjectHeader(ds, {
    source,
    model,
    sopClassUid: KEY_OBJECT_SELECTION,
    sopInstanceUid: inp.sopInstanceUid,
    modality: 'KO',
    seriesInstanceUid: inp.seriesInstanceUid,
    seriesNumber: inp.seriesNumber,
    seriesDescription: 'AI key slices',
    instanceNumber: 1,
    aeTitle: inp.aeTitle,
    when: inp.when,
  });
  // Key Object Document Series, Key Object Document
  setSequence(ds, tagOf(0x0008, 0x1111), []);
  const refs = inp.keySlices.map((k) => ({ ...k.ref, seriesInstanceUid: r.seriesInstanceUid }));
  setSequence(ds, tagOf(0x0040, 0xa375), hierarchicalReference(r.studyInstanceUid, refs));
  // SR Document Content
  const list = inp.keySlices
    .map(
      (k, i) =>
        `${i + 1}. ${k.instanceNumber !== null ? `instance ${k.instanceNumber}` : k.ref.sopInstanceUid}: ${k.probability.toFixed(3)}`,
    )
    .join('; ');
  const description =
    `${NOT_FOR_DIAGNOSTIC_USE}. Key slices of ${model.name} ${model.version}, COVID-19 pneumonia pattern probability ` +
    `${(r.score ?? 0).toFixed(3)} for the series (${r.category ?? '?'}), slices best first: ${list}.`;
  setDocumentContent(ds, C.ofInterest, '2010', [
    ...languageAndDeviceObserver(inp),
    // Key Object Description is 1024 characters at most (TID 2010).
    text('CONTAINS', C.description, description.length > 1024 ? `${description.slice(0, 1021)}...` : description),
    ...inp.keySlices.map((k) => image('CONTAINS', null, k.ref)),
  ]);
  return ds;
}
