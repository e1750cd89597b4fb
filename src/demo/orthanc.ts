/**
 * Debian's Orthanc as a local PACS for the demo, the benchmark and the end-to-end tests.
 *
 * - Loopback only: the REST API refuses remote clients (RemoteAccessAllowed false) and the DICOM
 *   server accepts only the modalities it is given, checked by AE title AND host (127.0.0.1).
 *   Orthanc binds every interface (it has no bind-address option), so callers send to 127.0.0.1.
 * - Its own temp StorageDirectory / IndexDirectory, free ports unless given, no plugins, no
 *   authentication, TCP_NODELAY=1.
 * - Stopped by PID (SIGTERM, then SIGKILL), temp folders removed.
 *
 * The Lua forwarder that makes Orthanc send stable CT series to our node: {@link forwarderLua}.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, stopChild } from './child-process.js';

export const ORTHANC_BIN = process.env.ORTHANC_BIN ?? '/usr/sbin/Orthanc';

/** A DICOM peer Orthanc knows (DicomModalities entry). */
export interface OrthancModality {
  aeTitle: string;
  /** Default 127.0.0.1. */
  host?: string;
  port: number;
}

export interface OrthancOptions {
  /** HTTP (REST) port; default a free one. */
  httpPort?: number;
  /** DICOM port; default a free one. */
  dicomPort?: number;
  /** Orthanc's AE title (default ORTHANC). */
  aeTitle?: string;
  /** DicomModalities: name → peer. Only these may associate (by AE title and host). */
  modalities?: Record<string, OrthancModality>;
  /** Lua script sources (written into the work dir and listed in LuaScripts). */
  lua?: string[];
  /** Seconds without a new instance before a series is stable (OnStableSeries). Default 60. */
  stableAgeSeconds?: number;
  /** Accept C-STORE/C-ECHO from any AE on any host (default false: only known modalities). */
  acceptUnknownCallers?: boolean;
  /** Extra configuration keys, merged last (shallow). */
  extraConfig?: Record<string, unknown>;
  /** Work dir (storage, index, config, log); default a fresh temp dir removed on stop(). */
  workDir?: string;
  /** Keep the work dir on stop() (default: keep only when workDir was given). */
  keepWorkDir?: boolean;
  /** Milliseconds to wait for the REST API (default 30 s). */
  startTimeoutMs?: number;
  /** Binary (default $ORTHANC_BIN or /usr/sbin/Orthanc). */
  binary?: string;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class OrthancError extends Error {
  constructor(
    message: string,
    readonly status?: number,
    readonly body?: string,
  ) {
    super(message);
    this.name = 'OrthancError';
  }
}

/** One resource as /tools/find with Expand returns it (the fields we use). */
export interface OrthancResource {
  ID: string;
  Type?: string;
  MainDicomTags: Record<string, string>;
  ParentStudy?: string;
  ParentSeries?: string;
  Instances?: string[];
  Series?: string[];
  [k: string]: unknown;
}

export interface OrthancJob {
  ID: string;
  State: 'Pending' | 'Running' | 'Success' | 'Failure' | 'Paused' | 'Retry';
  Type: string;
  ErrorCode: number;
  ErrorDescription: string;
  Content: Record<string, unknown>;
  [k: string]: unknown;
}

/** A running Orthanc. Create with {@link startOrthanc}. */
export class Orthanc {
  private stopped = false;

  constructor(
    private readonly proc: ChildProcess,
    readonly httpPort: number,
    readonly dicomPort: number,
    readonly aeTitle: string,
    readonly workDir: string,
    private readonly removeWorkDir: boolean,
    readonly logPath: string,
  ) {}

  get pid(): number | undefined {
    return this.proc.pid;
  }

  /** Base URL of the REST API (and the Orthanc Explorer web UI at /app/explorer.html). */
  get url(): string {
    return `http://127.0.0.1:${this.httpPort}`;
  }

  get explorerUrl(): string {
    return `${this.url}/app/explorer.html`;
  }

