/**
 * FHIR R4 for one result: a DiagnosticReport (status preliminary, category radiology/imaging, code
 * LOINC 24627-2 "CT Chest", conclusion, identifiers: the Study Instance UID as urn:dicom:uid and the
 * accession number as ACSN, imagingStudy as a logical reference by Study Instance UID) and one
 * Observation per finding (category, score, % opacity, % high opacity, and with lung zones the zone
 * score 0-30 with one component per zone: its % opacity), each PUT by an id derived
 * from the result: the same result PUT twice is the same resources (idempotent), a newer result
 * of the series gets new ids. Observations first, so the report's references resolve.
 */
import type { CodeableConcept, DiagnosticReport, Identifier, Observation, Reference } from 'fhir/r4.js';
import type { FhirNotification } from '../config/targets.js';
import type { ResultRecord } from '../contracts/result-record.js';
import {
  CATEGORY_TEXT,
  NOT_FOR_DIAGNOSTIC_USE,
  ZONE_DEFINITION,
  conclusionText,
  resultDigest,
  resultNumbers,
  round,
  zoneFigures,
} from './notification-content.js';
import { describeResponse, httpRequestTo } from './http-request.js';
import type { StudyFacts } from './study-facts.js';

/** Our own observation codes (no LOINC code exists for these measurements). */
export const MLSAM_CODE_SYSTEM = 'urn:mlsam-node:observation';

export interface FhirBundle {
  report: DiagnosticReport;
  observations: Observation[];
}

const dicomUid = (uid: string): Identifier => ({ system: 'urn:dicom:uid', value: `urn:oid:${uid}` });
const acsn = (value: string): Identifier => ({
  type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'ACSN', display: 'Accession ID' }] },
  value,
});

/** DICOM DA (+ TM) → FHIR dateTime (UTC assumed when the header has no offset; date only when no time). */
function fhirDateTime(da: string, tm: string): string | undefined {
  const d = /^(\d{4})(\d{2})(\d{2})$/.exec(da);
  if (!d) return undefined;
  const t = /^(\d{2})(\d{2})(\d{2})?/.exec(tm.trim());
  if (!t) return `${d[1]}-${d[2]}-${d[3]}`;
  return `${d[1]}-${d[2]}-${d[3]}T${t[1]}:${t[2]}:${t[3] ?? '00'}Z`;
}

export function fhirReportId(record: ResultRecord, target: Pick<FhirNotification, 'name'>): string {
  return `mlsam-${resultDigest(record, `fhir:${target.name}`).slice(0, 40)}`;
}

