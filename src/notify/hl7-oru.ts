/**
 * HL7 v2.5.1 ORU^R01 for one result (built with node-hl7-client, which escapes |^~\& in every
 * value it is given):
 *
 *   MSH  sending/receiving application, MSH-7 = the result's time, MSH-10 = a control ID derived from
 *        the result (same result → same ID, so a receiver can de-duplicate a retry)
 *   PID  patient ID (with issuer), name, birth date, sex, from the study's own DICOM header
 *   OBR  placer / filler order numbers, LOINC 24627-2 "CT Chest", observation time = study time,
 *        OBR-18 accession number, OBR-19 requested procedure ID, OBR-25 "P" (preliminary)
 *   OBX  conclusion (LOINC 19005-8, TX), category (CWE), score, % opacity, % high opacity, lung volume, and
 *        with lung zones the zone score (0-30) and one % opacity per zone (LUNG-OPAC-PCT-RU … -LL) (NM;
 *        no LOINC code exists for these: local code system 99MLSAM), Study and Series Instance UID (DCM 110180 / 112002)
 *   NTE  NOT FOR DIAGNOSTIC USE, the model and its version
 */
import { Message } from 'node-hl7-client';
import { HL7_2_5_1 } from 'node-hl7-client/hl7';
import type { Hl7Notification } from '../config/targets.js';
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
import type { StudyFacts } from './study-facts.js';

/** The local coding system of our own observation codes (HL7 "99zzz" convention). */
export const LOCAL_CODE_SYSTEM = '99MLSAM';

/** MSH-10 (ST, 20 characters): hex of the result's digest. */
export function hl7ControlId(record: ResultRecord, target: Pick<Hl7Notification, 'name'>): string {
  return resultDigest(record, `hl7:${target.name}`).slice(0, 20).toUpperCase();
}

/** ISO time → HL7 DTM (YYYYMMDDHHMMSS+ZZZZ, UTC). */
export function hl7Time(iso: string | undefined): string {
  const d = iso ? new Date(iso) : new Date(0);
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  return `${d.getUTCFullYear()}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}+0000`;
}

/** DICOM DA + TM → HL7 DTM ("" when no date). */
function dicomDateTime(da: string, tm: string): string {
  if (!/^\d{8}$/.test(da)) return '';
  const t = tm.replace(/[^0-9.]/g, '').split('.')[0] ?? '';
  return `${da}${t.slice(0, 6)}`;
}

