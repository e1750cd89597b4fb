import { createRequire } from 'node:module';
import dimse from 'dcmjs-dimse';
import { IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME } from './uids.js';

let configured = false;

/**
 * Process-wide dcmjs-dimse settings, applied once: its own logging (and that of the dcmjs copy it
 * bundles, which warns about every private tag to the console) silenced — we log ourselves;
 * our implementation class UID / version name; a library-wide max PDU that never caps the
 * per-association value taken from config.
 */
export function configureDimse(): typeof dimse {
  if (configured) return dimse;
  configured = true;
  dimse.log.setLevel('silent');
  try {
    const req = createRequire(createRequire(import.meta.url).resolve('dcmjs-dimse'));
    const dcmjs = req('dcmjs') as { log?: { setLevel(level: string): void } };
    dcmjs.log?.setLevel('error');
  } catch {
    // Not fatal: only console noise.
  }
  dimse.Implementation.setImplementationClassUid(IMPLEMENTATION_CLASS_UID);
  dimse.Implementation.setImplementationVersion(IMPLEMENTATION_VERSION_NAME);
  dimse.Implementation.setMaxPduLength(1048576);
  return dimse;
}
