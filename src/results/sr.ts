/**
 * The Structured Report: Comprehensive 3D SR structured after TID 1500 (Measurement Report) for a
 * scored series, laid out so that viewers which read TID 1500 (OHIF and others) find a region on a CT image for every
 * measurement group, jump to it and print its values.
 *
 *   CONTAINER (126000, DCM, "Imaging Measurement Report")                           TID 1500
 *     HAS CONCEPT MOD  Language = English                                           TID 1204
 *     HAS OBS CONTEXT  Observer Type = Device, Device Observer UID/Name/...         TID 1001/1004
 *     HAS CONCEPT MOD  Procedure reported = CT of chest
 *     CONTAINS CONTAINER Image Library                                              TID 1600
 *       CONTAINS CONTAINER Image Library Group (Modality CT, Target Region Chest)
 *         CONTAINS IMAGE   every CT slice the measurements point at
 *     CONTAINS CONTAINER Imaging Measurements                        (scored)
 *       CONTAINS CONTAINER Measurement Group: the series                            TID 1411
 *         Tracking Identifier/UID, Finding COVID-19, algorithm                       TID 4108, 4019
 *         CONTAINS SCOORD Image Region: what the model analysed on each slice the score averages
 *         CONTAINS NUM    series probability, decision threshold, lung opacity (% of lung volume,
 *                         ml; both lungs, right, left; when the model work gives them)   TID 1419
 *         CONTAINS CODE   category (likely / indeterminate / unlikely)
 *       CONTAINS CONTAINER Measurement Group: one per key slice, best first          TID 1501
 *         Tracking Identifier/UID, Finding COVID-19, Finding Site Lung, algorithm
 *         CONTAINS TEXT   Comment: the series result in one line
 *         CONTAINS NUM    slice probability, opacity and high opacity (% of the slice's lung area),
 *                         area of the outlined region                               TID 300
 *           INFERRED FROM SCOORD: the region (outline, else its peak) SELECTED FROM the CT slice  TID 320
 *     CONTAINS CONTAINER Qualitative Evaluations
 *       CONTAINS CODE    AI result status (scored)
 *       CONTAINS TEXT    Comment: summary, NOT FOR DIAGNOSTIC USE
 *
 * A series not scored gets a Basic Diagnostic Imaging Report (TID 2000): language, observer, and
 * a Findings section with the status "Not scored", the reason and NOT FOR DIAGNOSTIC USE.
 *
 * DCM, SCT and UCUM codes where they exist; concepts DICOM has no code for (the probabilities,
 * threshold, category, opacity burden) use the local scheme 99MLSAM, declared in the Coding Scheme
 * Identification Sequence.
 */
import { bandsLegend, categoryWithBand } from '../model/category-band.js';
import { THICK_SLICE_NOTE_MM } from '../model/opacity.js';
import { patternWording } from '../model/pattern-rule.js';
import type { OpacityMeasure, ResultKeySlice, ResultRecord, SeriesZonesRecord } from '../contracts/result-record.js';
import { ZONE_NAMES, type ZoneName } from '../model/zones.js';
import {
  howScored,
  LOCAL_SCHEME,
  MANUFACTURER,
  NOT_FOR_DIAGNOSTIC_USE,
  setCodingSchemes,
  setObjectHeader,
  type DocumentInput,
  type ModelInfo,
} from './common.js';
import {
  code,
  container,
  hierarchicalReference,
  image,
  languageAndDeviceObserver,
  num,
  scoord,
  setDocumentContent,
  text,
  uidref,
  type Rel,
  type SopRef,
} from './content.js';
import { setSequence, setString, tagOf, type Code, type Dataset } from './dataset.js';
import { analysedRegion, keyRegionGraphic, type SliceGeometry } from './regions.js';

export const COMPREHENSIVE_3D_SR = '1.2.840.10008.5.1.4.1.1.88.34';