  get running(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** The last `chars` characters of Orthanc's log. */
  logTail(chars = 4000): string {
    try {
      const s = readFileSync(this.logPath, 'utf8');
      return s.slice(-chars);
    } catch {
      return '';
    }
  }

  private async request(method: string, path: string, body?: unknown): Promise<Response> {
    const init: RequestInit = { method };
    if (body !== undefined) {
      init.body = typeof body === 'string' || body instanceof Uint8Array ? (body as string) : JSON.stringify(body);
    }
    const res = await fetch(`${this.url}${path}`, init);
    if (!res.ok) {
      const text = await res.text().catch(() => '');
      throw new OrthancError(`Orthanc ${method} ${path}: HTTP ${res.status} ${text.slice(0, 500)}`, res.status, text);
    }
    return res;
  }

  async get<T = unknown>(path: string): Promise<T> {
    return (await (await this.request('GET', path)).json()) as T;
  }

  async getText(path: string): Promise<string> {
    return (await this.request('GET', path)).text();
  }

  async getBytes(path: string): Promise<Buffer> {
    return Buffer.from(await (await this.request('GET', path)).arrayBuffer());
  }

  async post<T = unknown>(path: string, body: unknown): Promise<T> {
    const text = await (await this.request('POST', path, body)).text();
    return (text ? JSON.parse(text) : undefined) as T;
  }

  async put<T = unknown>(path: string, body: unknown): Promise<T> {
    const text = await (await this.request('PUT', path, body)).text();
    return (text ? JSON.parse(text) : undefined) as T;
  }

  async delete(path: string): Promise<void> {
    await this.request('DELETE', path);
  }

  /** GET /system (throws while the REST API is not up). */
  system(): Promise<{ Version: string; DicomAet: string; DicomPort: number; [k: string]: unknown }> {
    return this.get('/system');
  }

  /** Uploads one Part-10 file over REST (POST /instances); returns Orthanc's instance id. */
  async upload(file: Buffer): Promise<string> {
    const r = await this.post<{ ID: string; Status: string }>('/instances', file);
    return r.ID;
  }

  /** /tools/find with Expand. `query` holds DICOM keywords (wildcards allowed). */
  find(level: 'Patient' | 'Study' | 'Series' | 'Instance', query: Record<string, string>): Promise<OrthancResource[]> {
    return this.post<OrthancResource[]>('/tools/find', { Level: level, Query: query, Expand: true });
  }

  /** Orthanc's id of a study by StudyInstanceUID (undefined when absent). */
  async studyId(studyInstanceUid: string): Promise<string | undefined> {
    return (await this.find('Study', { StudyInstanceUID: studyInstanceUid }))[0]?.ID;
  }

  /** Every series of a study (by StudyInstanceUID), expanded. */
  async seriesOfStudy(studyInstanceUid: string): Promise<OrthancResource[]> {
    const id = await this.studyId(studyInstanceUid);
    return id ? this.get<OrthancResource[]>(`/studies/${id}/series`) : [];
  }

  /** Every instance of a study (by StudyInstanceUID), expanded. */
  async instancesOfStudy(studyInstanceUid: string): Promise<OrthancResource[]> {
    const id = await this.studyId(studyInstanceUid);
    return id ? this.get<OrthancResource[]>(`/studies/${id}/instances`) : [];
  }

  /** Every instance of a series (by SeriesInstanceUID), expanded. */
  async instancesOfSeries(seriesInstanceUid: string): Promise<OrthancResource[]> {
    const s = (await this.find('Series', { SeriesInstanceUID: seriesInstanceUid }))[0];
    return s ? this.get<OrthancResource[]>(`/series/${s.ID}/instances`) : [];
  }

  /** The stored Part-10 file of an instance (as Orthanc keeps it). */
  instanceFile(instanceId: string): Promise<Buffer> {
    return this.getBytes(`/instances/${instanceId}/file`);
  }

  /** Simplified tags (keyword → value, sequences as arrays) of an instance. */
  instanceTags(instanceId: string): Promise<Record<string, unknown>> {
    return this.get(`/instances/${instanceId}/simplified-tags`);
  }

  /** One metadata item of an instance (e.g. RemoteAET, CalledAET, TransferSyntax); undefined when absent. */
  async instanceMetadata(instanceId: string, name: string): Promise<string | undefined> {
    try {
      return await this.getText(`/instances/${instanceId}/metadata/${name}`);
    } catch (err) {
      if (err instanceof OrthancError && err.status === 404) return undefined;
      throw err;
    }
  }

  /** Jobs, expanded (newest last as Orthanc lists them). */
  jobs(): Promise<OrthancJob[]> {
    return this.get<OrthancJob[]>('/jobs?expand');
  }

  job(id: string): Promise<OrthancJob> {
    return this.get<OrthancJob>(`/jobs/${id}`);
  }

  /** Adds or replaces a DICOM modality at run time (PUT /modalities/<name>). */
  async setModality(name: string, m: OrthancModality): Promise<void> {
    await this.put(`/modalities/${name}`, { AET: m.aeTitle, Host: m.host ?? '127.0.0.1', Port: m.port });
  }

  /** C-STORE of resources (instances / series / studies) to a modality; async by default (returns the job). */
  storeTo(modality: string, resources: string[], synchronous = false): Promise<{ ID?: string; Path?: string; [k: string]: unknown }> {
    return this.post(`/modalities/${modality}/store`, { Resources: resources, Synchronous: synchronous });
  }

  /** Polls a job until it leaves Pending/Running. */
  async waitJob(id: string, timeoutMs = 60_000): Promise<OrthancJob> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const j = await this.job(id);
      if (j.State !== 'Pending' && j.State !== 'Running' && j.State !== 'Retry') return j;
      if (Date.now() > end) throw new OrthancError(`job ${id} still ${j.State} after ${timeoutMs} ms`);
      await sleep(200);
    }
  }

