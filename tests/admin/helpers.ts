import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import dcmjs from 'dcmjs';
import { Redis } from 'ioredis';
import type { Config } from '../../src/config/schema.js';
import { writeSyntheticSeries, newUid } from '../../src/dicom/testing/synthetic-series.js';
import { dispatchJobId, inferenceJobId, instancesHash } from '../../src/queue/jobs.js';
import { Keys } from '../../src/stores/keys.js';
import type { DispatchAttempt, DispatchState, ResultRecord } from '../../src/contracts/result-record.js';
import { MLSAM_MAIN } from '../helpers/process.js';
import { waitFor } from '../queue/helpers.js';

/** MLSAM_* variables that make a child process use this test config. */
export function envOf(c: Config, extra: Record<string, string> = {}): Record<string, string> {
  return {
    MLSAM_REDIS__URL: c.redis.url,
    MLSAM_REDIS__KEY_PREFIX: c.redis.keyPrefix,
    MLSAM_SPOOL__DIR: c.spool.dir,
    MLSAM_SERIES__QUIET_PERIOD_SECONDS: String(c.series.quietPeriodSeconds),
    MLSAM_SERIES__ROUTING__MIN_SLICES: String(c.series.routing.minSlices),
    MLSAM_HTTP__USERNAME: c.http.username,
    MLSAM_HTTP__PASSWORD: c.http.password,
    MLSAM_HTTP__SHOW_PHI: String(c.http.showPhi),
    MLSAM_DESTINATIONS: JSON.stringify(c.destinations),
    ...extra,
  };
}

/** A `mlsam <command>` process (admin or serve) with the admin HTTP server on a free port. */
export class DaemonProcess {
  private proc: ChildProcess | undefined;
  /** PID of the running daemon. */
  get pid(): number | undefined {
    return this.proc?.pid;
  }
  stderr = '';
  httpPort = 0;
  dicomPort = 0;

  constructor(
    private readonly env: Record<string, string>,
    private readonly command: 'admin' | 'serve' = 'admin',
  ) {}

  /** Starts it; `onStdout` gets what it writes on stdout (ignored otherwise). */
  async start(opts: { onStdout?: (chunk: string) => void } = {}): Promise<number> {
    if (!existsSync(MLSAM_MAIN)) throw new Error(`${MLSAM_MAIN} missing: run \`npm run build\` first`);
    const args = this.command === 'serve' ? ['serve', '--host', '127.0.0.1', '--port', '0'] : ['admin', '--http-port', '0'];
    const proc = spawn(process.execPath, [MLSAM_MAIN, ...args], {
      env: { ...process.env, MLSAM_LOG__LEVEL: 'info', MLSAM_HTTP__PORT: '0', ...this.env },
      stdio: ['ignore', opts.onStdout ? 'pipe' : 'ignore', 'pipe'],
    });
    this.proc = proc;
    const onStdout = opts.onStdout;
    if (onStdout) proc.stdout?.on('data', (d: Buffer) => onStdout(d.toString()));
    proc.stderr?.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.httpPort = await waitFor(
      async () => {
        if (proc.exitCode !== null) throw new Error(`mlsam ${this.command} exited ${proc.exitCode}: ${this.stderr}`);
        for (const line of this.stderr.split('\n')) {
          if (!line.startsWith('{')) continue;
          const rec = JSON.parse(line) as { msg?: string; port?: number };
          if (rec.msg === 'listening' && rec.port) this.dicomPort = rec.port;
          if (rec.msg === 'admin listening' && rec.port) return rec.port;
        }
        return undefined;
      },
      30_000,
      `the "admin listening" log line of mlsam ${this.command}`,
      50,
    );
    return this.httpPort;
  }

  get exited(): boolean {
    return !this.proc || this.proc.exitCode !== null || this.proc.signalCode !== null;
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return p?.exitCode ?? null;
    const exited = new Promise<number | null>((resolve) => p.once('exit', (code) => resolve(code)));
    p.kill(signal);
    const timer = setTimeout(() => p.kill('SIGKILL'), 20_000);
    const code = await exited;
    clearTimeout(timer);
    this.proc = undefined;
    return code;
  }
}

/** `mlsam admin` on this config, and a fetch with these credentials. */
export async function startAdmin(config: Config, auth: [string, string]): Promise<{ admin: DaemonProcess; get: ReturnType<typeof http> }> {
  const admin = new DaemonProcess(envOf(config));
  await admin.start();
  return { admin, get: http(admin.httpPort, auth) };
}

