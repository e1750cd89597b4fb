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

  /** Sorted set of association records (JSON members) by start time. */
  associations(): string {
    return `${this.prefix}:audit:associations`;
  }
}
