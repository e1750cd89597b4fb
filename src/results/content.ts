/**
 * SR content items (PS3.3 C.17.3) and the reference macros the SR and the Key Object Selection
 * document share: CONTAINER, TEXT, CODE, UIDREF, NUM, IMAGE, SCOORD items with their relationship,
 * the Hierarchical SOP Instance Reference Macro, and the SR Document Content root.
 */
import { MANUFACTURER } from './common.js';
import { codeItem, formatDs, setCode, setFL, setSequence, setString, tagOf, type Code, type Dataset } from './dataset.js';

export type Rel =
  | 'CONTAINS'
  | 'HAS OBS CONTEXT'
  | 'HAS CONCEPT MOD'
  | 'HAS ACQ CONTEXT'
  | 'HAS PROPERTIES'
  | 'INFERRED FROM'
  | 'SELECTED FROM';

/** A reference to one instance (SOP Class + SOP Instance UID). */
export interface SopRef {
  sopClassUid: string;
  sopInstanceUid: string;
}

export const T = {
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
  graphicData: tagOf(0x0070, 0x0022),
  graphicType: tagOf(0x0070, 0x0023),
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

/** A content item; `concept` null for the items PS3.16 leaves unnamed (an Image Library entry, SELECTED FROM). */
export function item(rel: Rel | null, valueType: string, concept: Code | null, children: Dataset[] = []): Dataset {
  const ds: Dataset = new Map();
  if (rel) setString(ds, T.relationship, 'CS', rel);
  setString(ds, T.valueType, 'CS', valueType);
  if (concept) setCode(ds, T.conceptName, concept);
  if (children.length) setSequence(ds, T.content, children);
  return ds;
}

export function container(rel: Rel | null, concept: Code, children: Dataset[]): Dataset {
  const ds = item(rel, 'CONTAINER', concept, children);
  setString(ds, T.continuity, 'CS', 'SEPARATE');
  return ds;
}

export function text(rel: Rel, concept: Code, value: string): Dataset {
  const ds = item(rel, 'TEXT', concept);
  setString(ds, T.text, 'UT', value);
  return ds;
}

export function code(rel: Rel, concept: Code, value: Code, children: Dataset[] = []): Dataset {
  const ds = item(rel, 'CODE', concept, children);
  setSequence(ds, T.conceptCode, [codeItem(value)]);
  return ds;
}

export function uidref(rel: Rel, concept: Code, uid: string): Dataset {
  const ds = item(rel, 'UIDREF', concept);
  setString(ds, T.uid, 'UI', uid);
  return ds;
}

/** A NUM; the value is written as a DS with at most `decimals` decimals. */
export function num(rel: Rel, concept: Code, value: number, units: Code, children: Dataset[] = [], decimals = 4): Dataset {
  const ds = item(rel, 'NUM', concept, children);
  const mv: Dataset = new Map();
  setSequence(mv, T.units, [codeItem(units)]);
  setString(mv, T.numeric, 'DS', formatDs(value, decimals));
  setSequence(ds, T.measured, [mv]);
  return ds;
}

export function sopRef(ref: SopRef): Dataset {
  const ds: Dataset = new Map();
  setString(ds, T.refClass, 'UI', ref.sopClassUid);
  setString(ds, T.refInstance, 'UI', ref.sopInstanceUid);
  return ds;
}

export function image(rel: Rel, concept: Code | null, ref: SopRef): Dataset {
  const ds = item(rel, 'IMAGE', concept);
  setSequence(ds, T.refSop, [sopRef(ref)]);
  return ds;
}

export type GraphicType = 'POINT' | 'MULTIPOINT' | 'POLYLINE' | 'CIRCLE' | 'ELLIPSE';

/**
 * A SCOORD in the image coordinates of `ref` (column, row; (0,0) is the top-left corner of the
 * top-left pixel), with its SELECTED FROM IMAGE child.
 */
export function scoord(rel: Rel, concept: Code | null, graphicType: GraphicType, points: readonly number[], ref: SopRef): Dataset {
  if (points.length < 2 || points.length % 2 !== 0 || !points.every(Number.isFinite))
    throw new Error(`SCOORD ${graphicType}: bad graphic data (${points.length} values)`);
  const ds = item(rel, 'SCOORD', concept, [image('SELECTED FROM', null, ref)]);
  setFL(ds, T.graphicData, points);
  setString(ds, T.graphicType, 'CS', graphicType);
  return ds;
}

/** Hierarchical SOP Instance Reference Macro items (one study), series in first-seen order. */
export function hierarchicalReference(studyUid: string, refs: readonly (SopRef & { seriesInstanceUid: string })[]): Dataset[] {
  const bySeries = new Map<string, SopRef[]>();
  for (const r of refs) {
    const list = bySeries.get(r.seriesInstanceUid) ?? [];
    list.push(r);
    bySeries.set(r.seriesInstanceUid, list);
  }
  const seriesItems: Dataset[] = [];
  for (const [seriesUid, list] of bySeries) {
    const s: Dataset = new Map();
    setString(s, T.seriesUid, 'UI', seriesUid);
    setSequence(s, T.refSop, list.map(sopRef));
    seriesItems.push(s);
  }
  const study: Dataset = new Map();
  setString(study, T.studyUid, 'UI', studyUid);
  setSequence(study, T.refSeries, seriesItems);
  return [study];
}

/** SR Document Content: the root CONTAINER, its template (DCMR `templateId`) and its children. */
export function setDocumentContent(ds: Dataset, title: Code, templateId: string, children: Dataset[]): void {
  setString(ds, T.valueType, 'CS', 'CONTAINER');
  setCode(ds, T.conceptName, title);
  setString(ds, T.continuity, 'CS', 'SEPARATE');
  const tmpl: Dataset = new Map();
  setString(tmpl, T.mappingResource, 'CS', 'DCMR');
  setString(tmpl, T.templateId, 'CS', templateId);
  setSequence(ds, T.template, [tmpl]);
  setSequence(ds, T.content, children);
}

const OBSERVER = {
  language: { value: '121049', scheme: 'DCM', meaning: 'Language of Content Item and Descendants' },
  english: { value: 'en', scheme: 'RFC5646', meaning: 'English' },
  observerType: { value: '121005', scheme: 'DCM', meaning: 'Observer Type' },
  device: { value: '121007', scheme: 'DCM', meaning: 'Device' },
  deviceUid: { value: '121012', scheme: 'DCM', meaning: 'Device Observer UID' },
  deviceName: { value: '121013', scheme: 'DCM', meaning: 'Device Observer Name' },
  deviceManufacturer: { value: '121014', scheme: 'DCM', meaning: 'Device Observer Manufacturer' },
  deviceModel: { value: '121015', scheme: 'DCM', meaning: 'Device Observer Model Name' },
} satisfies Record<string, Code>;

/**
 * The first items of every document's root: language English (TID 1204) and this node as the
 * device observer (TID 1002/1004: UID, name = AE title, manufacturer, model name and version).
 */
export function languageAndDeviceObserver(o: {
  aeTitle: string;
  model: { name: string; version: string };
  deviceObserverUid: string;
}): Dataset[] {
  return [
    code('HAS CONCEPT MOD', OBSERVER.language, OBSERVER.english),
    code('HAS OBS CONTEXT', OBSERVER.observerType, OBSERVER.device),
    uidref('HAS OBS CONTEXT', OBSERVER.deviceUid, o.deviceObserverUid),
    text('HAS OBS CONTEXT', OBSERVER.deviceName, o.aeTitle),
    text('HAS OBS CONTEXT', OBSERVER.deviceManufacturer, MANUFACTURER),
    text('HAS OBS CONTEXT', OBSERVER.deviceModel, `${o.model.name} ${o.model.version}`),
  ];
}
