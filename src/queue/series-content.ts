/**
 * Settle step 1, gather: what a settle reads about a series. Redis holds each instance's routing
 * attributes in a compact form (written by the tracker as instances arrive); the spool is the
 * source of truth, so instances on disk that Redis missed (Redis was down, a restart) are read
 * from their files and added before the content is decided on.
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { listSeriesInstances, readInstanceHeader, seriesDirLastChange, seriesDirOf } from '../dicom/spool/reader.js';
import type { Logger } from '../log.js';
import type { Keys } from '../stores/keys.js';
import { instancesHash } from './jobs.js';
import { decimals, type SelectableInstance } from './series-selection.js';

/** Compact form of an instance's routing attributes in the per-series instances hash. */
export interface StoredInstance {
  m: string;
  b: string;
  t: string[];
  /** SOP class (absent: CT Image Storage, records from before it was kept). */
  c?: string;
  /** ImageOrientationPatient, ImagePositionPatient, SliceThickness, ConvolutionKernel, SeriesNumber, SeriesDescription as stored. */
  o?: string;
  p?: string;
  th?: string;
  k?: string;
  n?: string;
  d?: string;
}

/** The header attributes an instance is stored with (a received instance, or a spooled file's header). */
export interface StorableAttributes {
  modality: string;
  bodyPartExamined: string;
  imageType: string[];
  sopClassUid: string;
  imageOrientation?: string;
  imagePosition?: string;
  sliceThickness?: string;
  convolutionKernel?: string;
  seriesNumber?: string;
  seriesDescription?: string;
}

export function storedInstance(h: StorableAttributes): StoredInstance {
  const out: StoredInstance = { m: h.modality, b: h.bodyPartExamined, t: h.imageType };
  if (h.sopClassUid) out.c = h.sopClassUid;
  if (h.imageOrientation) out.o = h.imageOrientation;
  if (h.imagePosition) out.p = h.imagePosition;
  if (h.sliceThickness) out.th = h.sliceThickness;
  if (h.convolutionKernel) out.k = h.convolutionKernel;
  if (h.seriesNumber) out.n = h.seriesNumber;
  if (h.seriesDescription) out.d = h.seriesDescription;
  return out;
}

function selectable(s: StoredInstance): SelectableInstance {
  const th = s.th !== undefined ? Number(s.th) : NaN;
  return {
    modality: s.m,
    bodyPartExamined: s.b,
    imageType: s.t,
    ...(s.c ? { sopClassUid: s.c } : {}),
    orientation: decimals(s.o, 6),
    position: decimals(s.p, 3),
    sliceThickness: Number.isFinite(th) ? th : null,
    kernel: s.k ?? '',
    seriesNumber: s.n ?? '',
    seriesDescription: s.d ?? '',
  };
}

/** A series' hash and its last arrival, read without its content (enough to decide whether to wait). */
export interface SeriesHead {
  key: string;
  h: Record<string, string>;
  studyInstanceUid: string;
  seriesDir: string;
  /** lastReceivedAt as the hash held it: the settle writes its outcome only if it is unchanged. */
  lastRaw: string;
  /** The later of lastReceivedAt and the spool folder's last change. */
  lastArrival: number;
}

/** What one settle read about a series: its content, routing attributes and arrival times. */
export interface SeriesContent extends SeriesHead {
  instances: SelectableInstance[];
  hash: string;
  instanceCount: number;
  firstReceivedAt: number;
  lastReceivedAt: number;
}

/** Reads series heads and contents from Redis and the spool. */
export class SeriesContentReader {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    private readonly spoolDir: string,
    private readonly log: Logger,
  ) {}

  /** A series' hash and its last arrival (Redis or the spool folder's mtime), without reading its content. */
  async head(seriesInstanceUid: string): Promise<SeriesHead | undefined> {
    const key = this.keys.series(seriesInstanceUid);
    const h = await this.redis.hgetall(key);
    if (!h.studyInstanceUid) return undefined;
    const seriesDir = h.seriesDir ?? seriesDirOf(this.spoolDir, h.studyInstanceUid, seriesInstanceUid);
    const lastRaw = h.lastReceivedAt ?? '';
    const dirChange = (await seriesDirLastChange(seriesDir)) ?? 0;
    return { key, h, studyInstanceUid: h.studyInstanceUid, seriesDir, lastRaw, lastArrival: Math.max(Number(lastRaw || 0), dirChange) };
  }

  /** A series' content: what Redis knows plus whatever the spool holds that Redis missed (e.g. Redis was down). */
  async content(seriesInstanceUid: string, head: SeriesHead): Promise<SeriesContent | undefined> {
    const { seriesDir } = head;
    const known = await this.redis.hgetall(this.keys.seriesInstances(seriesInstanceUid));
    const recovered = await this.recoverFromSpool(seriesInstanceUid, seriesDir, known);
    const sops = Object.keys(known);
    if (sops.length === 0) return undefined;
    const instances = Object.values(known).map((v) => selectable(JSON.parse(v) as StoredInstance));
    const firstReceivedAt = Math.min(Number(head.h.firstReceivedAt || Infinity), recovered.firstFile);
    const lastReceivedAt = Math.max(Number(head.lastRaw || 0), recovered.lastFile);
    return {
      ...head,
      instances,
      hash: instancesHash(sops),
      instanceCount: sops.length,
      firstReceivedAt: Number.isFinite(firstReceivedAt) ? firstReceivedAt : lastReceivedAt,
      lastReceivedAt,
    };
  }

  /**
   * Reads the spooled instances missing from `known` (SOP UID → stored instance), adds them to
   * Redis and to `known`, and returns the range of their files' modification times.
   */
  private async recoverFromSpool(
    seriesInstanceUid: string,
    seriesDir: string,
    known: Record<string, string>,
  ): Promise<{ firstFile: number; lastFile: number }> {
    const missing = (await listSeriesInstances(seriesDir)).filter((sop) => known[sop] === undefined);
    let firstFile = Infinity;
    let lastFile = 0;
    if (missing.length === 0) return { firstFile, lastFile };
    const add: Record<string, string> = {};
    for (const sop of missing) {
      const path = join(seriesDir, `${sop}.dcm`);
      try {
        const [hdr, st] = await Promise.all([readInstanceHeader(path), stat(path)]);
        add[sop] = JSON.stringify(storedInstance(hdr));
        firstFile = Math.min(firstFile, st.mtimeMs);
        lastFile = Math.max(lastFile, st.mtimeMs);
      } catch (err) {
        this.log.warn({ seriesInstanceUid, sopInstanceUid: sop, err: (err as Error).message }, 'unreadable spooled instance skipped');
      }
    }
    if (Object.keys(add).length > 0) {
      await this.redis.hset(this.keys.seriesInstances(seriesInstanceUid), add);
      Object.assign(known, add);
      this.log.info({ seriesInstanceUid, added: Object.keys(add).length }, 'instances recovered from the spool');
    }
    return { firstFile, lastFile };
  }
}