const C = {
  report: { value: '126000', scheme: 'DCM', meaning: 'Imaging Measurement Report' },
  diagnosticReport: { value: '18748-4', scheme: 'LN', meaning: 'Diagnostic Imaging Report' },
  findings: { value: '121070', scheme: 'DCM', meaning: 'Findings' },
  procedureReported: { value: '121058', scheme: 'DCM', meaning: 'Procedure reported' },
  ctChest: { value: '169069000', scheme: 'SCT', meaning: 'CT of chest' },
  imageLibrary: { value: '111028', scheme: 'DCM', meaning: 'Image Library' },
  imageLibraryGroup: { value: '126200', scheme: 'DCM', meaning: 'Image Library Group' },
  modality: { value: '121139', scheme: 'DCM', meaning: 'Modality' },
  ct: { value: 'CT', scheme: 'DCM', meaning: 'Computed Tomography' },
  targetRegion: { value: '123014', scheme: 'DCM', meaning: 'Target Region' },
  chest: { value: '51185008', scheme: 'SCT', meaning: 'Chest' },
  imagingMeasurements: { value: '126010', scheme: 'DCM', meaning: 'Imaging Measurements' },
  derivedImagingMeasurements: { value: '126011', scheme: 'DCM', meaning: 'Derived Imaging Measurements' },
  measurementGroup: { value: '125007', scheme: 'DCM', meaning: 'Measurement Group' },
  trackingId: { value: '112039', scheme: 'DCM', meaning: 'Tracking Identifier' },
  trackingUid: { value: '112040', scheme: 'DCM', meaning: 'Tracking Unique Identifier' },
  algorithmName: { value: '111001', scheme: 'DCM', meaning: 'Algorithm Name' },
  algorithmVersion: { value: '111003', scheme: 'DCM', meaning: 'Algorithm Version' },
  algorithmParameters: { value: '111002', scheme: 'DCM', meaning: 'Algorithm Parameters' },
  finding: { value: '121071', scheme: 'DCM', meaning: 'Finding' },
  covid19: { value: '840539006', scheme: 'SCT', meaning: 'COVID-19' },
  findingSite: { value: '363698007', scheme: 'SCT', meaning: 'Finding Site' },
  lung: { value: '39607008', scheme: 'SCT', meaning: 'Lung' },
  rightLung: { value: '3341006', scheme: 'SCT', meaning: 'Right lung' },
  leftLung: { value: '44029006', scheme: 'SCT', meaning: 'Left lung' },
  imageRegion: { value: '111030', scheme: 'DCM', meaning: 'Image Region' },
  sourceOfMeasurement: { value: '121112', scheme: 'DCM', meaning: 'Source of Measurement' },
  area: { value: '42798000', scheme: 'SCT', meaning: 'Area' },
  volume: { value: '118565006', scheme: 'SCT', meaning: 'Volume' },
  comment: { value: '121106', scheme: 'DCM', meaning: 'Comment' },
  qualitative: { value: 'C0034375', scheme: 'UMLS', meaning: 'Qualitative Evaluations' },
  seriesProbability: { value: 'SERIES-PROB', scheme: LOCAL_SCHEME, meaning: 'Series probability' },
  sliceProbability: { value: 'SLICE-PROB', scheme: LOCAL_SCHEME, meaning: 'Slice probability' },
  cnnSeriesProbability: { value: 'CNN-SERIES-PROB', scheme: LOCAL_SCHEME, meaning: 'Series probability, CNN only' },
  cnnSliceProbability: { value: 'CNN-SLICE-PROB', scheme: LOCAL_SCHEME, meaning: 'Slice probability, CNN only' },
  threshold: { value: 'THRESHOLD', scheme: LOCAL_SCHEME, meaning: 'Decision threshold' },
  category: { value: 'CATEGORY', scheme: LOCAL_SCHEME, meaning: 'AI result category' },
  opacityVolumePercent: { value: 'OPACITY-PCT-VOL', scheme: LOCAL_SCHEME, meaning: 'Opacity, % of lung volume' },
  highOpacityVolumePercent: { value: 'HIGH-OPACITY-PCT-VOL', scheme: LOCAL_SCHEME, meaning: 'High opacity, % of lung volume' },
  opacityVolume: { value: 'OPACITY-VOL', scheme: LOCAL_SCHEME, meaning: 'Opacity volume' },
  highOpacityVolume: { value: 'HIGH-OPACITY-VOL', scheme: LOCAL_SCHEME, meaning: 'High opacity volume' },
  opacityAreaPercent: { value: 'OPACITY-PCT-AREA', scheme: LOCAL_SCHEME, meaning: 'Opacity, % of lung on slice' },
  highOpacityAreaPercent: { value: 'HIGH-OPACITY-PCT-AREA', scheme: LOCAL_SCHEME, meaning: 'High opacity, % of lung on slice' },
  status: { value: 'STATUS', scheme: LOCAL_SCHEME, meaning: 'AI result status' },
  patternDescription: { value: 'PATTERN', scheme: LOCAL_SCHEME, meaning: 'Automated pattern description' },
  zoneScore: { value: 'ZONE-SCORE', scheme: LOCAL_SCHEME, meaning: 'Zone severity score' },
  zoneOpacityPercent: { value: 'OPACITY-PCT-ZONE', scheme: LOCAL_SCHEME, meaning: 'Opacity, % of zone volume' },
  zoneHighOpacityPercent: { value: 'HIGH-OPACITY-PCT-ZONE', scheme: LOCAL_SCHEME, meaning: 'High opacity, % of zone volume' },
  topographicalModifier: { value: '106233006', scheme: 'SCT', meaning: 'Topographical modifier' },
  upper: { value: '261183002', scheme: 'SCT', meaning: 'Upper' },
  middle: { value: '255562008', scheme: 'SCT', meaning: 'Mid' },
  lower: { value: '261122009', scheme: 'SCT', meaning: 'Lower' },
  scored: { value: 'SCORED', scheme: LOCAL_SCHEME, meaning: 'Scored' },
  notScored: { value: 'NOT-SCORED', scheme: LOCAL_SCHEME, meaning: 'Not scored' },
} satisfies Record<string, Code>;

