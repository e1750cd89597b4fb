import type { Config, Destination } from '../../config/schema.js';
import type { PeerOptions } from '../../dicom/scu/client.js';
import { scuTls } from '../../dicom/tls.js';

/** The configured destinations, or the named ones (config order); throws for an unknown name. */
export function selectDestinations<T extends { name: string } = Destination>(all: readonly T[], names?: readonly string[]): T[] {
  if (!names) return [...all];
  const unknown = names.filter((n) => !all.some((d) => d.name === n));
  if (unknown.length) throw new Error(`unknown destination(s): ${unknown.join(', ')}`);
  return all.filter((d) => names.includes(d.name));
}

/**
 * How we reach a destination: the same for its C-ECHO and its C-STOREs (over DICOM TLS when the
 * destination has `tls`; its PEM files are read here, so a renewed certificate is used at once).
 */
export function destinationPeer(config: Config, dest: Destination): PeerOptions {
  return {
    ...(dest.tls ? { tls: scuTls(config, dest.tls, `destinations[${dest.name}].tls`) } : {}),
    host: dest.host,
    port: dest.port,
    calledAeTitle: dest.aeTitle,
    callingAeTitle: dest.callingAeTitle ?? config.dicom.aeTitle,
    timeoutMs: Math.round(config.dispatch.timeoutSeconds * 1000),
  };
}
