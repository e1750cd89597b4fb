/**
 * A dispatch job whose target is a notification (HL7 ORU, FHIR, webhook): the result record is read
 * back from Redis (the job names it by series, content hash and model version), the message is
 * delivered by src/notify, and the outcome recorded like a C-STORE's: delivered → sent; refused
 * for good (HL7 AE/AR, HTTP 4xx) → parked at once with the reason; failed for now → retried with
 * backoff, parked after the last attempt.
 */
import { UnrecoverableError } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Config } from '../../config/schema.js';
import type { Notification } from '../../config/targets.js';
import { parseStored, resultKey, resultRecordSchema, type DispatchAttempt, type DispatchState } from '../../contracts/result-record.js';
import type { Logger } from '../../log.js';
import { deliverNotification } from '../../notify/deliver.js';
import type { DispatchJobData } from '../../queue/jobs.js';
import { Keys } from '../../stores/keys.js';
import { whenReady } from '../../stores/redis.js';
import { READY_MS } from '../../stores/dispatch-state.js';

type AttemptFields = Omit<DispatchAttempt, 'destination' | 'instancesHash' | 'attempt' | 'at' | 'ms'>;

export interface NotificationJobDeps {
  redis: Redis;
  config: Config;
  notification: Notification;
  data: DispatchJobData;
  attempt: number;
  finalTry: boolean;
  log: Logger;
  recordState: (st: Pick<DispatchState, 'status'> & Partial<DispatchState>, a: AttemptFields) => Promise<void>;
  giveUp: (reason: string) => Promise<never>;
}

export async function runNotificationJob(d: NotificationJobDeps): Promise<{ delivered: number }> {
  const { data, notification: n, log } = d;
  await whenReady(d.redis, READY_MS);
  const record = parseStored(resultRecordSchema, await d.redis.get(new Keys(d.config.redis.keyPrefix).result(data.seriesInstanceUid)));
  if (!record) return d.giveUp('no result record for this series any more');
  if (resultKey(record) !== data.instancesHash)
    return d.giveUp('the series was scored again: this result is superseded (the newer one has its own notification)');
  const t0 = Date.now();
  const out = await deliverNotification(n, record, { timeoutMs: Math.round(d.config.dispatch.timeoutSeconds * 1000) });
  if (out.ok) {
    await d.recordState(
      { status: 'sent', sentAt: new Date().toISOString(), instancesSent: 1 },
      { outcome: 'sent', sent: 1, warnings: 0, failed: 0 },
    );
    log.info({ type: n.type, detail: out.detail, ms: Date.now() - t0 }, 'notification delivered');
    return { delivered: 1 };
  }
  if (out.permanent) {
    log.error({ type: n.type, err: out.reason }, 'notification refused by the target: parked');
    await d.recordState(
      { status: 'failed', lastError: out.reason },
      { outcome: 'failed', sent: 0, warnings: 0, failed: 1, error: out.reason },
    );
    throw new UnrecoverableError(out.reason);
  }
  await d.recordState(
    { status: d.finalTry ? 'failed' : 'pending', lastError: out.reason },
    { outcome: 'failed', sent: 0, warnings: 0, failed: 1, error: out.reason },
  );
  log.warn(
    { type: n.type, err: out.reason, finalTry: d.finalTry },
    d.finalTry ? 'notification failed: no attempts left' : 'notification failed: will retry',
  );
  throw new Error(out.reason);
}
