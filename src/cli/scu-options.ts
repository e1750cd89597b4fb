import type { Command } from 'commander';
import { loadConfig } from '../config/load.js';
import type { PeerOptions } from '../dicom/scu/client.js';
import { scuTls } from '../dicom/tls.js';

export interface ScuFlags {
  host?: string;
  port?: string;
  aet?: string;
  callingAet?: string;
  timeout?: string;
  tls?: boolean;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
  verifyHostname?: boolean;
}

export function addScuFlags(cmd: Command): Command {
  return cmd
    .option('--host <address>', 'peer host', '127.0.0.1')
    .option('--port <port>', 'peer port (default: dicom.port from config)')
    .option('--aet <title>', 'called AE title (default: dicom.aeTitle from config)')
    .option('--calling-aet <title>', 'our (calling) AE title', 'MLSAM_SCU')
    .option('--timeout <seconds>', 'connect / response timeout', '30')
    .option('--tls', 'DICOM TLS (certificate files default to dicom.tls.* from config)')
    .option('--tls-ca <pem>', 'CA certificate(s) the peer must chain to (implies --tls)')
    .option('--tls-cert <pem>', 'our client certificate (implies --tls; with --tls-key)')
    .option('--tls-key <pem>', 'our client private key (implies --tls)')
    .option('--no-verify-hostname', 'accept a peer certificate that does not name --host');
}

/** Peer from flags, defaulting to this node's own listener as configured. */
export function peerFromFlags(flags: ScuFlags): PeerOptions {
  const config = loadConfig();
  const port = flags.port === undefined ? config.dicom.port : Number(flags.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`--port: not a port: ${flags.port}`);
  const timeout = Number(flags.timeout ?? '30');
  if (!(timeout > 0)) throw new Error(`--timeout: not a positive number: ${flags.timeout}`);
  return {
    host: flags.host ?? '127.0.0.1',
    port,
    calledAeTitle: flags.aet ?? config.dicom.aeTitle,
    callingAeTitle: flags.callingAet ?? 'MLSAM_SCU',
    timeoutMs: timeout * 1000,
    ...(flags.tls || flags.tlsCa || flags.tlsCert || flags.tlsKey
      ? {
          tls: scuTls(
            config,
            {
              ...(flags.tlsCa ? { caFile: flags.tlsCa } : {}),
              ...(flags.tlsCert ? { certFile: flags.tlsCert } : {}),
              ...(flags.tlsKey ? { keyFile: flags.tlsKey } : {}),
              verifyHostname: flags.verifyHostname ?? true,
            },
            '--tls',
          ),
        }
      : {}),
  };
}