/** fetch with basic auth (undefined credentials: none). */
export function http(port: number, creds?: [string, string]) {
  return async (path: string, init: RequestInit = {}): Promise<Response> => {
    const headers = new Headers(init.headers);
    if (creds) headers.set('authorization', `Basic ${Buffer.from(`${creds[0]}:${creds[1]}`).toString('base64')}`);
    return fetch(`http://127.0.0.1:${port}${path}`, { ...init, headers, redirect: 'manual' });
  };
}

const SC_CLASS = '1.2.840.10008.5.1.4.1.1.7';
const SR_CLASS = '1.2.840.10008.5.1.4.1.1.88.34';

function writePart10(path: string, naturalized: Record<string, unknown>, sopClassUid: string, sopInstanceUid: string): Promise<void> {
  const meta = dcmjs.data.DicomMetaDictionary.denaturalizeDataset({
    FileMetaInformationVersion: new Uint8Array([0, 1]).buffer,
    MediaStorageSOPClassUID: sopClassUid,
    MediaStorageSOPInstanceUID: sopInstanceUid,
    TransferSyntaxUID: '1.2.840.10008.1.2.1',
    ImplementationClassUID: '2.25.1',
  });
  const dict = new dcmjs.data.DicomDict(meta);
  dict.dict = dcmjs.data.DicomMetaDictionary.denaturalizeDataset({
    SOPClassUID: sopClassUid,
    SOPInstanceUID: sopInstanceUid,
    ...naturalized,
  });
  return writeFile(path, Buffer.from(dict.write()));
}

/**
 * A Secondary Capture like the results stage writes: 8-bit RGB, interleaved. The pixels are a
 * known pattern: red rises left → right, green top → bottom, blue 128.
 */
export async function writeRgbSc(
  path: string,
  ids: { study: string; series: string; sop: string },
  width = 64,
  height = 48,
): Promise<void> {
  const px = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      px[i] = Math.round((x / (width - 1)) * 255);
      px[i + 1] = Math.round((y / (height - 1)) * 255);
      px[i + 2] = 128;
    }
  }
  await writePart10(
    path,
    {
      StudyInstanceUID: ids.study,
      SeriesInstanceUID: ids.series,
      Modality: 'OT',
      SamplesPerPixel: 3,
      PhotometricInterpretation: 'RGB',
      PlanarConfiguration: 0,
      Rows: height,
      Columns: width,
      BitsAllocated: 8,
      BitsStored: 8,
      HighBit: 7,
      PixelRepresentation: 0,
      PixelData: px.buffer,
      _vrMap: { PixelData: 'OB' },
    },
    SC_CLASS,
    ids.sop,
  );
}

const code = (value: string, scheme: string, meaning: string): Record<string, string> => ({
  CodeValue: value,
  CodingSchemeDesignator: scheme,
  CodeMeaning: meaning,
});

/** A small TID 1500-shaped SR: a container with a finding, a probability and a text note. */
export async function writeSr(path: string, ids: { study: string; series: string; sop: string }, probability: number): Promise<void> {
  await writePart10(
    path,
    {
      StudyInstanceUID: ids.study,
      SeriesInstanceUID: ids.series,
      Modality: 'SR',
      SeriesDescription: 'ML-SAM result NOT FOR DIAGNOSTIC USE',
      ValueType: 'CONTAINER',
      ContinuityOfContent: 'SEPARATE',
      CompletionFlag: 'COMPLETE',
      VerificationFlag: 'UNVERIFIED',
      ConceptNameCodeSequence: [code('126000', 'DCM', 'Imaging Measurement Report')],
      ContentSequence: [
        {
          RelationshipType: 'CONTAINS',
          ValueType: 'TEXT',
          ConceptNameCodeSequence: [code('121106', 'DCM', 'Comment')],
          TextValue: 'NOT FOR DIAGNOSTIC USE',
        },
        {
          RelationshipType: 'CONTAINS',
          ValueType: 'CONTAINER',
          ContinuityOfContent: 'SEPARATE',
          ConceptNameCodeSequence: [code('125007', 'DCM', 'Measurement Group')],
          ContentSequence: [
            {
              RelationshipType: 'CONTAINS',
              ValueType: 'CODE',
              ConceptNameCodeSequence: [code('121071', 'DCM', 'Finding')],
              ConceptCodeSequence: [code('840539006', 'SCT', 'COVID-19')],
            },
            {
              RelationshipType: 'CONTAINS',
              ValueType: 'NUM',
              ConceptNameCodeSequence: [code('PROB', '99MLSAM', 'Series probability')],
              MeasuredValueSequence: [
                { NumericValue: probability.toFixed(4), MeasurementUnitsCodeSequence: [code('1', 'UCUM', 'no units')] },
              ],
            },
          ],
        },
      ],
    },
    SR_CLASS,
    ids.sop,
  );
}

