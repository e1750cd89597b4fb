import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * Structured logs. Invariant 5 (docs/architecture.md): no PHI. Callers log UIDs, AE titles, counts and hashes only;
 * as a second line of defence any field named like a PHI attribute is redacted.
 */
const PHI_PATHS = [
  'PatientName',
  'PatientID',
  'PatientBirthDate',
  'AccessionNumber',
  'patientName',
  'patientId',
  'patientBirthDate',
  'accessionNumber',
].flatMap((k) => [k, `*.${k}`]);

export function createLogger(level: string = process.env.MLSAM_LOG__LEVEL ?? 'info', name = 'mlsam'): Logger {
  return pino(
    {
      name,
      level,
      redact: { paths: PHI_PATHS, censor: '[phi]' },
      base: { pid: process.pid },
      // Synchronous on a terminal (a person reading it: ordered with what goes to stdout, such as
      // the start-up summary), asynchronous otherwise.
    },
    pino.destination({ dest: 2, sync: process.stderr.isTTY === true }),
  );
}