const U = {
  percent: { value: '%', scheme: 'UCUM', meaning: 'percent' },
  ml: { value: 'ml', scheme: 'UCUM', meaning: 'milliliter' },
  mm2: { value: 'mm2', scheme: 'UCUM', meaning: 'square millimeter' },
  score: { value: '{score}', scheme: 'UCUM', meaning: 'score' },
} satisfies Record<string, Code>;

const CATEGORY: Record<string, Code> = {
  likely: { value: 'LIKELY', scheme: LOCAL_SCHEME, meaning: 'COVID-19 pattern likely' },
  indeterminate: { value: 'INDETERMINATE', scheme: LOCAL_SCHEME, meaning: 'COVID-19 pattern indeterminate' },
  unlikely: { value: 'UNLIKELY', scheme: LOCAL_SCHEME, meaning: 'COVID-19 pattern unlikely' },
};

/** One key slice as the SR sees it: its record entry, the CT slice it names and that slice's size. */
export interface SrKeySlice {
  key: ResultKeySlice;
  ref: SopRef;
  geometry: SliceGeometry;
  /** The CT slice's Instance Number. */
  instanceNumber: number | null;
}

export interface SrInput extends DocumentInput {
  /** Tracking Unique Identifier of a measurement group: 'series' or the key slice's SOP Instance UID. */
  trackingUid: (of: string) => string;
  /** Every source instance used (scored slices; for a series not scored, the instances received). */
  evidence: SopRef[];
  /** The key slices, best first (scored series). */
  keySlices: SrKeySlice[];
  /** Earlier SRs of this series (Predecessor Documents Sequence). */
  predecessors: { seriesInstanceUid: string; sopInstanceUid: string }[];
  /** Window and aggregation, for Algorithm Parameters. */
  parameters: string;
}

function fmt(p: number | undefined, d = 3): string {
  return p === undefined ? '?' : p.toFixed(d);
}

/**
 * A probability or threshold (0..1) as a NUM in percent (UCUM "%", two decimals: the precision of four decimals
 * of the fraction). OHIF 3.13.2 prints a NUM as its value and the unit's code value, so UCUM "1" ("no units")
 * showed as "0.63 1"; "%" reads as "63.00 %".
 */
function probabilityNum(rel: Rel, concept: Code, p: number, children: Dataset[] = []): Dataset {
  return num(rel, concept, p * 100, U.percent, children, 2);
}

/** TID 4019 Algorithm Identification (HAS CONCEPT MOD), with the parameters when given. */
function algorithm(model: ModelInfo, parameters?: string): Dataset[] {
  return [
    text('HAS CONCEPT MOD', C.algorithmName, model.name),
    text('HAS CONCEPT MOD', C.algorithmVersion, model.version),
    ...(parameters ? [text('HAS CONCEPT MOD', C.algorithmParameters, parameters)] : []),
  ];
}

