/**
 * Every dispatch target by name: DIMSE destinations (C-STORE), DICOMweb destinations (STOW-RS) and
 * notifications (HL7 ORU, FHIR, webhook). One dispatch job per (result, target); the worker picks
 * the sender by the target's kind.
 */
import type { Config, Destination } from './schema.js';
import type { DicomwebDestination, Notification } from './targets.js';

export type DispatchTarget =
  | { kind: 'dimse'; name: string; dest: Destination }
  | { kind: 'dicomweb'; name: string; dest: DicomwebDestination }
  | { kind: 'notification'; name: string; notification: Notification };

/** The targets in config order: destinations (DIMSE, then DICOMweb), then notifications. */
export function allTargets(config: Config): DispatchTarget[] {
  return [
    ...config.destinations.map((dest) => ({ kind: 'dimse' as const, name: dest.name, dest })),
    ...(config.dicomwebDestinations ?? []).map((dest) => ({ kind: 'dicomweb' as const, name: dest.name, dest })),
    ...(config.notifications ?? []).map((notification) => ({ kind: 'notification' as const, name: notification.name, notification })),
  ];
}

export function findTarget(config: Config, name: string): DispatchTarget | undefined {
  return allTargets(config).find((t) => t.name === name);
}

/** A short description for logs and the dashboard (no credentials). */
export function describeTarget(t: DispatchTarget): string {
  if (t.kind === 'dimse') return `DICOM ${t.dest.aeTitle}@${t.dest.host}:${t.dest.port}`;
  if (t.kind === 'dicomweb') return `DICOMweb ${new URL(t.dest.url).origin}${new URL(t.dest.url).pathname}`;
  const n = t.notification;
  if (n.type === 'hl7') return `HL7 ORU^R01 to ${n.receivingApplication} at ${n.host}:${n.port}${n.tls ? ' (TLS)' : ''}`;
  if (n.type === 'fhir') return `FHIR R4 ${new URL(n.url).origin}${new URL(n.url).pathname}`;
  return `webhook ${new URL(n.url).origin}${new URL(n.url).pathname}`;
}
