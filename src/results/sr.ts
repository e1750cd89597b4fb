/**
 * The Structured Report: Comprehensive 3D SR structured after TID 1500 (Measurement Report).
 *
 *   CONTAINER (126000, DCM, "Imaging Measurement Report")                         TID 1500
 *     HAS CONCEPT MOD  Language of Content Item and Descendants = English         TID 1204
 *     HAS OBS CONTEXT  Observer Type = Device, Device Observer UID/Name/...        TID 1001/1004
 *     HAS CONCEPT MOD  Procedure reported = CT of chest
 *     CONTAINS CONTAINER Imaging Measurements                        (scored)
 *       CONTAINS CONTAINER Measurement Group                                      TID 1501
 *         HAS OBS CONTEXT  Tracking Identifier, Tracking Unique Identifier
 *         HAS OBS CONTEXT  Algorithm Name, Algorithm Version, Algorithm Parameters TID 4019
 *         HAS CONCEPT MOD  Finding = COVID-19
 *         CONTAINS NUM     series probability; decision threshold
 *         CONTAINS CODE    category (likely / indeterminate / unlikely)
 *         CONTAINS NUM     slice probability, one per key slice, best first        TID 300
 *           INFERRED FROM IMAGE  Source of Measurement = the CT slice            TID 320
 *         CONTAINS TEXT    Comment: summary, NOT FOR DIAGNOSTIC USE
 *     CONTAINS CONTAINER Qualitative Evaluations
 *       CONTAINS CODE    AI result status (scored / not scored)
 *       CONTAINS TEXT    Comment: why not scored (not scored) / NOT FOR DIAGNOSTIC USE
 *
 * Concepts DICOM has no code for (the probabilities, threshold, category) use the local scheme
 * 99MLSAM, declared in the Coding Scheme Identification Sequence.
 */
import type { ResultRecord } from '../queue/result-record.js';
import {
  Codes, copyPatientStudy, LOCAL_SCHEME, MANUFACTURER, NOT_FOR_DIAGNOSTIC_USE, setCodingSchemes, setContributingEquipment,
  setEquipment, type DicomDateTime, type ModelInfo,
} from './common.js';
import { codeItem, formatDs, setCode, setSequence, setString, tagOf, type Code, type Dataset } from './dataset.js';
import type { SourceInstance } from './source.js';

export const COMPREHENSIVE_3D_SR = '1.2.840.10008.5.1.4.1.1.88.34';

const C = {
  report: { value: '126000', scheme: 'DCM', meaning: 'Imaging Measurement Report' },
  language: { value: '121049', scheme: 'DCM', meaning: 'Language of Content Item and Descendants' },
  english: { value: 'en', scheme: 'RFC5646', meaning: 'English' },
  observerType: { value: '121005', scheme: 'DCM', meaning: 'Observer Type' },
  device: { value: '121007', scheme: 'DCM', meaning: 'Device' },
  deviceUid: { value: '121012', scheme: 'DCM', meaning: 'Device Observer UID' },
  deviceName: { value: '121013', scheme: 'DCM', meaning: 'Device Observer Name' },
  deviceManufacturer: { value: '121014', scheme: 'DCM', meaning: 'Device Observer Manufacturer' },
  deviceModel: { value: '121015', scheme: 'DCM', meaning: 'Device Observer Model Name' },
  procedureReported: { value: '121058', scheme: 'DCM', meaning: 'Procedure reported' },
  ctChest: { value: '169069000', scheme: 'SCT', meaning: 'CT of chest' },
  imagingMeasurements: { value: '126010', scheme: 'DCM', meaning: 'Imaging Measurements' },
  measurementGroup: { value: '125007', scheme: 'DCM', meaning: 'Measurement Group' },
  trackingId: { value: '112039', scheme: 'DCM', meaning: 'Tracking Identifier' },
  trackingUid: { value: '112040', scheme: 'DCM', meaning: 'Tracking Unique Identifier' },
  algorithmName: { value: '111001', scheme: 'DCM', meaning: 'Algorithm Name' },
  algorithmVersion: { value: '111003', scheme: 'DCM', meaning: 'Algorithm Version' },
  algorithmParameters: { value: '111002', scheme: 'DCM', meaning: 'Algorithm Parameters' },
  finding: { value: '121071', scheme: 'DCM', meaning: 'Finding' },
  covid19: { value: '840539006', scheme: 'SCT', meaning: 'COVID-19' },
  sourceOfMeasurement: { value: '121112', scheme: 'DCM', meaning: 'Source of Measurement' },
  comment: { value: '121106', scheme: 'DCM', meaning: 'Comment' },
  qualitative: { value: 'C0034375', scheme: 'UMLS', meaning: 'Qualitative Evaluations' },
  seriesProbability: { value: 'SERIES-PROB', scheme: LOCAL_SCHEME, meaning: 'COVID-19 pattern probability, series' },
  sliceProbability: { value: 'SLICE-PROB', scheme: LOCAL_SCHEME, meaning: 'COVID-19 pattern probability, slice' },
  threshold: { value: 'THRESHOLD', scheme: LOCAL_SCHEME, meaning: 'Decision threshold' },
  category: { value: 'CATEGORY', scheme: LOCAL_SCHEME, meaning: 'AI result category' },
  status: { value: 'STATUS', scheme: LOCAL_SCHEME, meaning: 'AI result status' },
  scored: { value: 'SCORED', scheme: LOCAL_SCHEME, meaning: 'Scored' },
  notScored: { value: 'NOT-SCORED', scheme: LOCAL_SCHEME, meaning: 'Not scored' },
} satisfies Record<string, Code>;

