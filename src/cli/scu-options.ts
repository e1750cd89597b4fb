import type { Command } from 'commander';
import { loadConfig } from '../config/load.js';
import type { PeerOptions } from '../dicom/scu/client.js';

export interface ScuFlags {
  host?: string;
  port?: string;
  aet?: string;
  callingAet?: string;
  timeout?: string;
}

export function addScuFlags(cmd: Command): Command {
  return cmd
    .option('--host <address>', 'peer host', '127.0.0.1')
    .option('--port <port>', 'peer port (default: dicom.port from config)')
    .option('--aet <title>', 'called AE title (default: dicom.aeTitle from config)')
    .option('--calling-aet <title>', 'our (calling) AE title', 'MLSAM_SCU')
    .option('--timeout <seconds>', 'connect / response timeout', '30');
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
  };
}
