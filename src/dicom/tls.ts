/**
 * DICOM TLS (PS3.15 B.9, BCP 195 profile: TLS 1.2 or later) for the listener and the SCU:
 * certificates and keys are PEM files named in config, read when the listener starts or an
 * association is opened (so a renewed certificate is picked up without a restart of the SCU side).
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { checkServerIdentity, type ConnectionOptions, type TlsOptions } from 'node:tls';
import { resolvePath } from '../config/load.js';
import type { Config, DestinationTls } from '../config/schema.js';

/** Oldest protocol version we speak (BCP 195). */
export const MIN_TLS_VERSION = 'TLSv1.2';

/** TLS settings of one SCU connection (C-STORE / C-ECHO to a peer). */
export interface ScuTls {
  /** CA certificate(s) the peer's certificate must chain to (default: the system's). */
  ca?: Buffer;
  /** Our client certificate and key, for peers that require one. */
  cert?: Buffer;
  key?: Buffer;
  /** Check that the peer's certificate names the host we connect to. */
  verifyHostname: boolean;
}

/** Reads a PEM file named by config key `key`; the error names the key. */
export function readPem(path: string, key: string): Buffer {
  try {
    return readFileSync(resolvePath(path));
  } catch (err) {
    throw new Error(`${key}: cannot read ${path}: ${(err as Error).message}`);
  }
}

/** Options for the listener's tls.Server (config dicom.tls; caller checks `enabled`). */
export function serverTlsOptions(config: Config): TlsOptions {
  const t = config.dicom.tls;
  return {
    cert: readPem(t.certFile, 'dicom.tls.certFile'),
    key: readPem(t.keyFile, 'dicom.tls.keyFile'),
    ...(t.caFile ? { ca: readPem(t.caFile, 'dicom.tls.caFile') } : {}),
    requestCert: t.requireClientCert,
    rejectUnauthorized: t.requireClientCert,
    minVersion: MIN_TLS_VERSION,
    handshakeTimeout: Math.round(config.dicom.associationTimeoutSeconds * 1000),
  };
}

/**
 * TLS to a destination: its own CA / certificate / key files, each defaulting to the node's
 * (dicom.tls.caFile, certFile, keyFile) when not given.
 */
export function scuTls(config: Config, tls: DestinationTls, keyPrefix = 'destinations[].tls'): ScuTls {
  const node = config.dicom.tls;
  const pick = (own: string | undefined, fallback: string): string => (own !== undefined && own !== '' ? own : fallback);
  const ca = pick(tls.caFile, node.caFile);
  const cert = pick(tls.certFile, node.certFile);
  const key = pick(tls.keyFile, node.keyFile);
  if ((cert === '') !== (key === '')) throw new Error(`${keyPrefix}: a client certificate needs both certFile and keyFile`);
  return {
    ...(ca ? { ca: readPem(ca, `${keyPrefix}.caFile`) } : {}),
    ...(cert ? { cert: readPem(cert, `${keyPrefix}.certFile`), key: readPem(key, `${keyPrefix}.keyFile`) } : {}),
    verifyHostname: tls.verifyHostname,
  };
}

/** tls.connect options for an SCU connection to host:port. */
export function scuConnectOptions(host: string, port: number, tls: ScuTls): ConnectionOptions {
  return {
    host,
    port,
    ...(tls.ca ? { ca: tls.ca } : {}),
    ...(tls.cert && tls.key ? { cert: tls.cert, key: tls.key } : {}),
    minVersion: MIN_TLS_VERSION,
    rejectUnauthorized: true,
    // SNI takes host names only.
    ...(isIP(host) ? {} : { servername: host }),
    checkServerIdentity: tls.verifyHostname ? checkServerIdentity : () => undefined,
  };
}