export function buildFhirBundle(record: ResultRecord, facts: StudyFacts, target: FhirNotification): FhirBundle {
  const id = fhirReportId(record, target);
  const subject: Reference | undefined = facts.patientId
    ? {
        type: 'Patient',
        identifier: { value: facts.patientId, ...(facts.issuerOfPatientId ? { assigner: { display: facts.issuerOfPatientId } } : {}) },
      }
    : undefined;
  const study: Reference = { type: 'ImagingStudy', identifier: dicomUid(record.studyInstanceUid) };
  const effective = fhirDateTime(facts.studyDate, facts.studyTime);
  const issued = new Date(record.finishedAt ?? record.startedAt).toISOString();
  const device = { display: `${record.model.name} ${record.model.version} (${NOT_FOR_DIAGNOSTIC_USE})` };
  const imagingCategory: CodeableConcept = {
    coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'imaging', display: 'Imaging' }],
  };
  const obs = (
    suffix: string,
    code: string,
    display: string,
    value: Partial<Pick<Observation, 'valueQuantity' | 'valueCodeableConcept' | 'bodySite' | 'component'>>,
  ): Observation => ({
    resourceType: 'Observation',
    id: `${id}-${suffix}`,
    identifier: [{ system: 'urn:ietf:rfc:3986', value: `urn:mlsam-node:${id}-${suffix}` }],
    status: 'preliminary',
    category: [imagingCategory],
    code: { coding: [{ system: MLSAM_CODE_SYSTEM, code, display }], text: display },
    ...(subject ? { subject } : {}),
    ...(effective ? { effectiveDateTime: effective } : {}),
    issued,
    device,
    derivedFrom: [study],
    note: [{ text: `${NOT_FOR_DIAGNOSTIC_USE}. Series ${record.seriesInstanceUid}.` }],
    ...value,
  });
  const pct = (v: number) => ({ valueQuantity: { value: round(v, 2), unit: '%', system: 'http://unitsofmeasure.org', code: '%' } });
  const observations: Observation[] = [];
  if (record.status === 'scored' && record.category) {
    observations.push(
      obs('category', 'covid-category', 'COVID-19 pneumonia pattern category', {
        valueCodeableConcept: {
          coding: [{ system: MLSAM_CODE_SYSTEM, code: record.category, display: CATEGORY_TEXT[record.category] }],
          text: CATEGORY_TEXT[record.category],
        },
      }),
    );
    const n = resultNumbers(record);
    if (n.score !== undefined) {
      observations.push(
        obs('score', 'covid-score', 'COVID-19 pneumonia pattern score (0-1)', {
          valueQuantity: { value: round(n.score, 4), unit: '1', system: 'http://unitsofmeasure.org', code: '1' },
        }),
      );
    }
    if (n.opacityPercent !== undefined)
      observations.push(obs('opacity', 'lung-opacity-percent', 'Lung opacity, % of lung volume', pct(n.opacityPercent)));
    if (n.highOpacityPercent !== undefined) {
      observations.push(
        obs('high-opacity', 'lung-high-opacity-percent', 'Lung high opacity (consolidation), % of lung volume', pct(n.highOpacityPercent)),
      );
    }
    const zones = zoneFigures(record);
    if (zones) {
      observations.push(
        obs('zones', 'lung-zone-score', `Lung zone score 0-30 (${ZONE_DEFINITION})`, {
          valueQuantity: { value: zones.score, unit: 'score', system: 'http://unitsofmeasure.org', code: '{score}' },
          bodySite: { coding: [{ system: 'http://snomed.info/sct', code: '39607008', display: 'Lung structure' }], text: 'Lung' },
          component: zones.zones.map((z) => {
            const display = `${z.label} opacity, % of zone volume`;
            return {
              code: { coding: [{ system: MLSAM_CODE_SYSTEM, code: `lung-zone-opacity-percent-${z.slug}`, display }], text: display },
              ...pct(z.percentOpacity),
            };
          }),
        }),
      );
    }
  }
  const report: DiagnosticReport = {
    resourceType: 'DiagnosticReport',
    id,
    identifier: [dicomUid(record.studyInstanceUid), ...(facts.accessionNumber ? [acsn(facts.accessionNumber)] : [])],
    ...(facts.accessionNumber ? { basedOn: [{ type: 'ServiceRequest', identifier: acsn(facts.accessionNumber) }] } : {}),
    status: 'preliminary',
    category: [
      { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0074', code: 'RAD', display: 'Radiology' }] },
      { coding: [{ system: 'http://loinc.org', code: 'LP29684-5', display: 'Radiology' }] },
    ],
    code: {
      coding: [{ system: 'http://loinc.org', code: '24627-2', display: 'CT Chest' }],
      text: 'CT Chest: AI triage (COVID-19 pneumonia pattern)',
    },
    ...(subject ? { subject } : {}),
    ...(effective ? { effectiveDateTime: effective } : {}),
    issued,
    performer: [{ display: `mlsam-node, ${record.model.name} ${record.model.version}` }],
    result: observations.map((o) => ({ reference: `Observation/${o.id}` })),
    imagingStudy: [study],
    conclusion: conclusionText(record),
  };
  return { report, observations };
}

/** PUTs the observations, then the report; the first refusal or failure stops (the retry PUTs them all again: idempotent). */
export async function putFhirResources(
  target: FhirNotification,
  bundle: FhirBundle,
  timeoutMs: number,
): Promise<{ ok: true; detail: string } | { ok: false; permanent: boolean; reason: string }> {
  const base = target.url.replace(/\/+$/, '');
  const statuses: number[] = [];
  for (const resource of [...bundle.observations, bundle.report]) {
    const res = await httpRequestTo({
      method: 'PUT',
      url: `${base}/${resource.resourceType}/${encodeURIComponent(resource.id!)}`,
      headers: { 'content-type': 'application/fhir+json; charset=utf-8', accept: 'application/fhir+json' },
      body: Buffer.from(JSON.stringify(resource)),
      auth: target.auth,
      ...(target.tls ? { tls: target.tls } : {}),
      timeoutMs,
    });
    if (res.status !== 200 && res.status !== 201) {
      const permanent = res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429;
      return { ok: false, permanent, reason: `FHIR PUT ${resource.resourceType}/${resource.id}: ${describeResponse(res)}` };
    }
    statuses.push(res.status);
  }
  return { ok: true, detail: `${statuses.length} resource(s) PUT (${statuses.join(', ')})` };
}