const CATEGORY: Record<string, Code> = {
  likely: { value: 'LIKELY', scheme: LOCAL_SCHEME, meaning: 'COVID-19 pattern likely' },
  indeterminate: { value: 'INDETERMINATE', scheme: LOCAL_SCHEME, meaning: 'COVID-19 pattern indeterminate' },
  unlikely: { value: 'UNLIKELY', scheme: LOCAL_SCHEME, meaning: 'COVID-19 pattern unlikely' },
};

type Rel = 'CONTAINS' | 'HAS OBS CONTEXT' | 'HAS CONCEPT MOD' | 'INFERRED FROM';

const T = {
  relationship: tagOf(0x0040, 0xa010),
  valueType: tagOf(0x0040, 0xa040),
  conceptName: tagOf(0x0040, 0xa043),
  continuity: tagOf(0x0040, 0xa050),
  content: tagOf(0x0040, 0xa730),
  text: tagOf(0x0040, 0xa160),
  conceptCode: tagOf(0x0040, 0xa168),
  uid: tagOf(0x0040, 0xa124),
  measured: tagOf(0x0040, 0xa300),
  units: tagOf(0x0040, 0x08ea),
  numeric: tagOf(0x0040, 0xa30a),
  refSop: tagOf(0x0008, 0x1199),
  refClass: tagOf(0x0008, 0x1150),
  refInstance: tagOf(0x0008, 0x1155),
  template: tagOf(0x0040, 0xa504),
  mappingResource: tagOf(0x0008, 0x0105),
  templateId: tagOf(0x0040, 0xdb00),
  refSeries: tagOf(0x0008, 0x1115),
  studyUid: tagOf(0x0020, 0x000d),
  seriesUid: tagOf(0x0020, 0x000e),
} as const;

function item(rel: Rel | null, valueType: string, concept: Code, children: Dataset[] = []): Dataset {
  const ds: Dataset = new Map();
  if (rel) setString(ds, T.relationship, 'CS', rel);
  setString(ds, T.valueType, 'CS', valueType);
  setCode(ds, T.conceptName, concept);
  if (children.length) setSequence(ds, T.content, children);
  return ds;
}

function container(rel: Rel | null, concept: Code, children: Dataset[]): Dataset {
  const ds = item(rel, 'CONTAINER', concept, children);
  setString(ds, T.continuity, 'CS', 'SEPARATE');
  return ds;
}

function text(rel: Rel, concept: Code, value: string): Dataset {
  const ds = item(rel, 'TEXT', concept);
  setString(ds, T.text, 'UT', value);
  return ds;
}

function code(rel: Rel, concept: Code, value: Code): Dataset {
  const ds = item(rel, 'CODE', concept);
  setSequence(ds, T.conceptCode, [codeItem(value)]);
  return ds;
}

function uidref(rel: Rel, concept: Code, uid: string): Dataset {
  const ds = item(rel, 'UIDREF', concept);
  setString(ds, T.uid, 'UI', uid);
  return ds;
}

function num(rel: Rel, concept: Code, value: number, units: Code, children: Dataset[] = []): Dataset {
  const ds = item(rel, 'NUM', concept, children);
  const mv: Dataset = new Map();
  setSequence(mv, T.units, [codeItem(units)]);
  setString(mv, T.numeric, 'DS', formatDs(value, 4));
  setSequence(ds, T.measured, [mv]);
  return ds;
}

function sopRef(sopClassUid: string, sopInstanceUid: string): Dataset {
  const ds: Dataset = new Map();
  setString(ds, T.refClass, 'UI', sopClassUid);
  setString(ds, T.refInstance, 'UI', sopInstanceUid);
  return ds;
}

