/**
 * Redis key layout of the series tracker and the audit trail. Everything lives under
 * `config.redis.keyPrefix` (BullMQ queues use the same string as their `prefix`), so several
 * deployments, or several tests, share one Redis without seeing each other.
 */
export class Keys {
  constructor(readonly prefix: string) {}

  /** Hash: the series' state (see SeriesState). */
  series(seriesUid: string): string {
    return `${this.prefix}:series:${seriesUid}`;
  }

  /** Hash: SOP Instance UID → compact JSON of the instance's routing attributes. */
  seriesInstances(seriesUid: string): string {
    return `${this.prefix}:series:${seriesUid}:instances`;
  }

  /** Sorted set of series UIDs by last arrival (epoch ms), for listings. */
  seriesIndex(): string {
    return `${this.prefix}:series-index`;
  }

  /** Hash: the study's state (see StudyState, src/queue/study-state.ts). */
  study(studyUid: string): string {
    return `${this.prefix}:study:${studyUid}`;
  }

  /** Set: the series UIDs of a study. */
  studySeries(studyUid: string): string {
    return `${this.prefix}:study:${studyUid}:series`;
  }

  /** Sorted set of study UIDs by last arrival (epoch ms), for listings. */
  studyIndex(): string {
    return `${this.prefix}:study-index`;
  }

  /** Sorted set of association records (JSON members) by start time. */
  associations(): string {
    return `${this.prefix}:audit:associations`;
  }

  /** String: JSON of the series' latest result record (ResultRecord, src/contracts/result-record.ts). */
  result(seriesUid: string): string {
    return `${this.prefix}:result:${seriesUid}`;
  }

  /** Sorted set of series UIDs by result update time (epoch ms), for listings. */
  resultIndex(): string {
    return `${this.prefix}:result-index`;
  }

  /** Hash: destination name → JSON DispatchState of the series' latest result. */
  dispatch(seriesUid: string): string {
    return `${this.prefix}:dispatch:${seriesUid}`;
  }

  /** List (newest first, capped): JSON DispatchAttempt of every try to send the series' results. */
  dispatchLog(seriesUid: string): string {
    return `${this.prefix}:dispatch:${seriesUid}:log`;
  }

  /** Sorted set: series UIDs whose result is held for the target (silent mode), by time held (epoch ms). */
  heldDispatch(target: string): string {
    return `${this.prefix}:dispatch-held:${target}`;
  }

  /** String: JSON of the dispatch-mode settings last read from the results store (used while it is unreachable). */
  dispatchModes(): string {
    return `${this.prefix}:dispatch-modes`;
  }

  /** Hash: destination name → JSON of its last C-ECHO (ok, ms, error, at). */
  destinationEcho(): string {
    return `${this.prefix}:destinations:echo`;
  }

  /** Sorted set: inference worker id (host:pid) → last heartbeat (epoch ms). */
  workers(): string {
    return `${this.prefix}:workers`;
  }

  /** String with TTL: JSON WorkerInfo of one inference worker (src/stores/worker-registry.ts). */
  worker(id: string): string {
    return `${this.prefix}:workers:${id}`;
  }
}