function opacityNums(rel: Rel, m: OpacityMeasure, site: Code): Dataset[] {
  const mod = [code('HAS CONCEPT MOD', C.findingSite, site)];
  const withSite = (concept: Code, value: number, units: Code) => num(rel, concept, value, units, mod, 2);
  return [
    withSite(C.opacityVolumePercent, m.percentOpacity, U.percent),
    withSite(C.highOpacityVolumePercent, m.percentHighOpacity, U.percent),
    withSite(C.opacityVolume, m.opacityMl, U.ml),
    withSite(C.highOpacityVolume, m.highOpacityMl, U.ml),
    withSite(C.volume, m.lungMl, U.ml),
  ];
}

/**
 * The series-level measurement group (TID 1411, the volume being the regions the model analysed on
 * the slices the score averages). Its numbers hang below the items they qualify: the opacity
 * burden as properties of the finding, the probability and threshold as what the category was
 * inferred from (and the CNN-only probability below the fused one), so that a viewer that prints
 * a group's top-level numbers next to its region draws none here: the key slice groups carry the
 * series result as their first line, and two text boxes on the first key slice would overlap.
 */
function seriesGroup(inp: SrInput): Dataset {
  const { record: r, model } = inp;
  const category = CATEGORY[r.category ?? ''];
  const used = inp.keySlices.slice(0, Math.max(1, Math.min(r.k ?? inp.keySlices.length, inp.keySlices.length)));
  const o = r.opacity;
  const probability = probabilityNum(
    r.category ? 'INFERRED FROM' : 'CONTAINS',
    C.seriesProbability,
    r.score ?? 0,
    r.cnnScore !== undefined ? [probabilityNum('INFERRED FROM', C.cnnSeriesProbability, r.cnnScore)] : [],
  );
  const threshold = probabilityNum(r.category ? 'INFERRED FROM' : 'CONTAINS', C.threshold, r.threshold ?? 0);
  return container('CONTAINS', C.measurementGroup, [
    text('HAS OBS CONTEXT', C.trackingId, `COVID-19 pattern, series ${inp.source.seriesNumber ?? ''}`.trim()),
    uidref('HAS OBS CONTEXT', C.trackingUid, inp.trackingUid('series')),
    code(
      'CONTAINS',
      C.finding,
      C.covid19,
      o
        ? [
            ...opacityNums('HAS PROPERTIES', o.total, C.lung),
            ...opacityNums('HAS PROPERTIES', o.right, C.rightLung),
            ...opacityNums('HAS PROPERTIES', o.left, C.leftLung),
            ...(r.zones
              ? [num('HAS PROPERTIES', C.zoneScore, r.zones.score, U.score, [code('HAS CONCEPT MOD', C.findingSite, C.lung)], 0)]
              : []),
          ]
        : [],
    ),
    ...algorithm(model, inp.parameters),
    ...used.map((k) => scoord('CONTAINS', C.imageRegion, 'POLYLINE', analysedRegion(k.key, k.geometry), k.ref)),
    ...(category ? [code('CONTAINS', C.category, category, [probability, threshold])] : [probability, threshold]),
    // A viewer that loads the group as an editable measurement names it after this.
    text('CONTAINS', C.comment, seriesLines(r)[0] as string),
  ]);
}

/**
 * "Series 0.533: indeterminate (0.35-0.65)": the score, its category and the band of scores the
 * category covers (ASCII: DICOM text), so a score above the threshold does not read as positive.
 */
export function seriesBandLine(r: Pick<ResultRecord, 'score' | 'category' | 'threshold' | 'indeterminateMargin'>): string {
  if (r.category && r.threshold !== undefined && r.indeterminateMargin !== undefined) {
    return `Series ${fmt(r.score)}: ${categoryWithBand(r.category, { threshold: r.threshold, indeterminateMargin: r.indeterminateMargin }, { ascii: true })}`;
  }
  return `Series ${fmt(r.score)}: ${r.category ?? '?'} (thr. ${fmt(r.threshold)})`;
}

/** The lines every key slice group starts with (short: viewers print them beside the region): the series result and the lungs' opacity burden. */
export function seriesLines(r: ResultRecord): string[] {
  const o = r.opacity?.total;
  return [seriesBandLine(r), ...(o ? [`Lungs: opacity ${o.percentOpacity.toFixed(1)} %, high ${o.percentHighOpacity.toFixed(1)} %`] : [])];
}