function image(rel: Rel, concept: Code, sopClassUid: string, sopInstanceUid: string): Dataset {
  const ds = item(rel, 'IMAGE', concept);
  setSequence(ds, T.refSop, [sopRef(sopClassUid, sopInstanceUid)]);
  return ds;
}

/** Hierarchical SOP Instance Reference Macro items (one study). */
export function hierarchicalReference(studyUid: string, series: Map<string, { sopClassUid: string; sopInstanceUid: string }[]>): Dataset[] {
  const seriesItems: Dataset[] = [];
  for (const [seriesUid, refs] of series) {
    const s: Dataset = new Map();
    setString(s, T.seriesUid, 'UI', seriesUid);
    setSequence(s, T.refSop, refs.map((r) => sopRef(r.sopClassUid, r.sopInstanceUid)));
    seriesItems.push(s);
  }
  const study: Dataset = new Map();
  setString(study, T.studyUid, 'UI', studyUid);
  setSequence(study, T.refSeries, seriesItems);
  return [study];
}

export interface SrInput {
  record: ResultRecord;
  source: SourceInstance;
  model: ModelInfo;
  sopInstanceUid: string;
  seriesInstanceUid: string;
  seriesNumber: number;
  deviceObserverUid: string;
  trackingUid: string;
  aeTitle: string;
  when: DicomDateTime;
  /** Every source instance used (scored slices; for a series not scored, the instances received). */
  evidence: { sopClassUid: string; sopInstanceUid: string }[];
  /** Earlier SRs of this series (Predecessor Documents Sequence). */
  predecessors: { seriesInstanceUid: string; sopInstanceUid: string }[];
  /** Window and aggregation, for Algorithm Parameters. */
  parameters: string;
}

function fmt(p: number | undefined): string {
  return p === undefined ? '?' : p.toFixed(3);
}