  /** SIGTERM, then SIGKILL after `graceMs`; removes the temp work dir. Idempotent. */
  async stop(graceMs = 10_000): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await stopChild(this.proc, 'SIGTERM', graceMs);
    if (this.removeWorkDir) await rm(this.workDir, { recursive: true, force: true });
  }
}

/** The Orthanc configuration file {@link startOrthanc} writes (exported for documentation and tests). */
export function orthancConfig(o: {
  aeTitle: string;
  httpPort: number;
  dicomPort: number;
  storage: string;
  index: string;
  modalities: Record<string, OrthancModality>;
  luaScripts: string[];
  stableAgeSeconds: number;
  acceptUnknownCallers: boolean;
  extra?: Record<string, unknown>;
}): Record<string, unknown> {
  const modalities: Record<string, unknown> = {};
  for (const [name, m] of Object.entries(o.modalities)) {
    modalities[name] = { AET: m.aeTitle, Host: m.host ?? '127.0.0.1', Port: m.port };
  }
  return {
    Name: `mlsam-${o.aeTitle}`,
    StorageDirectory: o.storage,
    IndexDirectory: o.index,
    StorageCompression: false,
    Plugins: [],
    LuaScripts: o.luaScripts,
    HttpServerEnabled: true,
    OrthancExplorerEnabled: true,
    HttpPort: o.httpPort,
    HttpDescribeErrors: true,
    RemoteAccessAllowed: false,
    AuthenticationEnabled: false,
    DicomServerEnabled: true,
    DicomAet: o.aeTitle,
    DicomPort: o.dicomPort,
    DicomCheckCalledAet: true,
    // Only the given modalities, and only from their host: loopback-only DICOM traffic.
    DicomAlwaysAllowEcho: o.acceptUnknownCallers,
    DicomAlwaysAllowStore: o.acceptUnknownCallers,
    DicomAlwaysAllowFind: false,
    DicomAlwaysAllowGet: false,
    DicomAlwaysAllowMove: false,
    DicomCheckModalityHost: !o.acceptUnknownCallers,
    DicomModalities: modalities,
    DicomModalitiesInDatabase: false,
    OrthancPeersInDatabase: false,
    DicomScuTimeout: 10,
    DicomAssociationCloseDelay: 0,
    StableAge: o.stableAgeSeconds,
    TcpNoDelay: true,
    KeepAlive: true,
    SaveJobs: false,
    JobsHistorySize: 100,
    SyncStorageArea: false,
    OverwriteInstances: false,
    ExecuteLuaEnabled: false,
    MetricsEnabled: false,
    ...o.extra,
  };
}