/** One key slice's measurement group (TID 1501): every number INFERRED FROM the region on that CT slice. */
function keySliceGroup(inp: SrInput, k: SrKeySlice, i: number): Dataset {
  const { record: r, model } = inp;
  const region = keyRegionGraphic(k.key, k.geometry);
  const from = (): Dataset[] => [scoord('INFERRED FROM', C.sourceOfMeasurement, region.graphicType, region.points, k.ref)];
  const name = `Key slice ${i + 1} of ${inp.keySlices.length}${k.instanceNumber !== null ? `, instance ${k.instanceNumber}` : ''}`;
  const nums: Dataset[] = [probabilityNum('CONTAINS', C.sliceProbability, k.key.probability, from())];
  if (k.key.opacityPercent !== undefined) nums.push(num('CONTAINS', C.opacityAreaPercent, k.key.opacityPercent, U.percent, from(), 2));
  if (k.key.highOpacityPercent !== undefined)
    nums.push(num('CONTAINS', C.highOpacityAreaPercent, k.key.highOpacityPercent, U.percent, from(), 2));
  if (region.areaMm2 !== undefined) nums.push(num('CONTAINS', C.area, region.areaMm2, U.mm2, from(), 1));
  if (k.key.cnnProbability !== undefined) nums.push(probabilityNum('CONTAINS', C.cnnSliceProbability, k.key.cnnProbability, from()));
  return container('CONTAINS', C.measurementGroup, [
    text('HAS OBS CONTEXT', C.trackingId, name),
    uidref('HAS OBS CONTEXT', C.trackingUid, inp.trackingUid(k.ref.sopInstanceUid)),
    code('CONTAINS', C.finding, C.covid19),
    code('HAS CONCEPT MOD', C.findingSite, C.lung),
    ...algorithm(model),
    ...seriesLines(r).map((l) => text('CONTAINS', C.comment, l)),
    ...nums,
  ]);
}

/**
 * One zone's measurement group (TID 1501, no image region: a zone is a slab of a lung, src/model/zones.ts):
 * finding site the lung with a topographical modifier upper / mid / lower; opacity and high opacity as % of
 * the zone's lung volume, the volumes, and the zone's extent bin (0-5).
 */
function zoneGroup(inp: SrInput, side: 'right' | 'left', zone: ZoneName): Dataset {
  const { record: r, model } = inp;
  const m = (r.zones as SeriesZonesRecord)[side][zone];
  const site = side === 'right' ? C.rightLung : C.leftLung;
  const modifier = zone === 'upper' ? C.upper : zone === 'middle' ? C.middle : C.lower;
  return container('CONTAINS', C.measurementGroup, [
    text('HAS OBS CONTEXT', C.trackingId, `Zone ${side} ${zone}`),
    uidref('HAS OBS CONTEXT', C.trackingUid, inp.trackingUid(`zone:${side}:${zone}`)),
    code('CONTAINS', C.finding, C.covid19),
    code('HAS CONCEPT MOD', C.findingSite, site, [code('HAS CONCEPT MOD', C.topographicalModifier, modifier)]),
    ...algorithm(model),
    num('CONTAINS', C.zoneOpacityPercent, m.percentOpacity, U.percent, [], 2),
    num('CONTAINS', C.zoneHighOpacityPercent, m.percentHighOpacity, U.percent, [], 2),
    num('CONTAINS', C.opacityVolume, m.opacityMl, U.ml, [], 2),
    num('CONTAINS', C.highOpacityVolume, m.highOpacityMl, U.ml, [], 2),
    num('CONTAINS', C.volume, m.lungMl, U.ml, [], 2),
    num('CONTAINS', C.zoneScore, m.score, U.score, [], 0),
  ]);
}

/** The zone groups, right lung first, upper to lower (when the record has zones). */
function zoneGroups(inp: SrInput): Dataset[] {
  if (!inp.record.zones) return [];
  return (['right', 'left'] as const).flatMap((side) => ZONE_NAMES.map((z) => zoneGroup(inp, side, z)));
}

