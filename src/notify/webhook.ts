/**
 * Webhook: one JSON document per result, POSTed with an HMAC-SHA256 signature of the exact body
 * bytes (`X-MLSAM-Signature: sha256=<hex>`, key = the target's secret) and a delivery id that is
 * the same on every retry of the same result (`X-MLSAM-Delivery`), so a receiver can verify and
 * de-duplicate. 2xx = delivered; 4xx other than 408/429 = refused for good; anything else = retry.
 */
import { createHmac } from 'node:crypto';
import type { WebhookNotification } from '../config/targets.js';
import type { ResultRecord } from '../contracts/result-record.js';
import { NOT_FOR_DIAGNOSTIC_USE, conclusionText, resultDigest, resultNumbers } from './notification-content.js';

export const SIGNATURE_HEADER = 'x-mlsam-signature';
export const DELIVERY_HEADER = 'x-mlsam-delivery';

export interface WebhookDocument {
  event: 'result';
  deliveryId: string;
  notice: string;
  studyInstanceUid: string;
  seriesInstanceUid: string;
  accessionNumber: string | null;
  status: ResultRecord['status'];
  category: ResultRecord['category'] | null;
  score: number | null;
  opacityPercent: number | null;
  highOpacityPercent: number | null;
  conclusion: string;
  model: { name: string; version: string };
  finishedAt: string | null;
  links: { series: string | null; api: string | null };
}

export function webhookDeliveryId(record: ResultRecord, target: Pick<WebhookNotification, 'name'>): string {
  return resultDigest(record, `webhook:${target.name}`).slice(0, 32);
}

export function webhookDocument(record: ResultRecord, target: WebhookNotification, accessionNumber: string): WebhookDocument {
  const n = resultNumbers(record);
  const base = target.dashboardUrl?.replace(/\/+$/, '');
  return {
    event: 'result',
    deliveryId: webhookDeliveryId(record, target),
    notice: NOT_FOR_DIAGNOSTIC_USE,
    studyInstanceUid: record.studyInstanceUid,
    seriesInstanceUid: record.seriesInstanceUid,
    accessionNumber: accessionNumber || null,
    status: record.status,
    category: record.category ?? null,
    score: n.score ?? null,
    opacityPercent: n.opacityPercent ?? null,
    highOpacityPercent: n.highOpacityPercent ?? null,
    conclusion: conclusionText(record),
    model: { name: record.model.name, version: record.model.version },
    finishedAt: record.finishedAt ?? null,
    links: {
      series: base ? `${base}/admin/series/${record.seriesInstanceUid}` : null,
      api: base ? `${base}/api/series/${record.seriesInstanceUid}` : null,
    },
  };
}

/** `sha256=<hex>` of the body with the secret. */
export function webhookSignature(secret: string, body: Buffer): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}
