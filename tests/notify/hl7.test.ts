/**
 * HL7 v2.5.1 ORU^R01 over MLLP through the dispatch queue, against MLLP peers from the registry
 * (node-hl7-server) that answer AA, AE, or nothing; every message parsed by an independent parser
 * (Debian python3-hl7). Also MLLP over TLS (the same server with a certificate from a test CA).
 */
import { readFile } from 'node:fs/promises';
import { Server, type Inbound } from 'node-hl7-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config/schema.js';
import { hl7ControlId } from '../../src/notify/hl7-oru.js';
import { cleanup, freePort, testConfig } from '../queue/helpers.js';
import { makeTestPki, type TestPki } from '../helpers/tls-certs.js';
import { Harness, makeScoredResultSet } from '../worker/dispatch/helpers.js';
import { field, opacityOf, parseWithPythonHl7, storeRecord, zonesOf } from './helpers.js';

interface Peer {
  port: number;
  received: string[];
  close(): Promise<void>;
}

/** A node-hl7-server listener on 127.0.0.1 that answers every message with `answer` (or not at all). */
async function startPeer(answer: 'AA' | 'AE' | 'none', tls?: { cert: Buffer; key: Buffer }): Promise<Peer> {
  const port = await freePort();
  const server = new Server({ bindAddress: '127.0.0.1', ...(tls ? { tls } : {}) });
  const received: string[] = [];
  const inbound: Inbound = server.createInbound({ port, name: `peer${answer}` }, async (req, res) => {
    received.push(req.getMessage().toString());
    if (answer !== 'none') await res.sendResponse(answer);
  });
  await new Promise<void>((resolve) => inbound.once('listen', () => resolve()));
  return { port, received, close: async () => void (await inbound.close()) };
}

let pki: TestPki;
let aa: Peer;
let ae: Peer;
let silent: Peer;
let secure: Peer;
let config: Config;
let h: Harness;

const target = (name: string, port: number, extra: Record<string, unknown> = {}) => ({
  type: 'hl7',
  name,
  host: '127.0.0.1',
  port,
  sendingApplication: 'MLSAM',
  sendingFacility: 'RADIOLOGY',
  receivingApplication: 'RIS',
  receivingFacility: 'HOSP',
  ...extra,
});

beforeAll(async () => {
  pki = await makeTestPki();
  [aa, ae, silent] = await Promise.all([startPeer('AA'), startPeer('AE'), startPeer('none')]);
  secure = await startPeer('AA', { cert: await readFile(pki.server.cert), key: await readFile(pki.server.key) });
  config = await testConfig('hl7', {
    notifications: [
      target('ris', aa.port),
      target('ris-ae', ae.port),
      target('ris-silent', silent.port),
      target('ris-tls', secure.port, { tls: { caFile: pki.ca } }),
    ],
    dispatch: { attempts: 2, backoffSeconds: 0.2, maxBackoffSeconds: 0.4, timeoutSeconds: 1.5 },
  } as never);
  h = new Harness(config);
}, 120_000);

afterAll(async () => {
  await h?.close();
  await Promise.all([aa, ae, silent, secure].map((p) => p?.close()));
  await pki?.remove();
  if (config) await cleanup(config);
});