/** TID 1600 Image Library: the CT slices the measurements point at. */
function imageLibrary(refs: SopRef[]): Dataset {
  const group = container('CONTAINS', C.imageLibraryGroup, [
    code('HAS ACQ CONTEXT', C.modality, C.ct),
    code('HAS ACQ CONTEXT', C.targetRegion, C.chest),
    ...refs.map((ref) => image('CONTAINS', null, ref)),
  ]);
  return container('CONTAINS', C.imageLibrary, refs.length ? [group] : []);
}

/** Thick slices: partial volume makes the opacity measurement coarser (the ground-glass opening is widened). */
function thickSliceNote(o: ResultRecord['opacity']): string {
  if (!o || o.sliceThicknessMm === undefined || o.sliceThicknessMm <= THICK_SLICE_NOTE_MM) return '';
  const open = o.groundGlassOpenMm !== undefined ? ` (ground-glass opening widened to ${o.groundGlassOpenMm} mm)` : '';
  return ` Measured on ${o.sliceThicknessMm} mm slices${open}: partial volume makes opacity less exact than on thin slices.`;
}

/**
 * How the opacity is distributed, in words: the pattern category after the RSNA consensus with the criteria that
 * decided it. An automated description of the measurement, never a diagnosis (docs/pattern-rule.md).
 */
export function patternSentence(r: ResultRecord): string | undefined {
  const p = r.pattern;
  if (!p) return undefined;
  return (
    `Automated pattern description (rule ${p.rule}; describes the measured opacity, not a diagnosis): ` +
    `${patternWording(p.category)}${p.criteria.length ? ` (${p.criteria.join('; ')})` : ''}.`
  );
}

function summaryText(inp: SrInput): string {
  const { record: r, model } = inp;
  const keys = inp.keySlices
    .map((k) => `${k.instanceNumber !== null ? `instance ${k.instanceNumber}` : `slice ${k.key.index + 1}`}: ${fmt(k.key.probability)}`)
    .join('; ');
  const o = r.opacity?.total;
  return (
    `${NOT_FOR_DIAGNOSTIC_USE}. Research software output, not verified by a physician. ` +
    `${model.name} ${model.version}: COVID-19 pneumonia pattern probability ${fmt(r.score)} for this series ` +
    `(${r.category ?? '?'}${r.threshold !== undefined && r.indeterminateMargin !== undefined ? `: ${bandsLegend({ threshold: r.threshold, indeterminateMargin: r.indeterminateMargin }, { ascii: true })}` : ''}; ` +
    `threshold ${fmt(r.threshold)}, indeterminate within +/-${fmt(r.indeterminateMargin)}; ` +
    `${howScored(r)}).` +
    (o
      ? ` Lung opacity ${o.percentOpacity.toFixed(1)} % of lung volume (${o.opacityMl.toFixed(0)} of ${o.lungMl.toFixed(0)} ml), high opacity ${o.percentHighOpacity.toFixed(1)} %.`
      : '') +
    (r.zones
      ? ` Zone score ${r.zones.score}/30 (thirds of each lung's craniocaudal extent, Pan et al. extent bins per zone; not the lobar CT severity score).`
      : '') +
    thickSliceNote(r.opacity) +
    (r.pattern ? ` ${patternSentence(r)}` : '') +
    ` Key slices: ${keys || 'none'}.`
  );
}

