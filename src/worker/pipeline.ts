/**
 * ▼ PIPELINE after inference, wired here: every finished record ('scored' / 'not-scored') goes to
 * src/results, which writes the result objects (SR, KOS, SCs) into the spool, then to the dispatch
 * stage (src/worker/dispatch), which queues one job per destination. The inference worker calls
 * this before its job completes, so the objects' paths land in the record (invariant: no result is
 * lost, none is sent twice: the dispatch job ids are deterministic).
 *
 * The entry (src/node/worker-role.ts) supplies the dispatch producer: the dispatch worker runs in the
 * same process as a role of its own.
 *
 * Last, the record (with its outputs) goes to the durable results store (src/db): a store that does
 * not answer never holds the result up (the row waits in Redis and is written when it is back).
 */
import type { Config } from '../config/schema.js';
import type { ResultRecord } from '../contracts/result-record.js';
import type { Logger } from '../log.js';
import { writeResultObjects } from '../results/index.js';
import type { OnResult } from './inference/inference-worker.js';

/** Queues the dispatch of a record's objects (DispatchRole.enqueue; `by` says which stage asked). */
export type EnqueueDispatch = (record: ResultRecord, by: 'worker') => Promise<unknown>;

export interface ResultPipelineDeps {
  config: Config;
  logger: Logger;
  enqueueDispatch: EnqueueDispatch;
  /** Writes the finished record to the durable results store (DurableResults.record via storedRow). */
  recordResult?: (record: ResultRecord) => Promise<unknown>;
}

/** inference → results → dispatch: the OnResult the inference worker runs for each record. */
export function resultPipeline(deps: ResultPipelineDeps): OnResult {
  return async (record, _job, metadata, extras) => {
    const outputs = await writeResultObjects(record, {
      config: deps.config,
      logger: deps.logger,
      metadata,
      ...(extras?.labels ? { labels: extras.labels } : {}),
    });
    if (outputs.length > 0) await deps.enqueueDispatch({ ...record, outputs }, 'worker');
    if (deps.recordResult) {
      await deps
        .recordResult({ ...record, outputs })
        .catch((err: Error) =>
          deps.logger.error({ series: record.seriesInstanceUid, err: err.message }, 'result not recorded in the results store'),
        );
    }
    return outputs;
  };
}