describe('HL7 ORU^R01 notification over MLLP', () => {
  it('AA: delivered once (a repeat enqueue sends nothing); AE: parked at once with the reason; no answer: retried, then parked; TLS: delivered', async () => {
    const set = await makeScoredResultSet(config, { patientName: "O'Brien|Smith^Mary&Ann", patientId: 'PAT~1^2' });
    const record = { ...set.record, opacity: opacityOf(12.345, 3.21), zones: zonesOf([2.5, 10.125, 30, 0, 4.994, 80]) };
    await storeRecord(h, config, record);
    const queued = await h.dispatcher.enqueue(record, 'worker');
    expect(queued.map((q) => [q.destination, q.outcome])).toEqual([
      ['ris', 'added'],
      ['ris-ae', 'added'],
      ['ris-silent', 'added'],
      ['ris-tls', 'added'],
    ]);
    const [jobAa, jobAe, jobSilent, jobTls] = queued.map((q) => q.jobId);

    const done = await h.waitState(jobAa!, ['completed']);
    expect(done.returnvalue).toMatchObject({ delivered: 1, attempt: 1 });
    expect(aa.received).toHaveLength(1);
    expect((await h.dispatcher.enqueue(record, 'worker'))[0]!.outcome).toBe('exists');

    const rejected = await h.waitState(jobAe!, ['failed']);
    expect(rejected.attemptsMade).toBe(1);
    expect(rejected.failedReason).toMatch(/^HL7 AE: /);
    expect(ae.received).toHaveLength(1);
    expect(await h.dispatcher.store.getState(record.seriesInstanceUid, 'ris-ae')).toMatchObject({
      status: 'failed',
      lastError: rejected.failedReason,
    });

    const timedOut = await h.waitState(jobSilent!, ['failed'], 20_000);
    expect(timedOut.attemptsMade).toBe(2);
    expect(timedOut.failedReason).toMatch(/no ACK from 127\.0\.0\.1:\d+ within 1500 ms/);
    // The same message both times: same control ID, so the receiver can de-duplicate.
    expect(silent.received).toHaveLength(2);
    expect(silent.received[1]).toBe(silent.received[0]);

    await h.waitState(jobTls!, ['completed']);
    expect(secure.received).toHaveLength(1);

    const states = await h.dispatcher.store.states(record.seriesInstanceUid);
    expect(Object.fromEntries(states.map((s) => [s.destination, s.status]))).toEqual({
      ris: 'sent',
      'ris-ae': 'failed',
      'ris-silent': 'failed',
      'ris-tls': 'sent',
    });

    // The message, as an independent parser reads it.
    const m = await parseWithPythonHl7(aa.received[0]!);
    expect(Object.keys(m)).toEqual(['MSH', 'PID', 'OBR', 'OBX', 'NTE']);
    expect([field(m, 'MSH', 3), field(m, 'MSH', 4), field(m, 'MSH', 5), field(m, 'MSH', 6)]).toEqual(['MLSAM', 'RADIOLOGY', 'RIS', 'HOSP']);
    expect([field(m, 'MSH', 9, 1), field(m, 'MSH', 9, 2), field(m, 'MSH', 9, 3)]).toEqual(['ORU', 'R01', 'ORU_R01']);
    expect(field(m, 'MSH', 10)).toBe(hl7ControlId(record, { name: 'ris' }));
    expect(field(m, 'MSH', 7)).toBe('20261126010209+0000');
    expect([field(m, 'MSH', 11), field(m, 'MSH', 12)]).toEqual(['P', '2.5.1']);
    // Delimiters inside values are escaped, and come back intact.
    expect(field(m, 'PID', 3)).toBe('PAT~1^2');
    expect([field(m, 'PID', 5, 1), field(m, 'PID', 5, 2)]).toEqual(["O'Brien|Smith", 'Mary&Ann']);
    expect([field(m, 'PID', 7), field(m, 'PID', 8)]).toEqual(['19700101', 'O']);
    expect([field(m, 'OBR', 3), field(m, 'OBR', 18)]).toEqual(['ACC0001', 'ACC0001']);
    expect([field(m, 'OBR', 4, 1), field(m, 'OBR', 4, 3), field(m, 'OBR', 7), field(m, 'OBR', 25)]).toEqual([
      '24627-2',
      'LN',
      '20260101120000',
      'P',
    ]);
    const obx = (m.OBX ?? []).map((_, k) => ({
      type: field(m, 'OBX', 2, 1, 1, k),
      code: field(m, 'OBX', 3, 1, 1, k),
      system: field(m, 'OBX', 3, 3, 1, k),
      value: field(m, 'OBX', 5, 1, 1, k),
      units: field(m, 'OBX', 6, 1, 1, k),
      status: field(m, 'OBX', 11, 1, 1, k),
    }));
    expect(obx.map((o) => [o.type, o.code, o.system, o.value, o.units])).toEqual([
      [
        'TX',
        '19005-8',
        'LN',
        expect.stringContaining('COVID-19 pneumonia pattern likely (score 0.85, opacity 12.35 % of lung volume, high opacity 3.21 %)'),
        '',
      ],
      ['CWE', 'COVID-CAT', '99MLSAM', 'likely', ''],
      ['NM', 'COVID-SCORE', '99MLSAM', '0.85', '1'],
      ['NM', 'LUNG-OPAC-PCT', '99MLSAM', '12.35', '%'],
      ['NM', 'LUNG-HOPAC-PCT', '99MLSAM', '3.21', '%'],
      ['NM', 'LUNG-VOL', '99MLSAM', '4200', 'mL'],
      // Lung zones: the zone score (bins 1 + 2 + 3 + 0 + 1 + 5), then one OBX per zone, right upper to left lower.
      ['NM', 'LUNG-ZONE-SCORE', '99MLSAM', '12', '{score}'],
      ['NM', 'LUNG-OPAC-PCT-RU', '99MLSAM', '2.5', '%'],
      ['NM', 'LUNG-OPAC-PCT-RM', '99MLSAM', '10.13', '%'],
      ['NM', 'LUNG-OPAC-PCT-RL', '99MLSAM', '30', '%'],
      ['NM', 'LUNG-OPAC-PCT-LU', '99MLSAM', '0', '%'],
      ['NM', 'LUNG-OPAC-PCT-LM', '99MLSAM', '4.99', '%'],
      ['NM', 'LUNG-OPAC-PCT-LL', '99MLSAM', '80', '%'],
      ['ST', '110180', 'DCM', record.studyInstanceUid, ''],
      ['ST', '112002', 'DCM', record.seriesInstanceUid, ''],
    ]);
    expect(obx.every((o) => o.status === 'P')).toBe(true);
    // Every OBX says what it is in words and with its UCUM unit's name; set IDs run 1..n.
    const zoneObx = (m.OBX ?? []).map((_, k) => k).filter((k) => field(m, 'OBX', 3, 1, 1, k).startsWith('LUNG-OPAC-PCT-'));
    expect(zoneObx.map((k) => field(m, 'OBX', 3, 2, 1, k))).toEqual([
      'Right upper lung zone opacity, % of zone volume',
      'Right middle lung zone opacity, % of zone volume',
      'Right lower lung zone opacity, % of zone volume',
      'Left upper lung zone opacity, % of zone volume',
      'Left middle lung zone opacity, % of zone volume',
      'Left lower lung zone opacity, % of zone volume',
    ]);
    expect(zoneObx.map((k) => [field(m, 'OBX', 6, 2, 1, k), field(m, 'OBX', 6, 3, 1, k)])).toEqual(Array(6).fill(['percent', 'UCUM']));
    expect(
      field(
        m,
        'OBX',
        3,
        2,
        1,
        obx.findIndex((o) => o.code === 'LUNG-ZONE-SCORE'),
      ),
    ).toMatch(/^Lung zone score 0-30 \(thirds of each lung/);
    expect((m.OBX ?? []).map((_, k) => field(m, 'OBX', 1, 1, 1, k))).toEqual(obx.map((_, k) => String(k + 1)));
    expect(field(m, 'NTE', 3)).toBe('NOT FOR DIAGNOSTIC USE. Research triage aid, not a medical device. Model mlsam-test 1.0.0.');
    // Each listener got the same content (its own control ID).
    const tlsMsg = await parseWithPythonHl7(secure.received[0]!);
    expect(field(tlsMsg, 'MSH', 10)).toBe(hl7ControlId(record, { name: 'ris-tls' }));
    expect(field(tlsMsg, 'PID', 3)).toBe('PAT~1^2');
  });
});