/** The SR dataset (without file meta). */
export function buildSr(inp: SrInput): Dataset {
  const { record: r, source, model } = inp;
  const scored = r.status === 'scored';
  const ds: Dataset = new Map();
  setObjectHeader(ds, {
    source,
    model,
    sopClassUid: COMPREHENSIVE_3D_SR,
    sopInstanceUid: inp.sopInstanceUid,
    modality: 'SR',
    seriesInstanceUid: inp.seriesInstanceUid,
    seriesNumber: inp.seriesNumber,
    seriesDescription: 'AI report',
    instanceNumber: 1,
    aeTitle: inp.aeTitle,
    when: inp.when,
  });
  setCodingSchemes(ds);
  // SR Document Series, SR Document General
  setSequence(ds, tagOf(0x0008, 0x1111), []);
  setString(ds, tagOf(0x0040, 0xa491), 'CS', 'COMPLETE');
  setString(ds, tagOf(0x0040, 0xa493), 'CS', 'UNVERIFIED');
  setSequence(ds, tagOf(0x0040, 0xa372), []);
  if (inp.evidence.length) {
    setSequence(
      ds,
      tagOf(0x0040, 0xa375),
      hierarchicalReference(
        r.studyInstanceUid,
        inp.evidence.map((e) => ({ ...e, seriesInstanceUid: r.seriesInstanceUid })),
      ),
    );
  }
  if (inp.predecessors.length) {
    setSequence(
      ds,
      tagOf(0x0040, 0xa360),
      hierarchicalReference(
        r.studyInstanceUid,
        inp.predecessors.map((p) => ({ ...p, sopClassUid: COMPREHENSIVE_3D_SR })),
      ),
    );
  }

  // Content tree
  const children: Dataset[] = [...languageAndDeviceObserver(inp)];
  if (scored) {
    children.push(code('HAS CONCEPT MOD', C.procedureReported, C.ctChest));
    children.push(imageLibrary(inp.keySlices.map((k) => k.ref)));
    children.push(
      container('CONTAINS', C.imagingMeasurements, [seriesGroup(inp), ...inp.keySlices.map((k, i) => keySliceGroup(inp, k, i))]),
    );
    // The zones have no image region: in Derived Imaging Measurements (TID 1500 row 9), where viewers that
    // place every Imaging Measurements group on an image (OHIF 3.13.2 opened the SR blank with them there) do not look.
    const zones = zoneGroups(inp);
    if (zones.length) children.push(container('CONTAINS', C.derivedImagingMeasurements, zones));
    children.push(
      container('CONTAINS', C.qualitative, [
        code('CONTAINS', C.status, C.scored),
        ...(r.pattern ? [text('CONTAINS', C.patternDescription, patternSentence(r) as string)] : []),
        text('CONTAINS', C.comment, summaryText(inp)),
        ...studyLines(r).map((l) => text('CONTAINS', C.comment, l)),
      ]),
    );
    setDocumentContent(ds, C.report, '1500', children);
  } else {
    // Nothing was measured: a Basic Diagnostic Imaging Report (TID 2000) with one Findings section,
    // which viewers show as text (an empty TID 1500 report shows as an empty viewport).
    children.push(
      container('CONTAINS', C.findings, [
        code('CONTAINS', C.status, C.notScored),
        text('CONTAINS', C.finding, `Not scored: ${r.reason ?? r.status}.`),
        text('CONTAINS', C.algorithmName, model.name),
        text('CONTAINS', C.algorithmVersion, model.version),
        text(
          'CONTAINS',
          C.comment,
          r.study
            ? `${NOT_FOR_DIAGNOSTIC_USE}. The study was received by ${MANUFACTURER} but no series of it could be scored.`
            : `${NOT_FOR_DIAGNOSTIC_USE}. The series was received by ${MANUFACTURER} but the model did not score it.`,
        ),
      ]),
    );
    setDocumentContent(ds, C.diagnosticReport, '2000', children);
  }
  return ds;
}

const seriesName = (r: { seriesNumber: string; seriesDescription: string; seriesInstanceUid: string }): string =>
  `series ${r.seriesNumber || r.seriesInstanceUid}${r.seriesDescription ? ` (${r.seriesDescription})` : ''}`;

/**
 * One result per study: which series the result was computed on, and every other series of the
 * study with the reason it was not used (candidates first).
 */
export function studyLines(r: ResultRecord): string[] {
  if (!r.study) return [];
  const used = r.study.roles.find((x) => x.seriesInstanceUid === r.seriesInstanceUid);
  const lines = [
    `One result for the study: computed on ${used ? seriesName(used) : `series ${r.seriesInstanceUid}`}` +
      `${used ? `, chosen as ${used.reason}` : ''}.`,
  ];
  const others = r.study.roles.filter((x) => x.seriesInstanceUid !== r.seriesInstanceUid);
  const cands = others.filter((x) => x.role !== 'ignored');
  const ignored = others.filter((x) => x.role === 'ignored');
  if (cands.length)
    lines.push(
      `Candidates not used: ${cands.map((x) => `${seriesName(x)}: ${x.reason.replace(/^candidate not chosen: /, '')}`).join('; ')}.`,
    );
  if (ignored.length) lines.push(`Other series not scored: ${ignored.map((x) => `${seriesName(x)}: ${x.reason}`).join('; ')}.`);
  return lines;
}
