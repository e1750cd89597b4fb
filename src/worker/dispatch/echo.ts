/**
 * C-ECHO of the configured destinations: at start-up, on demand (admin API) and on
 * config.dispatch.echoCron. The last result per destination is kept in the hash
 * Keys.destinationEcho() (destination name → JSON DestinationEcho).
 */
import type { Redis } from 'ioredis';
import type { Config, Destination } from '../../config/schema.js';
import { echo } from '../../dicom/scu/client.js';
import type { Logger } from '../../log.js';
import { DestinationEchoStore, type DestinationEcho } from '../../stores/destination-echoes.js';
import { ScheduledPass } from '../../scheduled-pass.js';
import { destinationPeer, selectDestinations } from './destinations.js';

export interface EchoDeps {
  config: Config;
  logger: Logger;
  /** Command connection; the echo results are stored when Redis answers, returned either way. */
  redis: Redis;
}

/** C-ECHO one destination. */
export async function echoDestination(config: Config, dest: Destination): Promise<DestinationEcho> {
  const at = new Date().toISOString();
  const r = await echo(destinationPeer(config, dest));
  return {
    destination: dest.name,
    aeTitle: dest.aeTitle,
    host: dest.host,
    port: dest.port,
    ok: r.ok,
    ...(r.status === undefined ? {} : { status: r.status }),
    ...(r.error ? { error: r.error } : r.ok ? {} : { error: 'no C-ECHO response' }),
    ms: r.ms,
    at,
  };
}

/**
 * C-ECHO the configured destinations (all, or the named ones) in parallel, store each result in
 * Keys.destinationEcho() and return them in config order. Echoing all also drops stored entries
 * of destinations no longer configured. Never throws for an unreachable destination; throws for
 * an unknown name.
 */
export async function echoDestinations(deps: EchoDeps, names?: string[]): Promise<DestinationEcho[]> {
  const { config, redis } = deps;
  const log = deps.logger.child({ component: 'destination-echo' });
  const targets = selectDestinations(config.destinations, names);
  const results = await Promise.all(targets.map((d) => echoDestination(config, d)));
  for (const r of results) {
    const fields = { destination: r.destination, aeTitle: r.aeTitle, host: r.host, port: r.port, ms: r.ms };
    if (r.ok) log.info(fields, 'destination answers C-ECHO');
    else log.warn({ ...fields, err: r.error, status: r.status }, 'destination does not answer C-ECHO');
  }
  try {
    await new DestinationEchoStore(redis, config).save(results, !names);
  } catch (err) {
    log.warn({ err: (err as Error).message }, 'could not store the C-ECHO results');
  }
  return results;
}

/** Start-up echo plus the periodic one on config.dispatch.echoCron. */
export class DestinationEchoScheduler {
  private readonly schedule: ScheduledPass<DestinationEcho[]>;

  constructor(deps: EchoDeps) {
    this.schedule = new ScheduledPass({
      cronKey: 'dispatch.echoCron',
      cron: deps.config.dispatch.echoCron,
      name: 'destination-echo',
      run: () => echoDestinations(deps),
      onError: (err) => {
        deps.logger.warn({ err: err.message }, 'destination echo failed');
        return [];
      },
    });
  }

  /** Echoes every destination now (in the background; the promise is returned) and then on the schedule. */
  start(): Promise<DestinationEcho[]> {
    const first = this.runOnce();
    this.schedule.start();
    return first;
  }

  /** One round (runs never overlap: a call during a round gets that round). Never rejects. */
  runOnce(): Promise<DestinationEcho[]> {
    return this.schedule.runOnce();
  }

  stop(): Promise<void> {
    return this.schedule.stop();
  }
}