export interface SeededSeries {
  studyInstanceUid: string;
  seriesInstanceUid: string;
  seriesDir: string;
  instancesHash: string;
  sops: string[];
  record?: ResultRecord;
}

/** A synthetic CT series in the spool (files named <SOP UID>.dcm as the listener writes them); a new study unless one is given. */
export async function spoolSeries(
  config: Config,
  count: number,
  opts: { patientName?: string; patientId?: string; seriesDescription?: string; seriesNumber?: number; studyInstanceUid?: string } = {},
): Promise<SeededSeries> {
  const studyInstanceUid = opts.studyInstanceUid ?? newUid();
  const seriesInstanceUid = newUid();
  const prefix = newUid();
  const seriesDir = join(config.spool.dir, studyInstanceUid, seriesInstanceUid);
  const s = await writeSyntheticSeries({
    dir: seriesDir,
    count,
    rows: 32,
    columns: 32,
    studyInstanceUid,
    seriesInstanceUid,
    sopInstanceUidPrefix: prefix,
    fileName: (i) => `${prefix}.${i + 1}.dcm`,
    ...(opts.patientName ? { patientName: opts.patientName } : {}),
    ...(opts.patientId ? { patientId: opts.patientId } : {}),
    ...(opts.seriesDescription ? { seriesDescription: opts.seriesDescription } : {}),
    ...(opts.seriesNumber !== undefined ? { seriesNumber: opts.seriesNumber } : {}),
  });
  const sops = s.instances.map((i) => i.sopInstanceUid);
  return { studyInstanceUid, seriesInstanceUid, seriesDir, instancesHash: instancesHash(sops), sops };
}

/** The tracker's Redis state for a spooled series (as the listener and settle would leave it). */
export async function trackSeries(
  redis: Redis,
  config: Config,
  s: SeededSeries,
  fields: { status: string; lastReceivedAt?: number; reason?: string; ignoreCode?: string; settled?: boolean },
): Promise<void> {
  const keys = new Keys(config.redis.keyPrefix);
  const last = fields.lastReceivedAt ?? Date.now() - 60_000;
  const h: Record<string, string> = {
    studyInstanceUid: s.studyInstanceUid,
    seriesInstanceUid: s.seriesInstanceUid,
    seriesDir: s.seriesDir,
    callingAeTitle: 'PACS',
    firstReceivedAt: String(last - 5_000),
    lastReceivedAt: String(last),
    status: fields.status,
  };
  if (fields.settled !== false && fields.status !== 'receiving') {
    Object.assign(h, {
      instanceCount: String(s.sops.length),
      instancesHash: s.instancesHash,
      settledAt: String(last + 1000),
      jobId: inferenceJobId(s.seriesInstanceUid, s.instancesHash),
      queuedHash: s.instancesHash,
    });
  }
  if (fields.reason) h.reason = fields.reason;
  if (fields.ignoreCode) h.ignoreCode = fields.ignoreCode;
  const inst: Record<string, string> = {};
  for (const sop of s.sops) inst[sop] = JSON.stringify({ m: 'CT', b: 'CHEST', t: ['ORIGINAL', 'PRIMARY', 'AXIAL'] });
  await redis
    .multi()
    .hset(keys.series(s.seriesInstanceUid), h)
    .hset(keys.seriesInstances(s.seriesInstanceUid), inst)
    .zadd(keys.seriesIndex(), last, s.seriesInstanceUid)
    .exec();
}