/** The SR dataset (without file meta). */
export function buildSr(inp: SrInput): Dataset {
  const { record: r, source, model } = inp;
  const scored = r.status === 'scored';
  const ds: Dataset = new Map();
  copyPatientStudy(ds, source);
  // SOP Common
  setString(ds, tagOf(0x0008, 0x0016), 'UI', COMPREHENSIVE_3D_SR);
  setString(ds, tagOf(0x0008, 0x0018), 'UI', inp.sopInstanceUid);
  setString(ds, tagOf(0x0008, 0x0012), 'DA', inp.when.date);
  setString(ds, tagOf(0x0008, 0x0013), 'TM', inp.when.time);
  setCodingSchemes(ds);
  setContributingEquipment(ds, model, inp.when);
  // SR Document Series
  setString(ds, tagOf(0x0008, 0x0060), 'CS', 'SR');
  setString(ds, tagOf(0x0020, 0x000e), 'UI', inp.seriesInstanceUid);
  setString(ds, tagOf(0x0020, 0x0011), 'IS', String(inp.seriesNumber));
  setString(ds, tagOf(0x0008, 0x0021), 'DA', inp.when.date);
  setString(ds, tagOf(0x0008, 0x0031), 'TM', inp.when.time);
  setString(ds, tagOf(0x0008, 0x103e), 'LO', `${NOT_FOR_DIAGNOSTIC_USE} - AI report ${model.name} ${model.version}`);
  setSequence(ds, tagOf(0x0008, 0x1111), []);
  // General + Enhanced General Equipment
  setEquipment(ds, inp.aeTitle);
  // SR Document General
  setString(ds, tagOf(0x0020, 0x0013), 'IS', '1');
  setString(ds, tagOf(0x0040, 0xa491), 'CS', 'COMPLETE');
  setString(ds, tagOf(0x0040, 0xa493), 'CS', 'UNVERIFIED');
  setString(ds, tagOf(0x0008, 0x0023), 'DA', inp.when.date);
  setString(ds, tagOf(0x0008, 0x0033), 'TM', inp.when.time);
  setSequence(ds, tagOf(0x0040, 0xa372), []);
  const bySeries = new Map<string, { sopClassUid: string; sopInstanceUid: string }[]>();
  if (inp.evidence.length) bySeries.set(r.seriesInstanceUid, inp.evidence);
  if (bySeries.size) setSequence(ds, tagOf(0x0040, 0xa375), hierarchicalReference(r.studyInstanceUid, bySeries));
  if (inp.predecessors.length) {
    const prev = new Map<string, { sopClassUid: string; sopInstanceUid: string }[]>();
    for (const p of inp.predecessors) {
      const list = prev.get(p.seriesInstanceUid) ?? [];
      list.push({ sopClassUid: COMPREHENSIVE_3D_SR, sopInstanceUid: p.sopInstanceUid });
      prev.set(p.seriesInstanceUid, list);
    }
    setSequence(ds, tagOf(0x0040, 0xa360), hierarchicalReference(r.studyInstanceUid, prev));
  }

  // Content tree
  const children: Dataset[] = [
    code('HAS CONCEPT MOD', C.language, C.english),
    code('HAS OBS CONTEXT', C.observerType, C.device),
    uidref('HAS OBS CONTEXT', C.deviceUid, inp.deviceObserverUid),
    text('HAS OBS CONTEXT', C.deviceName, inp.aeTitle),
    text('HAS OBS CONTEXT', C.deviceManufacturer, MANUFACTURER),
    text('HAS OBS CONTEXT', C.deviceModel, `${model.name} ${model.version}`),
    code('HAS CONCEPT MOD', C.procedureReported, C.ctChest),
  ];
  const algorithm = [
    text('HAS OBS CONTEXT', C.algorithmName, model.name),
    text('HAS OBS CONTEXT', C.algorithmVersion, model.version),
    text('HAS OBS CONTEXT', C.algorithmParameters, inp.parameters),
  ];
  if (scored) {
    const category = CATEGORY[r.category ?? ''];
    const slicesById = new Map(r.slices.map((s) => [s.sopInstanceUid, s]));
    const keyItems = r.keySlices.map((k) => {
      const s = slicesById.get(k.sopInstanceUid);
      return num('CONTAINS', C.sliceProbability, k.probability, Codes.noUnits, [
        image('INFERRED FROM', C.sourceOfMeasurement, s?.sopClassUid ?? source.sopClassUid, k.sopInstanceUid),
      ]);
    });
    const keyText = r.keySlices
      .map((k) => {
        const s = slicesById.get(k.sopInstanceUid);
        return `slice ${k.index + 1}${s?.instanceNumber !== null && s?.instanceNumber !== undefined ? ` (instance ${s.instanceNumber})` : ''}: ${fmt(k.probability)}`;
      })
      .join('; ');
    const summary =
      `${NOT_FOR_DIAGNOSTIC_USE}. Research software output, not verified by a physician. ` +
      `${model.name} ${model.version}: COVID-19 pneumonia pattern probability ${fmt(r.score)} for this series ` +
      `(${r.category ?? '?'}; threshold ${fmt(r.threshold)}, indeterminate within +/-${fmt(r.indeterminateMargin)}; ` +
      `mean of the top ${r.k ?? '?'} of ${r.slices.length} slices). Key slices: ${keyText || 'none'}.`;
    const group = container('CONTAINS', C.measurementGroup, [
      text('HAS OBS CONTEXT', C.trackingId, `COVID-19 pattern, series ${source.seriesNumber ?? ''}`.trim()),
      uidref('HAS OBS CONTEXT', C.trackingUid, inp.trackingUid),
      ...algorithm,
      code('HAS CONCEPT MOD', C.finding, C.covid19),
      num('CONTAINS', C.seriesProbability, r.score ?? 0, Codes.noUnits),
      num('CONTAINS', C.threshold, r.threshold ?? 0, Codes.noUnits),
      ...(category ? [code('CONTAINS', C.category, category)] : []),
      ...keyItems,
      text('CONTAINS', C.comment, summary),
    ]);
    children.push(container('CONTAINS', C.imagingMeasurements, [group]));
    children.push(container('CONTAINS', C.qualitative, [
      code('CONTAINS', C.status, C.scored),
      text('CONTAINS', C.comment, `${NOT_FOR_DIAGNOSTIC_USE}. ${model.name} ${model.version}: ${r.category ?? '?'} (${fmt(r.score)}).`),
    ]));
  } else {
    children.push(container('CONTAINS', C.qualitative, [
      code('CONTAINS', C.status, C.notScored),
      text('CONTAINS', C.comment, `Not scored: ${r.reason ?? r.status}.`),
      text('CONTAINS', C.algorithmName, model.name),
      text('CONTAINS', C.algorithmVersion, model.version),
      text('CONTAINS', C.comment, `${NOT_FOR_DIAGNOSTIC_USE}. The series was received by ${MANUFACTURER} but the model did not score it.`),
    ]));
  }
  // SR Document Content: the root content item.
  setString(ds, T.valueType, 'CS', 'CONTAINER');
  setCode(ds, T.conceptName, C.report);
  setString(ds, T.continuity, 'CS', 'SEPARATE');
  const tmpl: Dataset = new Map();
  setString(tmpl, T.mappingResource, 'CS', 'DCMR');
  setString(tmpl, T.templateId, 'CS', '1500');
  setSequence(ds, T.template, [tmpl]);
  setSequence(ds, T.content, children);
  return ds;
}
