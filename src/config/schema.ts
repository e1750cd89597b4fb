import { isIP } from 'node:net';
import { z } from 'zod';
import {
  dicomwebDestinationSchema,
  dispatchModeSchema,
  notificationSchema,
  STOW_RECEIVER_DEFAULTS,
  stowReceiverSchema,
  type DicomwebDestination,
} from './targets.js';

/** ISO-8601 date (2026-03-31) or date-time. */
const isoDate = z
  .string()
  .refine(
    (s) => /^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(s) && !Number.isNaN(Date.parse(s)),
    'must be an ISO-8601 date such as 2026-03-31',
  );

/** The drift watch's windows, bands and rules (docs/drift.md). */
export const driftSchema = z.strictObject({
  /**
   * The reference window: "first" the first `studies` scored studies; "period" the studies scored
   * from `from` to `to` (ISO dates, `to` inclusive; e.g. the local validation's retrospective run).
   */
  reference: z
    .strictObject({
      kind: z.enum(['first', 'period']),
      studies: z.number().int().min(1),
      from: z.union([z.literal(''), isoDate]),
      to: z.union([z.literal(''), isoDate]),
    })
    .superRefine((r, ctx) => {
      if (r.kind !== 'period') return;
      for (const k of ['from', 'to'] as const)
        if (r[k] === '') ctx.addIssue({ code: 'custom', path: [k], message: 'must be set when drift.reference.kind is "period"' });
      if (r.from && r.to && Date.parse(r.from) > Date.parse(r.to))
        ctx.addIssue({ code: 'custom', path: ['to'], message: 'must not be before drift.reference.from' });
    }),
  /** The current window, after the reference: "last" the last `studies` studies, "days" the studies of the last `days` days. */
  current: z.strictObject({
    kind: z.enum(['last', 'days']),
    studies: z.number().int().min(1),
    days: z.number().positive(),
  }),
  /** Fewer studies than this in either window: "not enough studies", no figure and no alarm. */
  minStudies: z.number().int().min(2),
  /** Reference-quantile bins for the PSI of score and opacity. */
  bins: z.number().int().min(2).max(50),
  /** PSI bands: below moderate stable, moderate..shift moderate, from shift on a shift. */
  psiBands: z
    .strictObject({ moderate: z.number().positive(), shift: z.number().positive() })
    .refine((b) => b.moderate < b.shift, 'moderate must be below shift'),
  /** A variable alarms only when its difference is also beyond chance at this level (PSI χ² approximation; KS for score and opacity). */
  alpha: z.number().gt(0).lt(1),
  agreement: z.strictObject({
    /** Alarm when the current agreement's Wilson 95 % upper bound is below this; null: compare with the reference window. */
    floor: z.number().gt(0).max(1).nullable(),
    /** Radiologist answers (agree / disagree) a window needs before its agreement is judged. */
    minAnswers: z.number().int().min(1),
  }),
  /** The figures are recomputed this often (and at most this often on scrape or page view). */
  refreshSeconds: z.number().positive(),
});
export type DriftConfig = z.infer<typeof driftSchema>;

export const DRIFT_DEFAULTS: DriftConfig = {
  reference: { kind: 'first', studies: 100, from: '', to: '' },
  current: { kind: 'last', studies: 100, days: 30 },
  minStudies: 30,
  bins: 10,
  psiBands: { moderate: 0.1, shift: 0.25 },
  alpha: 0.01,
  agreement: { floor: null, minAnswers: 20 },
  refreshSeconds: 300,
};

/** An AE title: 1–16 characters of the default repertoire, no backslash, not all spaces. */
const aeTitle = z
  .string()
  .min(1)
  .max(16)
  .regex(/^[\x20-\x5b\x5d-\x7e]+$/, 'AE title must be printable ASCII without backslash')
  .refine((s) => s.trim().length > 0, 'AE title must not be blank');

const port = z.number().int().min(1).max(65535);

export const allowedCallerSchema = z.strictObject({
  /** Calling AE title, or "*" for any. */
  aeTitle: z.union([z.literal('*'), aeTitle]),
  /** Peer address (IP literal) or "*" for any host. */
  host: z.string().min(1).default('*'),
});

/** PEM file paths for DICOM TLS; "" means not given. */
const pemPath = z.string();

/** DICOM TLS to one destination (PS3.15 B.9 / BCP 195: TLS 1.2 or later, the server certificate checked). */
export const destinationTlsSchema = z.strictObject({
  /** CA certificate(s) the destination's certificate must chain to; default dicom.tls.caFile. */
  caFile: pemPath.optional(),
  /** Our client certificate and key; default dicom.tls.certFile / keyFile (the node's identity). */
  certFile: pemPath.optional(),
  keyFile: pemPath.optional(),
  /** Check that the certificate names the host (default true; DICOM peers often have IP-only certificates). */
  verifyHostname: z.boolean().default(true),
});