/** A result record with per-slice probabilities, and (scored) real SR + SC files in the results area. */
export async function writeResult(
  redis: Redis,
  config: Config,
  s: SeededSeries,
  status: ResultRecord['status'],
  opts: { reason?: string; finishedAt?: number; score?: number; outputs?: boolean; opacity?: boolean } = {},
): Promise<ResultRecord> {
  const keys = new Keys(config.redis.keyPrefix);
  const finished = opts.finishedAt ?? Date.now() - 30_000;
  const probs = s.sops.map((_, i) => Math.max(0, Math.min(1, 0.5 + 0.45 * Math.sin((i / s.sops.length) * Math.PI) - 0.2)));
  const scored = status === 'scored';
  const slices = scored
    ? s.sops.map((sop, i) => ({
        index: i,
        sopInstanceUid: sop,
        sopClassUid: '1.2.840.10008.5.1.4.1.1.2',
        file: join(s.seriesDir, `${sop}.dcm`),
        probability: probs[i]!,
        position: i * 2.5,
        instanceNumber: i + 1,
      }))
    : [];
  if (scored && opts.opacity) {
    // What the fused CNN + HU opacity model writes: per-slice lung area and opacity, the first two
    // and the last slice with too little lung (above the apex, below the bases).
    const n = slices.length;
    for (const [i, sl] of slices.entries()) {
      const lung = i < 2 || i === n - 1 ? 150 : 9_000 + 400 * i;
      Object.assign(sl, {
        cnnProbability: Math.max(0, sl.probability - 0.05),
        lungAreaMm2: lung,
        opacityPercent: lung < 1_000 ? 0 : Math.round(10 * (2 + 30 * Math.sin((i / n) * Math.PI))) / 10,
        highOpacityPercent: lung < 1_000 ? 0 : Math.round(10 * (1 + 5 * Math.sin((i / n) * Math.PI))) / 10,
        eligible: lung >= 1_000,
        ...(lung < 1_000 ? { ineligibleReason: 'lung area 150 mm² < 1000 mm²' } : {}),
      });
    }
  }
  const top = [...slices]
    .filter((x) => (x as { eligible?: boolean }).eligible !== false)
    .sort((a, b) => b.probability - a.probability)
    .slice(0, 2);
  const record: ResultRecord = {
    studyInstanceUid: s.studyInstanceUid,
    seriesInstanceUid: s.seriesInstanceUid,
    instancesHash: s.instancesHash,
    jobId: inferenceJobId(s.seriesInstanceUid, s.instancesHash),
    seriesDir: s.seriesDir,
    callingAeTitle: 'PACS',
    status,
    ...(opts.reason ? { reason: opts.reason } : {}),
    model: { name: 'mlsam-mobilenetv2', version: '1.0.0', sha256: 'a'.repeat(64) },
    provider: 'cpu',
    instanceCount: s.sops.length,
    ...(scored ? { score: opts.score ?? 0.81, category: 'likely' as const, threshold: 0.5, k: 2 } : {}),
    ...(scored && opts.opacity
      ? {
          cnnScore: 0.74,
          fusion: 'cnn+opacity' as const,
          opacity: {
            method: 'hu-threshold-v1',
            opacityHu: [-750, 50] as [number, number],
            highOpacityHu: [-300, 50] as [number, number],
            sliceThicknessMm: 5,
            groundGlassOpenMm: 2.7,
            total: { lungMl: 4200, opacityMl: 630, highOpacityMl: 84, percentOpacity: 15, percentHighOpacity: 2 },
            left: { lungMl: 1900, opacityMl: 190, highOpacityMl: 19, percentOpacity: 10, percentHighOpacity: 1 },
            right: { lungMl: 2300, opacityMl: 440, highOpacityMl: 65, percentOpacity: 19.1, percentHighOpacity: 2.8 },
          },
          // the distribution features and pattern category (src/scoring/series-pattern.ts) of such a series
          pattern: {
            category: 'typical' as const,
            rule: 'rsna-distribution-v1',
            criteria: [
              'bilateral (the less involved lung holds 30 %)',
              'peripheral (78 % in the outer third, lung 48 %)',
              'ground glass 87 %',
            ],
            features: {
              opacityMl: 630,
              percentOpacity: 15,
              groundGlassShare: 0.8667,
              rightOpacityMl: 440,
              leftOpacityMl: 190,
              minorityLungShare: 0.3016,
              peripheralShare: 0.78,
              lungPeripheralShare: 0.48,
              dorsalShare: 0.71,
              lungDorsalShare: 0.55,
              zoneShare: { upper: 0.1, middle: 0.3, lower: 0.6 },
              lungZoneShare: { upper: 0.3, middle: 0.45, lower: 0.25 },
              foci: 7,
              smallFoci: 40,
              smallFociShare: 0.05,
              largestFocusMl: 210,
              largestFocusShare: 0.3333,
              roundness: 0.55,
            },
          },
        }
      : {}),
    slices,
    keySlices: top.map((t) => ({ index: t.index, sopInstanceUid: t.sopInstanceUid, probability: t.probability })),
    dropped: status === 'not-scored' ? [{ sopInstanceUid: null, reason: opts.reason ?? 'not scored' }] : [],
    timings: scored
      ? { waitMs: 31_000, readMs: 120, decodeMs: 800, preprocessMs: 300, inferMs: 2_400, aggregateMs: 2, resultsMs: 450, totalMs: 4_100 }
      : { totalMs: 50 },
    startedAt: new Date(finished - 4_100).toISOString(),
    finishedAt: new Date(finished).toISOString(),
    attemptsMade: 1,
  };
  if (scored && opts.outputs !== false) {
    const dir = join(config.spool.dir, 'results', s.studyInstanceUid, s.seriesInstanceUid, `${s.instancesHash.slice(0, 16)}-1.0.0`);
    await mkdir(dir, { recursive: true });
    const srSeries = newUid();
    const scSeries = newUid();
    const srSop = newUid();
    await writeSr(join(dir, 'sr.dcm'), { study: s.studyInstanceUid, series: srSeries, sop: srSop }, record.score ?? 0);
    record.outputs = [{ kind: 'sr', path: join(dir, 'sr.dcm'), sopClassUid: SR_CLASS, sopInstanceUid: srSop, seriesInstanceUid: srSeries }];
    for (const [i, t] of top.entries()) {
      const sop = newUid();
      const path = join(dir, `heatmap-0${i + 1}.dcm`);
      await writeRgbSc(path, { study: s.studyInstanceUid, series: scSeries, sop });
      record.outputs.push({
        kind: 'heatmap',
        path,
        sopClassUid: SC_CLASS,
        sopInstanceUid: sop,
        seriesInstanceUid: scSeries,
        sourceSopInstanceUid: t.sopInstanceUid,
      });
    }
  }
  await redis
    .multi()
    .set(keys.result(s.seriesInstanceUid), JSON.stringify(record))
    .zadd(keys.resultIndex(), finished, s.seriesInstanceUid)
    .exec();
  s.record = record;
  return record;
}

