/**
 * Configuration of the targets beyond DIMSE (issue 25): DICOMweb STOW-RS destinations (in
 * `destinations`, beside the C-STORE ones) and the notification targets (`notifications`: HL7 v2
 * ORU^R01 over MLLP, FHIR R4, webhook). Every target goes through the dispatch queue by its `name`,
 * so names are unique across `destinations` and `notifications` (checked in schema.ts).
 */
import { z } from 'zod';

const port = z.number().int().min(1).max(65535);

/**
 * Whether results go out ("live") or are held on the node ("silent": computed, stored and shown,
 * never sent) — `dispatch.mode` for every target, `mode` on one destination or notification to
 * override it. This is the initial state: an admin's switch on the dashboard or
 * `POST /api/dispatch/release|silence` is kept in the results store's settings table and wins
 * (src/db/dispatch-modes.ts has the precedence).
 */
export const dispatchModeSchema = z.enum(['live', 'silent']);
export type DispatchMode = z.infer<typeof dispatchModeSchema>;
/** The optional per-target override. */
const targetMode = { mode: dispatchModeSchema.optional() };
const httpUrl = z
  .string()
  .url()
  .regex(/^https?:\/\//, 'must be an http:// or https:// URL');

/** Credentials for an HTTP target: none, a bearer token, or basic auth. */
export const httpAuthSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('none') }),
  z.strictObject({ type: z.literal('bearer'), token: z.string().min(1) }),
  z.strictObject({ type: z.literal('basic'), username: z.string().min(1), password: z.string() }),
]);
export type HttpAuth = z.infer<typeof httpAuthSchema>;

/** TLS for an HTTPS or MLLP/TLS target: the CA to trust (default: the system's) and an optional client certificate. */
export const targetTlsSchema = z.strictObject({
  caFile: z.string().optional(),
  certFile: z.string().optional(),
  keyFile: z.string().optional(),
  /** Check that the certificate names the host (default true). */
  verifyHostname: z.boolean().default(true),
});
export type TargetTls = z.infer<typeof targetTlsSchema>;

/** A DICOMweb archive: result objects stored by STOW-RS (POST `<url>/studies`). */
export const dicomwebDestinationSchema = z.strictObject({
  type: z.literal('dicomweb'),
  name: z.string().min(1),
  ...targetMode,
  /** DICOMweb root, e.g. https://pacs.example.org/dicom-web (the node POSTs to `<url>/studies`). */
  url: httpUrl,
  auth: httpAuthSchema.default({ type: 'none' }),
  /** For https: trust and client certificate (default: the system's CAs). */
  tls: targetTlsSchema.optional(),
});
export type DicomwebDestination = z.infer<typeof dicomwebDestinationSchema>;

/** HL7 v2.5.1 ORU^R01 to a RIS / worklist over MLLP (optionally MLLP over TLS). */
export const hl7NotificationSchema = z.strictObject({
  type: z.literal('hl7'),
  name: z.string().min(1),
  ...targetMode,
  host: z.string().min(1),
  port,
  /** MSH-3 / MSH-5 (HD namespace IDs). */
  sendingApplication: z.string().min(1).default('MLSAM'),
  sendingFacility: z.string().default(''),
  receivingApplication: z.string().min(1),
  receivingFacility: z.string().default(''),
  /** MSH-11: P (production), T (training), D (debugging). */
  processingId: z.enum(['P', 'T', 'D']).default('P'),
  /** Present: MLLP over TLS. */
  tls: targetTlsSchema.optional(),
});
export type Hl7Notification = z.infer<typeof hl7NotificationSchema>;

/** FHIR R4 server: a DiagnosticReport and its Observations, PUT by deterministic ids. */
export const fhirNotificationSchema = z.strictObject({
  type: z.literal('fhir'),
  name: z.string().min(1),
  ...targetMode,
  /** FHIR base URL, e.g. https://fhir.example.org/r4 */
  url: httpUrl,
  auth: httpAuthSchema.default({ type: 'none' }),
  tls: targetTlsSchema.optional(),
});
export type FhirNotification = z.infer<typeof fhirNotificationSchema>;

/** Webhook: one signed JSON document per result (HMAC-SHA256 of the body with `secret`). */
export const webhookNotificationSchema = z.strictObject({
  type: z.literal('webhook'),
  name: z.string().min(1),
  ...targetMode,
  url: httpUrl,
  secret: z.string().min(16, 'use a secret of at least 16 characters'),
  /** Base URL of the dashboard as the receiver reaches it, for the links in the document (default: none). */
  dashboardUrl: httpUrl.optional(),
  tls: targetTlsSchema.optional(),
});
export type WebhookNotification = z.infer<typeof webhookNotificationSchema>;

export const notificationSchema = z.discriminatedUnion('type', [hl7NotificationSchema, fhirNotificationSchema, webhookNotificationSchema]);
export type Notification = z.infer<typeof notificationSchema>;

/** The DICOMweb STOW-RS receiver on the node's HTTP server (`http.stow`, POST /dicom-web/studies). */
export const stowReceiverSchema = z.strictObject({
  enabled: z.boolean(),
  /** Bearer tokens an archive may present (Authorization: Bearer <token>), each at least 16 characters. */
  tokens: z.array(z.string().min(16, 'use tokens of at least 16 characters')),
  /** Also accept the dashboard's basic-auth credentials (http.username / http.password). */
  basicAuth: z.boolean(),
  /** Client IP addresses allowed to store ("*": any), checked before the credentials. */
  allowedHosts: z.array(z.string().min(1)).min(1),
  /** Largest request body accepted (413 above it). The body is held in memory while it is checked. */
  maxRequestMB: z.number().positive(),
  /** Largest single instance (part) accepted (413 above it). */
  maxInstanceMB: z.number().positive(),
});
export type StowReceiverConfig = z.infer<typeof stowReceiverSchema>;

export const STOW_RECEIVER_DEFAULTS: StowReceiverConfig = {
  enabled: false,
  tokens: [],
  basicAuth: true,
  allowedHosts: ['*'],
  maxRequestMB: 200,
  maxInstanceMB: 50,
};