/** Starts Orthanc and resolves once GET /system answers. */
export async function startOrthanc(opts: OrthancOptions = {}): Promise<Orthanc> {
  const binary = opts.binary ?? ORTHANC_BIN;
  if (!existsSync(binary)) throw new OrthancError(`Orthanc not found at ${binary} (apt install orthanc, or set ORTHANC_BIN)`);
  const aeTitle = opts.aeTitle ?? 'ORTHANC';
  const httpPort = opts.httpPort ?? (await freePort());
  let dicomPort = opts.dicomPort ?? (await freePort());
  while (dicomPort === httpPort) dicomPort = await freePort();
  const workDir = opts.workDir ?? (await mkdtemp(join(tmpdir(), 'mlsam-orthanc-')));
  await mkdir(workDir, { recursive: true });
  const removeWorkDir = opts.keepWorkDir === undefined ? opts.workDir === undefined : !opts.keepWorkDir;
  const luaScripts: string[] = [];
  for (const [i, src] of (opts.lua ?? []).entries()) {
    const p = join(workDir, `script-${i}.lua`);
    await writeFile(p, src);
    luaScripts.push(p);
  }
  const config = orthancConfig({
    aeTitle,
    httpPort,
    dicomPort,
    storage: join(workDir, 'storage'),
    index: join(workDir, 'index'),
    modalities: opts.modalities ?? {},
    luaScripts,
    stableAgeSeconds: opts.stableAgeSeconds ?? 60,
    acceptUnknownCallers: opts.acceptUnknownCallers ?? false,
    ...(opts.extraConfig ? { extra: opts.extraConfig } : {}),
  });
  const configPath = join(workDir, 'orthanc.json');
  await writeFile(configPath, JSON.stringify(config, null, 2));
  const logPath = join(workDir, 'orthanc.log');
  const logFd = openSync(logPath, 'a');
  let proc: ChildProcess;
  try {
    proc = spawn(binary, [configPath], {
      cwd: workDir,
      env: { ...process.env, TCP_NODELAY: '1' },
      stdio: ['ignore', logFd, logFd],
    });
  } finally {
    closeSync(logFd);
  }
  const orthanc = new Orthanc(proc, httpPort, dicomPort, aeTitle, workDir, removeWorkDir, logPath);
  let spawnError: Error | undefined;
  proc.once('error', (e) => (spawnError = e));
  const end = Date.now() + (opts.startTimeoutMs ?? 30_000);
  for (;;) {
    if (spawnError || !orthanc.running) {
      const tail = orthanc.logTail();
      await orthanc.stop(0);
      throw new OrthancError(`Orthanc exited before answering (${spawnError?.message ?? `code ${proc.exitCode}`}):\n${tail}`);
    }
    try {
      const sys = await orthanc.system();
      if (sys.DicomPort === dicomPort) return orthanc;
    } catch {
      /* not up yet */
    }
    if (Date.now() > end) {
      const tail = orthanc.logTail();
      await orthanc.stop(0);
      throw new OrthancError(`Orthanc did not answer on ${orthanc.url} within the start timeout:\n${tail}`);
    }
    await sleep(100);
  }
}

export interface ForwarderOptions {
  /** DicomModalities name of our node in Orthanc (default "mlsam"). */
  modality?: string;
  /** Our node's AE title: what it sends is never forwarded back (default MLSAM). */
  nodeAeTitle?: string;
  /** Modalities to forward (default ["CT"]). */
  forwardModalities?: string[];
}

const luaString = (s: string): string => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;