export function buildOruR01(record: ResultRecord, facts: StudyFacts, target: Hl7Notification): string {
  const when = record.finishedAt ?? record.startedAt;
  const msg = new Message({
    specification: new HL7_2_5_1(),
    messageHeader: {
      msh_9_1: 'ORU',
      msh_9_2: 'R01',
      msh_9_3: 'ORU_R01',
      msh_10: hl7ControlId(record, target),
      msh_11_1: target.processingId,
    },
  });
  msg.set('MSH.3.1', target.sendingApplication);
  if (target.sendingFacility) msg.set('MSH.4.1', target.sendingFacility);
  msg.set('MSH.5.1', target.receivingApplication);
  if (target.receivingFacility) msg.set('MSH.6.1', target.receivingFacility);
  msg.set('MSH.7', hl7Time(when));
  // Original acknowledgment mode: the receiver answers with an ACK (MSA) on the same connection.

  const pid = msg.addSegment('PID');
  pid.set('1', '1');
  if (facts.patientId) {
    pid.set('3.1', facts.patientId);
    if (facts.issuerOfPatientId) pid.set('3.4.1', facts.issuerOfPatientId);
    pid.set('3.5', 'MR');
  }
  const name = facts.patientName.split('^');
  pid.set('5.1', name[0] ?? '');
  if (name[1]) pid.set('5.2', name[1]);
  if (name[2]) pid.set('5.3', name[2]);
  if (facts.patientBirthDate) pid.set('7', facts.patientBirthDate);
  if (['M', 'F', 'O'].includes(facts.patientSex)) pid.set('8', facts.patientSex);

  const obr = msg.addSegment('OBR');
  obr.set('1', '1');
  if (facts.placerOrderNumber) obr.set('2.1', facts.placerOrderNumber);
  const filler = facts.fillerOrderNumber || facts.accessionNumber;
  if (filler) obr.set('3.1', filler);
  obr.set('4.1', '24627-2');
  obr.set('4.2', 'CT Chest');
  obr.set('4.3', 'LN');
  const observed = dicomDateTime(facts.studyDate, facts.studyTime);
  if (observed) obr.set('7', observed);
  if (facts.accessionNumber) obr.set('18', facts.accessionNumber);
  if (facts.requestedProcedureId) obr.set('19', facts.requestedProcedureId);
  obr.set('22', hl7Time(when));
  obr.set('24', 'CT');
  obr.set('25', 'P');

  let n = 0;
  const obx = (
    type: string,
    code: [string, string, string],
    value: (s: ReturnType<typeof msg.addSegment>) => void,
    units?: [string, string, string],
  ): void => {
    const s = msg.addSegment('OBX');
    s.set('1', String(++n));
    s.set('2', type);
    s.set('3.1', code[0]);
    s.set('3.2', code[1]);
    s.set('3.3', code[2]);
    value(s);
    if (units) {
      s.set('6.1', units[0]);
      s.set('6.2', units[1]);
      s.set('6.3', units[2]);
    }
    s.set('11', 'P');
    s.set('14', hl7Time(when));
  };
  obx('TX', ['19005-8', 'Radiology Imaging study [Impression] (narrative)', 'LN'], (s) => s.set('5', conclusionText(record)));
  if (record.status === 'scored' && record.category) {
    const cat = record.category;
    obx('CWE', ['COVID-CAT', 'COVID-19 pneumonia pattern category', LOCAL_CODE_SYSTEM], (s) => {
      s.set('5.1', cat);
      s.set('5.2', CATEGORY_TEXT[cat]);
      s.set('5.3', LOCAL_CODE_SYSTEM);
    });
    const nums = resultNumbers(record);
    if (nums.score !== undefined) {
      const v = nums.score;
      obx('NM', ['COVID-SCORE', 'COVID-19 pneumonia pattern score (0-1)', LOCAL_CODE_SYSTEM], (s) => s.set('5', String(round(v, 4))), [
        '1',
        'unity',
        'UCUM',
      ]);
    }
    if (nums.opacityPercent !== undefined) {
      const v = nums.opacityPercent;
      obx('NM', ['LUNG-OPAC-PCT', 'Lung opacity, % of lung volume', LOCAL_CODE_SYSTEM], (s) => s.set('5', String(round(v, 2))), [
        '%',
        'percent',
        'UCUM',
      ]);
    }
    if (nums.highOpacityPercent !== undefined) {
      const v = nums.highOpacityPercent;
      obx(
        'NM',
        ['LUNG-HOPAC-PCT', 'Lung high opacity (consolidation), % of lung volume', LOCAL_CODE_SYSTEM],
        (s) => s.set('5', String(round(v, 2))),
        ['%', 'percent', 'UCUM'],
      );
    }
    if (nums.lungMl !== undefined) {
      const v = nums.lungMl;
      obx('NM', ['LUNG-VOL', 'Lung volume', LOCAL_CODE_SYSTEM], (s) => s.set('5', String(round(v, 0))), ['mL', 'milliliter', 'UCUM']);
    }
    const zones = zoneFigures(record);
    if (zones) {
      obx(
        'NM',
        ['LUNG-ZONE-SCORE', `Lung zone score 0-30 (${ZONE_DEFINITION})`, LOCAL_CODE_SYSTEM],
        (s) => s.set('5', String(zones.score)),
        ['{score}', 'score', 'UCUM'],
      );
      for (const z of zones.zones) {
        obx(
          'NM',
          [`LUNG-OPAC-PCT-${z.abbrev}`, `${z.label} opacity, % of zone volume`, LOCAL_CODE_SYSTEM],
          (s) => s.set('5', String(round(z.percentOpacity, 2))),
          ['%', 'percent', 'UCUM'],
        );
      }
    }
  }
  obx('ST', ['110180', 'Study Instance UID', 'DCM'], (s) => s.set('5', record.studyInstanceUid));
  obx('ST', ['112002', 'Series Instance UID', 'DCM'], (s) => s.set('5', record.seriesInstanceUid));

  const nte = msg.addSegment('NTE');
  nte.set('1', '1');
  nte.set('2', 'L');
  nte.set('3', `${NOT_FOR_DIAGNOSTIC_USE}. Research triage aid, not a medical device. Model ${record.model.name} ${record.model.version}.`);
  return msg.toString();
}
