/**
 * Delivers one notification about one result to its target (HL7 ORU over MLLP, FHIR R4, webhook)
 * and classifies the outcome for the dispatch worker: delivered; refused for good (parked at once
 * with the reason: an HL7 AE/AR, an HTTP 4xx); or failed for now (retried with backoff: no
 * connection, no answer, HTTP 5xx / 408 / 429).
 */
import type { Notification } from '../config/targets.js';
import type { ResultRecord } from '../contracts/result-record.js';
import { buildFhirBundle, putFhirResources } from './fhir.js';
import { buildOruR01, hl7ControlId } from './hl7-oru.js';
import { describeResponse, httpRequestTo } from './http-request.js';
import { sendMllp } from './mllp.js';
import { studyFacts } from './study-facts.js';
import { DELIVERY_HEADER, SIGNATURE_HEADER, webhookDocument, webhookSignature } from './webhook.js';

export type DeliveryOutcome = { ok: true; detail: string } | { ok: false; permanent: boolean; reason: string };

/** An HTTP status that retrying cannot change (4xx except 408 Request Timeout and 429 Too Many Requests). */
export const permanentHttpStatus = (s: number): boolean => s >= 400 && s < 500 && s !== 408 && s !== 429;

export async function deliverNotification(n: Notification, record: ResultRecord, opts: { timeoutMs: number }): Promise<DeliveryOutcome> {
  const facts = await studyFacts(record);
  try {
    if (n.type === 'hl7') {
      const message = buildOruR01(record, facts, n);
      const controlId = hl7ControlId(record, n);
      const ack = await sendMllp({ host: n.host, port: n.port, ...(n.tls ? { tls: n.tls } : {}), timeoutMs: opts.timeoutMs }, message);
      if (ack.controlId && ack.controlId !== controlId) {
        return { ok: false, permanent: false, reason: `ACK for another message (MSA-2 ${ack.controlId}, sent ${controlId})` };
      }
      if (ack.accepted) return { ok: true, detail: `${ack.code} for ${controlId}` };
      return { ok: false, permanent: true, reason: `HL7 ${ack.code}: ${ack.reason}` };
    }
    if (n.type === 'webhook') {
      const body = Buffer.from(JSON.stringify(webhookDocument(record, n, facts.accessionNumber)));
      const doc = JSON.parse(body.toString()) as { deliveryId: string };
      const res = await httpRequestTo({
        method: 'POST',
        url: n.url,
        headers: {
          'content-type': 'application/json',
          [SIGNATURE_HEADER]: webhookSignature(n.secret, body),
          [DELIVERY_HEADER]: doc.deliveryId,
          'user-agent': 'mlsam-node',
        },
        body,
        ...(n.tls ? { tls: n.tls } : {}),
        timeoutMs: opts.timeoutMs,
      });
      if (res.status >= 200 && res.status < 300) return { ok: true, detail: `HTTP ${res.status}` };
      return { ok: false, permanent: permanentHttpStatus(res.status), reason: `webhook ${describeResponse(res)}` };
    }
    const bundle = buildFhirBundle(record, facts, n);
    return await putFhirResources(n, bundle, opts.timeoutMs);
  } catch (err) {
    return { ok: false, permanent: false, reason: (err as Error).message };
  }
}