/** Dispatch state + attempt log of a series, as the dispatch worker writes them. */
export async function writeDispatch(
  redis: Redis,
  config: Config,
  s: SeededSeries,
  dest: string,
  outcome: 'sent' | 'failed',
  at = Date.now() - 20_000,
): Promise<void> {
  const keys = new Keys(config.redis.keyPrefix);
  const files = s.record?.outputs?.length ?? 1;
  const attempts: DispatchAttempt[] =
    outcome === 'sent'
      ? [
          {
            destination: dest,
            instancesHash: s.instancesHash,
            attempt: 1,
            at: new Date(at - 15_000).toISOString(),
            ms: 30,
            outcome: 'failed',
            sent: 0,
            warnings: 0,
            failed: files,
            error: 'connect ECONNREFUSED 127.0.0.1:1',
          },
          {
            destination: dest,
            instancesHash: s.instancesHash,
            attempt: 2,
            at: new Date(at).toISOString(),
            ms: 420,
            outcome: 'sent',
            sent: files,
            warnings: 0,
            failed: 0,
          },
        ]
      : [
          {
            destination: dest,
            instancesHash: s.instancesHash,
            attempt: 1,
            at: new Date(at).toISOString(),
            ms: 25,
            outcome: 'failed',
            sent: 0,
            warnings: 0,
            failed: files,
            error: 'association rejected',
          },
        ];
  const state: DispatchState = {
    destination: dest,
    instancesHash: s.instancesHash,
    status: outcome,
    attempts: attempts.length,
    instancesSent: outcome === 'sent' ? files : 0,
    warnings: 0,
    ...(outcome === 'failed' ? { lastError: 'association rejected' } : { sentAt: new Date(at).toISOString() }),
    lastAttemptAt: new Date(at).toISOString(),
    // The id the real dispatcher gives this (result, destination) job.
    jobId: dispatchJobId(s.seriesInstanceUid, s.instancesHash, s.record?.model.version ?? 'none', dest),
  };
  const m = redis.multi().hset(keys.dispatch(s.seriesInstanceUid), dest, JSON.stringify(state));
  for (const a of attempts) m.lpush(keys.dispatchLog(s.seriesInstanceUid), JSON.stringify(a));
  await m.exec();
}

export function plainRedis(url: string): Redis {
  const r = new Redis(url, { maxRetriesPerRequest: 1 });
  r.on('error', () => undefined);
  return r;
}

/** DCMTK storescp (TCP_NODELAY=1) writing what it receives into `dir`; stop() kills it by PID. */
export async function startStorescp(port: number, dir: string, aeTitle = 'PACS'): Promise<{ stop(): Promise<void> }> {
  const { createServer } = await import('node:net');
  const proc = spawn('storescp', ['+xa', '--aetitle', aeTitle, '-od', dir, String(port)], {
    env: { ...process.env, TCP_NODELAY: '1' },
    stdio: 'ignore',
  });
  await waitFor(
    () =>
      new Promise<boolean>((res) => {
        if (proc.exitCode !== null) return res(false);
        const s = createServer();
        s.once('error', () => res(true));
        s.listen(port, '127.0.0.1', () => s.close(() => res(false)));
      }),
    10_000,
    `storescp on ${port}`,
  );
  return {
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGKILL');
      await exited;
    },
  };
}