export const destinationSchema = z.strictObject({
  /** DIMSE C-STORE (the default); `dicomweb` entries are DicomwebDestination (config/targets.ts). */
  type: z.literal('dicom').optional(),
  name: z.string().min(1),
  aeTitle,
  host: z.string().min(1),
  port,
  callingAeTitle: aeTitle.optional(),
  /** Present: C-ECHO and C-STORE to this destination over DICOM TLS. */
  tls: destinationTlsSchema.optional(),
  /** "silent": this destination's results are held on the node (overrides dispatch.mode; see targets.ts). */
  mode: dispatchModeSchema.optional(),
});

export const configSchema = z
  .strictObject({
    dicom: z.strictObject({
      aeTitle,
      host: z.string().min(1),
      port: z.number().int().min(0).max(65535),
      allowedCallers: z.array(allowedCallerSchema),
      /** Associations served at once; more are rejected (transient, local limit exceeded). */
      maxAssociations: z.number().int().min(1),
      /** Largest P-DATA-TF PDU we accept and announce. */
      maxPduLength: z.number().int().min(4096).max(1048576),
      /** Time allowed for the association request after TCP connect. */
      associationTimeoutSeconds: z.number().positive(),
      /** An association with no PDU for this long is aborted. */
      idleTimeoutSeconds: z.number().positive(),
      /**
       * Progress deadline: while a PDU or a dataset is on its way, at least
       * minTransferBytesPerSecond × progressTimeoutSeconds bytes must arrive in every
       * progressTimeoutSeconds, else the association is aborted and the partial instance removed.
       */
      progressTimeoutSeconds: z.number().positive(),
      /** 0 turns the progress deadline off. */
      minTransferBytesPerSecond: z.number().min(0),
      /** After an A-ASSOCIATE-RJ or A-ABORT, how long we wait for the peer to close (PS3.8 ARTIM). */
      artimTimeoutSeconds: z.number().positive(),
      /**
       * Accept every standard storage SOP class (Secondary Capture dose screens, dose SRs, presentation
       * states, other images) and store it unscored, so a forwarded whole study never fails at the PACS;
       * false refuses their presentation contexts (only CT and Enhanced CT Image Storage accepted).
       */
      acceptUnscoredSopClasses: z.boolean(),
      /** Sequences nested deeper than this in a dataset: C-STORE answered 0xC000. */
      maxSequenceDepth: z.number().int().min(1).max(10000),
      /** Sequence items plus Pixel Data fragments allowed in one dataset. */
      maxItemsPerInstance: z.number().int().min(1),
      /** DICOM TLS for the listener (plain TCP when disabled). */
      tls: z.strictObject({
        enabled: z.boolean(),
        /** PEM certificate (chain) and private key of this node. */
        certFile: pemPath,
        keyFile: pemPath,
        /** PEM CA certificate(s) that client certificates must chain to (and default trust for destinations). */
        caFile: pemPath,
        /** Refuse peers without a client certificate that chains to caFile. */
        requireClientCert: z.boolean(),
      }),
    }),
    redis: z.strictObject({
      url: z.string().regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL'),
      keyPrefix: z
        .string()
        .min(1)
        .regex(/^[A-Za-z0-9_.-]+$/),
    }),
    spool: z.strictObject({
      dir: z.string().min(1),
      /** C-STORE answers 0xA700 (out of resources) when the spool's file system is fuller than this. */
      maxDiskUsagePercent: z.number().min(1).max(100),
      /** Inputs and results are deleted this many days after they were dispatched (never before). */
      retentionDays: z.number().positive(),
      /** node-cron expression for the retention sweep. */
      retentionCron: z.string().min(1),
    }),
    /**
     * The durable results store (results, feedback, labels, users, audit): `sqlite:<file>` (embedded),
     * a `postgres://` / `postgresql://` URL for several hosts, or "" (the default): SQLite in
     * `<spool.dir>/.db/mlsam.sqlite`. Redis stays the queue.
     */
    storage: z.strictObject({
      url: z.string().regex(/^(|sqlite:.+|postgres(ql)?:\/\/.+)$/, 'must be "", sqlite:<file> or a postgres:// URL'),
      /** Results older than this many days are deleted from the store (0 keeps them; feedback is kept). */
      retentionDays: z.number().min(0),
      /** While the database is unreachable results wait in Redis; the catch-up runs this often. */
      catchUpSeconds: z.number().positive(),
    }),
    series: z.strictObject({
      quietPeriodSeconds: z.number().positive(),
      /** node-cron expression for the spool reconciler. */
      reconcileCron: z.string().min(1),
      routing: z.strictObject({
        modalities: z.array(z.string()),
        /** Accepted BodyPartExamined values; "" accepts a missing or empty one. */
        bodyParts: z.array(z.string()),
        /** Instances whose ImageType contains one of these are not scored. */
        excludeImageTypes: z.array(z.string()),
        minSlices: z.number().int().min(1),
      }),
      /**
       * Which series of a complete study is scored (src/queue/series-selection.ts; unused when
       * results.perSeries is true). A study is complete when none of its series received an instance
       * for quietPeriodSeconds: one quiet period for both.
       */
      selection: z.strictObject({
        /** A series whose ImageType holds one of these is a reformat or projection, never a candidate. */
        excludeImageTypes: z.array(z.string()),
        /** Candidates must cover at least this many mm along z (a chest is 250-350 mm). */
        minCoverageMm: z.number().min(0),
        /** Slices this thick or thinner come first. */
        thinSliceMm: z.number().positive(),
        /** Kernel preference among thin candidates: soft/standard first (HU quantification), sharp first, or none. */
        preferKernel: z.enum(['soft', 'sharp', 'any']),
        /** Case-insensitive regular expressions that make a ConvolutionKernel "sharp". */
        sharpKernels: z.array(
          z.string().refine((p) => {
            try {
              new RegExp(p, 'i');
              return true;
            } catch {
              return false;
            }
          }, 'must be a regular expression'),
        ),
      }),
    }),
    audit: z.strictObject({
      retentionDays: z.number().positive(),
      maxEntries: z.number().int().min(1),
    }),
    /**
     * Where result objects go: DICOM C-STORE (`type` absent or "dicom") or DICOMweb STOW-RS (`type:
     * "dicomweb"`). After parsing, `destinations` holds the DIMSE ones and `dicomwebDestinations` the
     * DICOMweb ones (see the transform below).
     */
    destinations: z.array(z.union([destinationSchema, dicomwebDestinationSchema])),
    /** Who is told about a result: HL7 ORU^R01, FHIR R4, webhook (config/targets.ts). */
    notifications: z.array(notificationSchema).default([]),
    http: z.strictObject({
      host: z.string().min(1),
      port: z.number().int().min(0).max(65535),
      username: z.string().min(1),
      password: z.string(),
      /** Show patient name and ID on the dashboard and in the API (default false: UIDs only). */
      showPhi: z.boolean(),
      /**
       * A reverse proxy (TLS termination) in front of the admin server: trust its X-Forwarded-For
       * and X-Forwarded-Proto (fastify trustProxy; the client address of the STOW-RS allow-list
       * and the Secure session cookie then follow them). Default false.
       */
      trustProxy: z.boolean().default(false),
      /**
       * Browser sessions of the dashboard (login page, src/admin/sessions.ts): a login lasts
       * maxAgeHours; the cookie is marked Secure with secureCookie "auto" whenever the browser came
       * over HTTPS (directly or through the trusted proxy), always with true (then plain HTTP gets
       * no session), never with false. loginAttemptsPerMinute bounds POST /login per client address
       * (a password-guessing brake; 429 beyond it).
       */
      sessions: z
        .strictObject({
          maxAgeHours: z.number().positive().max(720),
          secureCookie: z.union([z.literal('auto'), z.boolean()]),
          loginAttemptsPerMinute: z.number().int().min(1).max(1000).default(10),
        })
        .default({ maxAgeHours: 12, secureCookie: 'auto', loginAttemptsPerMinute: 10 }),
      /** DICOMweb STOW-RS receiver under /dicom-web/studies (config/targets.ts). */
      stow: stowReceiverSchema.default(STOW_RECEIVER_DEFAULTS),
    }),
    model: z.strictObject({
      path: z.string().min(1),
      providers: z.array(z.enum(['cpu', 'cuda', 'tensorrt', 'dml', 'coreml'])).min(1),
      /** ONNX Runtime intra-op threads per session; 0 lets ONNX Runtime choose. */
      intraOpThreads: z.number().int().min(0),
      /** Slices per inference batch. */
      batchSize: z.number().int().min(1).max(256),
    }),
    worker: z.strictObject({
      /** Inference jobs one worker process runs at once (each has its own ONNX session). */
      concurrency: z.number().int().min(1),
      /** Dispatch jobs one worker process runs at once. */
      dispatchConcurrency: z.number().int().min(1),
      /**
       * Threads that decode, analyse the lungs and preprocess slices beside inference (0: on the JS thread).
       * Absent: one per core.
       */
      prepareThreads: z.number().int().min(0).max(256).optional(),
      /**
       * BullMQ job lock of an inference job; renewed every half of it while the job runs. A worker
       * that dies (SIGKILL, host lost) leaves its job to another worker once the lock has expired.
       */
      lockDurationSeconds: z.number().positive(),
      /** How often a worker looks for jobs whose lock expired (stalled) and takes them back. */
      stalledIntervalSeconds: z.number().positive(),
    }),
    results: z.strictObject({
      /** Secondary Capture heatmaps for the top-k slices. */
      heatmapSlices: z.number().int().min(0).max(50),
      /** Add the per-slice probability summary image to the SC series. */
      summaryImage: z.boolean(),
      /** Send an SR that says why when a series could not be scored. */
      reportNotScored: z.boolean(),
      /** Add a Key Object Selection document ("Of Interest") naming the key slices, for viewers that flag key images. */
      keyObjectSelection: z.boolean(),
      /**
       * false (default): one result set per study, on the series chosen by series.selection. true:
       * every series that routing accepts is scored and gets its own result set.
       */
      perSeries: z.boolean(),
      /** Add a DICOM Segmentation (SEG) of the lungs, ground glass and consolidation over the whole scored series (HU series). */
      segmentation: z.boolean(),
      /** Add a Grayscale Softcopy Presentation State per key slice (lung window, opacity outlines, text), for viewers that show GSPS but not TID 1500. */
      presentationStates: z.boolean(),
    }),
    dispatch: z.strictObject({
      /**
       * "live" (default): results are sent. "silent": computed, stored and shown on the dashboard,
       * but nothing leaves the node (no C-STORE, STOW-RS, HL7, FHIR or webhook) until an admin
       * releases it; the initial state, an admin's switch (settings table) wins.
       */
      mode: dispatchModeSchema.default('live'),
      /** Tries per (result, destination) before the job is parked as failed. */
      attempts: z.number().int().min(1),
      /** First retry delay; doubles on each try up to maxBackoffSeconds. */
      backoffSeconds: z.number().positive(),
      maxBackoffSeconds: z.number().positive(),
      /** Connect / association / response timeout. */
      timeoutSeconds: z.number().positive(),
      /** node-cron expression for the periodic C-ECHO of every destination. */
      echoCron: z.string().min(1),
    }),
    log: z.strictObject({
      level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
    }),
    /** Drift watch (src/drift, docs/drift.md): the input mix and the outputs now against a reference window. */
    drift: driftSchema.default(DRIFT_DEFAULTS),
  })
  .superRefine((cfg, ctx) => {
    const names = [...cfg.destinations.map((d) => d.name), ...cfg.notifications.map((n) => n.name)];
    for (const dup of new Set(names.filter((n, i) => names.indexOf(n) !== i))) {
      ctx.addIssue({
        code: 'custom',
        path: ['notifications'],
        message: `target name "${dup}" is used twice (names are unique across destinations and notifications)`,
      });
    }
    const tls = cfg.dicom.tls;
    if (tls.enabled) {
      for (const key of ['certFile', 'keyFile'] as const) {
        if (tls[key] === '')
          ctx.addIssue({ code: 'custom', path: ['dicom', 'tls', key], message: 'must be set when dicom.tls.enabled is true' });
      }
    }
    if (tls.requireClientCert && tls.caFile === '') {
      ctx.addIssue({ code: 'custom', path: ['dicom', 'tls', 'caFile'], message: 'must be set when dicom.tls.requireClientCert is true' });
    }
    if (cfg.http.password === '' && !isLoopback(cfg.http.host)) {
      ctx.addIssue({
        code: 'custom',
        path: ['http', 'password'],
        message: `must be set when http.host (${cfg.http.host}) is not a loopback address`,
      });
    }
  })
  .transform(({ destinations, ...rest }) => ({
    ...rest,
    /** The DIMSE (C-ECHO / C-STORE) destinations. */
    destinations: destinations.filter((d): d is z.infer<typeof destinationSchema> => d.type !== 'dicomweb'),
    /** The DICOMweb (STOW-RS) destinations. */
    dicomwebDestinations: destinations.filter((d): d is DicomwebDestination => d.type === 'dicomweb'),
  }));

export type Config = z.infer<typeof configSchema>;
export type AllowedCaller = z.infer<typeof allowedCallerSchema>;
/** A DIMSE (C-STORE) destination. */
export type Destination = z.infer<typeof destinationSchema>;
/** Any destination of result objects. */
export type AnyDestination = Destination | DicomwebDestination;

/** Every destination of result objects, DIMSE first then DICOMweb (dispatch, retention and the dashboard wait for all of them). */
export function resultDestinations(cfg: Pick<Config, 'destinations' | 'dicomwebDestinations'>): AnyDestination[] {
  return [...cfg.destinations, ...(cfg.dicomwebDestinations ?? [])];
}
export type DestinationTls = z.infer<typeof destinationTlsSchema>;

export function isLoopback(host: string): boolean {
  if (host === 'localhost' || host === '::1') return true;
  return isIP(host) === 4 && host.startsWith('127.');
}