/** The forwarders' common head: the target modality, our AE title, the forwarded modalities and a trim(). */
function luaPrelude(o: ForwarderOptions, what: string, fn: string): string {
  const forward = (o.forwardModalities ?? ['CT']).map((m) => `[${luaString(m.toUpperCase())}] = true`).join(', ');
  return `-- mlsam-node ${what} (generated by src/demo/orthanc.ts ${fn})
local TARGET = ${luaString(o.modality ?? 'mlsam')}
local NODE_AET = ${luaString((o.nodeAeTitle ?? 'MLSAM').toUpperCase())}
local FORWARD = { ${forward} }

local function trim(s)
  return (string.gsub(s or '', '^%s*(.-)%s*$', '%1'))
end`;
}

/**
 * Lua for Orthanc: on a stable series whose Modality is CT (by default), C-STORE the series to our
 * node as an Orthanc job, unless the series came from our node itself (its SR/SC results): the
 * first instance's RemoteAET metadata names the sender. Uses RestApiPost('/modalities/<name>/store')
 * because SendToModality fails silently on a series id.
 */
export function forwarderLua(o: ForwarderOptions = {}): string {
  return `${luaPrelude(o, 'forwarder', 'forwarderLua')}

function OnStableSeries(seriesId, tags, metadata)
  local modality = string.upper(trim(tags['Modality']))
  if not FORWARD[modality] then
    print('mlsam forwarder: series ' .. seriesId .. ' not forwarded (Modality ' .. modality .. ')')
    return
  end
  local instances = ParseJson(RestApiGet('/series/' .. seriesId))['Instances']
  if instances == nil or instances[1] == nil then
    return
  end
  local sender = RestApiGet('/instances/' .. instances[1] .. '/metadata/RemoteAET')
  if sender ~= nil and string.upper(trim(sender)) == NODE_AET then
    print('mlsam forwarder: series ' .. seriesId .. ' not forwarded (sent by ' .. NODE_AET .. ')')
    return
  end
  local job = RestApiPost('/modalities/' .. TARGET .. '/store',
    DumpJson({ Resources = { seriesId }, Synchronous = false }, true))
  print('mlsam forwarder: series ' .. seriesId .. ' forwarded to ' .. TARGET .. ': ' .. (job or ''))
end
`;
}

/**
 * Lua for Orthanc: a study-level auto-forward rule, as a PACS forwards "CT chest" examinations. On a
 * stable study that holds a CT series, C-STORE every instance of the study (localizer, reformats,
 * dose screens included) to our node as one Orthanc job — except what our node sent (its results:
 * each instance's RemoteAET metadata names the sender). A study that changes later (our results
 * arrive, a series is added) is forwarded again: the node answers a resent study with nothing new.
 */
export function studyForwarderLua(o: ForwarderOptions = {}): string {
  return `${luaPrelude(o, 'study forwarder', 'studyForwarderLua')}

function OnStableStudy(studyId, tags, metadata)
  local series = ParseJson(RestApiGet('/studies/' .. studyId .. '/series'))
  local wanted = false
  for _, s in ipairs(series) do
    if FORWARD[string.upper(trim(s['MainDicomTags']['Modality']))] then wanted = true end
  end
  if not wanted then
    print('mlsam forwarder: study ' .. studyId .. ' not forwarded (no series of a forwarded modality)')
    return
  end
  local ids = {}
  for _, s in ipairs(series) do
    for _, i in ipairs(s['Instances']) do
      local sender = RestApiGet('/instances/' .. i .. '/metadata/RemoteAET')
      if sender == nil or string.upper(trim(sender)) ~= NODE_AET then table.insert(ids, i) end
    end
  end
  if #ids == 0 then return end
  local job = RestApiPost('/modalities/' .. TARGET .. '/store',
    DumpJson({ Resources = ids, Synchronous = false }, true))
  print('mlsam forwarder: study ' .. studyId .. ' forwarded to ' .. TARGET .. ' (' .. #ids .. ' instances): ' .. (job or ''))
end
`;
}
