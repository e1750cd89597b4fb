/**
 * Fuzz cases for the DICOM listener: each case is one TCP connection's worth of bytes, built as a
 * valid session (A-ASSOCIATE-RQ, C-STOREs of small CT datasets and C-ECHOs, A-RELEASE-RQ) and
 * then broken by zero to four mutations at three levels:
 *  - dataset: cut short (the last fragment still flagged), bytes flipped, element lengths made
 *    impossible, sequences nested deep or left open, thousands of items, garbage inserted, the
 *    SOP Class UID or the Study UID changed;
 *  - framing: PDU and PDV headers and lengths, control bits, context IDs, command sets, the
 *    association request; PDUs dropped, duplicated, swapped; garbage PDUs; A-RELEASE-RQ early;
 *    the stream cut anywhere;
 *  - timing: small writes with pauses, a trickle, a reset mid-stream.
 * Everything is derived from (seed, index), so a case is regenerated from those two numbers;
 * a case also serialises to JSON (bytes in base64) to be replayed as saved.
 */
import { LONG_LENGTH_VRS } from '../../src/dicom/encoding.js';
import { PDV_LAST, pdataPdu } from '../../src/dicom/pdu/pdata.js';
import { element, ITEM, ITEM_END, SEQ_END, tagOnly, text, u16, ui as uidValue } from '../helpers/dataset-bytes.js';
import { abortPdu, associateRq, cEchoRq, cStoreRq, CT_IMAGE_STORAGE, pdu, releaseRq } from '../helpers/raw-peer.js';

/** mulberry32: small, fast, good enough for fuzzing. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
}

/** One write: bytes, then a pause; `reset` destroys the connection instead of writing. */
export interface Segment {
  bytes: Buffer;
  delayMs?: number;
  reset?: boolean;
}

export interface StoreSent {
  sopInstanceUid: string;
  /** The dataset bytes exactly as framed, when no framing mutation touched them. */
  dataset?: Buffer;
}

export interface FuzzCase {
  seed: number;
  index: number;
  mutations: string[];
  segments: Segment[];
  stores: StoreSent[];
}

/** Presentation contexts raw-peer's default A-ASSOCIATE-RQ proposes. */
const PC = { echo: 1, explicit: 3, implicit: 5, jpeg: 7 } as const;
const MR_IMAGE_STORAGE = '1.2.840.10008.5.1.4.1.1.4';

/** UID root of fuzz cases: <root>.<seed>.<index>.<n>, so a spooled file names its case. */
export const FUZZ_UID_ROOT = '1.2.826.0.1.3680043.10.543';

/** The UID of the n-th object of case (seed, index). */
export function fuzzUid(seed: number, index: number, n: number): string {
  return `${FUZZ_UID_ROOT}.${seed}.${index}.${n}`;
}

/** The (seed, index) of the case a fuzz UID belongs to. */
export function caseOfUid(uid: string): { seed: number; index: number } | undefined {
  if (!uid.startsWith(`${FUZZ_UID_ROOT}.`)) return undefined;
  const [seed, index] = uid
    .slice(FUZZ_UID_ROOT.length + 1)
    .split('.')
    .map(Number);
  return seed === undefined || index === undefined ? undefined : { seed, index };
}

/** A sequence (defined or undefined lengths) with a few items, nested up to `depth`. */
function sequence(rng: Rng, explicit: boolean, depth: number): Buffer {
  const items: Buffer[] = [];
  for (let i = rng.int(3); i >= 0; i--) {
    const content = Buffer.concat([
      element(explicit, 0x00081150, 'UI', uidValue(CT_IMAGE_STORAGE)),
      element(explicit, 0x00081155, 'UI', uidValue(`1.2.3.${rng.int(100000)}`)),
      ...(depth > 0 && rng.chance(0.4) ? [sequence(rng, explicit, depth - 1)] : []),
    ]);
    items.push(
      rng.chance(0.5)
        ? Buffer.concat([tagOnly(ITEM, 0xffffffff), content, tagOnly(ITEM_END, 0)])
        : Buffer.concat([tagOnly(ITEM, content.length), content]),
    );
  }
  const body = Buffer.concat(items);
  // Defined or undefined length (an implicit VR one is known to be a sequence from the dictionary).
  return rng.chance(0.5)
    ? element(explicit, 0x00081140, 'SQ', body)
    : Buffer.concat([element(explicit, 0x00081140, 'SQ', Buffer.alloc(0), 0xffffffff), body, tagOnly(SEQ_END, 0)]);
}

/** A small CT dataset: header, maybe a sequence, geometry, native or encapsulated Pixel Data. */
export function ctDataset(
  rng: Rng,
  opts: { explicit: boolean; encapsulated: boolean; sopInstanceUid: string; studyUid: string; seriesUid: string },
): Buffer {
  const e = opts.explicit;
  const rows = rng.range(2, 16);
  const cols = rng.range(2, 16);
  const pixels = opts.encapsulated
    ? Buffer.concat([
        element(true, 0x7fe00010, 'OB', Buffer.alloc(0), 0xffffffff),
        tagOnly(ITEM, 0),
        ...Array.from({ length: rng.range(1, 3) }, () => {
          const frag = rng.bytes(rng.range(1, 200) * 2);
          return Buffer.concat([tagOnly(ITEM, frag.length), frag]);
        }),
        tagOnly(SEQ_END, 0),
      ])
    : element(e, 0x7fe00010, 'OW', rng.bytes(rows * cols * 2));
  return Buffer.concat([
    element(e, 0x00080008, 'CS', text('ORIGINAL\\PRIMARY\\AXIAL')),
    element(e, 0x00080016, 'UI', uidValue(CT_IMAGE_STORAGE)),
    element(e, 0x00080018, 'UI', uidValue(opts.sopInstanceUid)),
    element(e, 0x00080060, 'CS', text('CT')),
    ...(rng.chance(0.4) ? [sequence(rng, e, 2)] : []),
    element(e, 0x00100010, 'PN', text('Fuzz^Case')),
    element(e, 0x00180015, 'CS', text('CHEST')),
    element(e, 0x0020000d, 'UI', uidValue(opts.studyUid)),
    element(e, 0x0020000e, 'UI', uidValue(opts.seriesUid)),
    element(e, 0x00280010, 'US', u16(rows)),
    element(e, 0x00280011, 'US', u16(cols)),
    element(e, 0x00280100, 'US', u16(16)),
    pixels,
    ...(rng.chance(0.2) ? [element(e, 0x7fe10010, 'LO', text('PRIVATE AFTER PIXELS'))] : []),
  ]);
}

/** Offsets of element headers at the top level of a dataset (best effort; used to aim mutations). */
function elementOffsets(ds: Buffer, explicit: boolean): Array<{ at: number; lengthAt: number; long: boolean }> {
  const out: Array<{ at: number; lengthAt: number; long: boolean }> = [];
  let p = 0;
  while (p + 8 <= ds.length && out.length < 64) {
    const vr = ds.toString('latin1', p + 4, p + 6);
    const long = !explicit || LONG_LENGTH_VRS.has(vr);
    const lengthAt = explicit ? (LONG_LENGTH_VRS.has(vr) ? p + 8 : p + 6) : p + 4;
    out.push({ at: p, lengthAt, long });
    if (lengthAt + (long ? 4 : 2) > ds.length) break;
    const len = long ? ds.readUInt32LE(lengthAt) : ds.readUInt16LE(lengthAt);
    if (len === 0xffffffff) break;
    p = lengthAt + (long ? 4 : 2) + len;
  }
  return out;
}

type DatasetMutation = (rng: Rng, ds: Buffer, explicit: boolean) => Buffer;

const DATASET_MUTATIONS: Record<string, DatasetMutation> = {
  truncate: (rng, ds) => ds.subarray(0, rng.int(ds.length)),
  flip: (rng, ds) => {
    const b = Buffer.from(ds);
    for (let n = rng.range(1, 8); n > 0 && b.length > 0; n--) {
      const i = rng.int(b.length);
      b[i] = b[i]! ^ (1 << rng.int(8));
    }
    return b;
  },
  length: (rng, ds, explicit) => {
    const b = Buffer.from(ds);
    const offs = elementOffsets(b, explicit);
    const o = rng.pick(offs);
    const v = rng.pick([0, 1, 0xffffffff, 0x7fffffff, rng.int(0x10000), rng.int(b.length * 2)]);
    if (o.long && o.lengthAt + 4 <= b.length) b.writeUInt32LE(v >>> 0, o.lengthAt);
    else if (o.lengthAt + 2 <= b.length) b.writeUInt16LE(v & 0xffff, o.lengthAt);
    return b;
  },
  deep: (rng, ds, explicit) => {
    const levels = rng.pick([20, 33, 200, 5000]);
    const close = rng.chance(0.5);
    const open = Buffer.concat([element(explicit, 0x00081115, 'SQ', Buffer.alloc(0), 0xffffffff), tagOnly(ITEM, 0xffffffff)]);
    const shut = Buffer.concat([tagOnly(ITEM_END, 0), tagOnly(SEQ_END, 0)]);
    const nest = Buffer.concat([...Array<Buffer>(levels).fill(open), ...(close ? Array<Buffer>(levels).fill(shut) : [])]);
    const at = elementOffsets(ds, explicit)[3]?.at ?? 0;
    return Buffer.concat([ds.subarray(0, at), nest, ds.subarray(at)]);
  },
  manyItems: (rng, ds, explicit) => {
    const n = rng.pick([100, 3000]);
    const seq = Buffer.concat([
      element(explicit, 0x00081115, 'SQ', Buffer.alloc(0), 0xffffffff),
      ...Array<Buffer>(n).fill(tagOnly(ITEM, 0)),
      tagOnly(SEQ_END, 0),
    ]);
    const at = elementOffsets(ds, explicit)[3]?.at ?? 0;
    return Buffer.concat([ds.subarray(0, at), seq, ds.subarray(at)]);
  },
  garbage: (rng, ds) => {
    const at = rng.int(ds.length + 1);
    return Buffer.concat([ds.subarray(0, at), rng.bytes(rng.range(1, 64)), ds.subarray(at)]);
  },
  sopClass: (_rng, ds) => {
    const i = ds.indexOf(Buffer.from(CT_IMAGE_STORAGE));
    if (i < 0) return ds;
    // Same length: 1.2.840.10008.5.1.4.1.1.2 → 1.2.840.10008.5.1.4.1.1.4 (MR) with the length kept.
    const b = Buffer.from(ds);
    b.write(MR_IMAGE_STORAGE, i, 'latin1');
    return b;
  },
  dropStudyUid: (_rng, ds, explicit) => {
    const offs = elementOffsets(ds, explicit);
    const idx = offs.findIndex((o) => ds.readUInt16LE(o.at) === 0x0020 && ds.readUInt16LE(o.at + 2) === 0x000d);
    if (idx < 0 || idx + 1 >= offs.length) return ds;
    return Buffer.concat([ds.subarray(0, offs[idx]!.at), ds.subarray(offs[idx + 1]!.at)]);
  },
};

interface Pdu {
  kind: 'assoc' | 'command' | 'data' | 'release' | 'abort' | 'garbage';
  bytes: Buffer;
  /** For data PDUs: which store it belongs to. */
  store?: number;
}

type FramingMutation = (rng: Rng, pdus: Pdu[], c: { stores: StoreSent[] }) => void;

/** Marks the stores whose PDUs a framing mutation touched: their dataset bytes are no longer known. */
function touch(c: { stores: StoreSent[] }, p: Pdu | undefined): void {
  if (p?.store !== undefined) delete c.stores[p.store]!.dataset;
  if (p?.kind === 'command' || p?.kind === 'assoc') for (const s of c.stores) delete s.dataset;
}

/** Changes a copy of one PDU picked from `candidates` (the stores it carries lose their known bytes). */
function mutateOne(rng: Rng, candidates: Pdu[], c: { stores: StoreSent[] }, change: (b: Buffer) => void): void {
  if (!candidates.length) return;
  const p = rng.pick(candidates);
  touch(c, p);
  const b = Buffer.from(p.bytes);
  change(b);
  p.bytes = b;
}

const withPdv = (pdus: Pdu[]): Pdu[] => pdus.filter((p) => p.kind === 'data' || p.kind === 'command');

const FRAMING_MUTATIONS: Record<string, FramingMutation> = {
  pduHeader: (rng, pdus, c) =>
    mutateOne(rng, pdus, c, (b) => {
      const i = rng.int(Math.min(12, b.length));
      b[i] = rng.chance(0.5) ? rng.int(256) : b[i]! ^ (1 << rng.int(8));
    }),
  pduLength: (rng, pdus, c) =>
    mutateOne(
      rng,
      pdus.filter((p) => p.bytes.length >= 6),
      c,
      (b) => {
        const len = b.readUInt32BE(2);
        b.writeUInt32BE(rng.pick([len + 1, Math.max(0, len - 1), 0, 0xffffffff, rng.int(0x20000), len * 2]) >>> 0, 2);
      },
    ),
  pdvLength: (rng, pdus, c) =>
    mutateOne(rng, withPdv(pdus), c, (b) => {
      const len = b.readUInt32BE(6);
      b.writeUInt32BE(rng.pick([len + 1, Math.max(0, len - 1), 0, 1, 2, 0xffffffff]) >>> 0, 6);
    }),
  pdvControl: (rng, pdus, c) =>
    mutateOne(rng, withPdv(pdus), c, (b) => {
      b[11] = rng.int(4);
    }),
  pdvContext: (rng, pdus, c) =>
    mutateOne(rng, withPdv(pdus), c, (b) => {
      b[10] = rng.pick([0, 1, 2, 3, 5, 7, 9, 255]);
    }),
  command: (rng, pdus, c) =>
    mutateOne(
      rng,
      pdus.filter((p) => p.kind === 'command'),
      c,
      (b) => {
        for (let i = rng.range(1, 4); i > 0; i--) b[12 + rng.int(b.length - 12)] = rng.int(256);
      },
    ),
  association: (rng, pdus, c) =>
    mutateOne(
      rng,
      pdus.filter((p) => p.kind === 'assoc'),
      c,
      (b) => {
        for (let i = rng.range(1, 6); i > 0; i--) b[6 + rng.int(b.length - 6)] = rng.int(256);
      },
    ),
  drop: (rng, pdus, c) => {
    if (pdus.length < 2) return;
    const i = 1 + rng.int(pdus.length - 1);
    touch(c, pdus[i]);
    pdus.splice(i, 1);
  },
  duplicate: (rng, pdus, c) => {
    const i = rng.int(pdus.length);
    touch(c, pdus[i]);
    pdus.splice(i, 0, { ...pdus[i]! });
  },
  swap: (rng, pdus, c) => {
    if (pdus.length < 3) return;
    const i = 1 + rng.int(pdus.length - 2);
    touch(c, pdus[i]);
    touch(c, pdus[i + 1]);
    [pdus[i], pdus[i + 1]] = [pdus[i + 1]!, pdus[i]!];
  },
  garbagePdu: (rng, pdus) => {
    const type = rng.pick([0, 2, 3, 4, 6, 8, 0x47, 0xff, rng.int(256)]);
    const body = rng.bytes(rng.range(0, 40));
    const bytes = rng.chance(0.3) ? rng.bytes(rng.range(1, 30)) : pdu(type, body);
    pdus.splice(rng.int(pdus.length + 1), 0, { kind: 'garbage', bytes });
  },
  releaseEarly: (rng, pdus) => {
    const i = 1 + rng.int(Math.max(1, pdus.length - 1));
    pdus.splice(i, 0, { kind: 'release', bytes: releaseRq() });
  },
  hugePdu: (rng, pdus) => {
    const h = Buffer.alloc(6);
    h[0] = rng.pick([1, 4, 5, 7]);
    h.writeUInt32BE(rng.pick([0x7fffffff, 0xffffffff, 16385, 1 << 20]) >>> 0, 2);
    pdus.splice(1 + rng.int(pdus.length), 0, { kind: 'garbage', bytes: h });
  },
};

/** The stream cut at a random byte, and timing mutations: applied to the final segments. */
const STREAM_MUTATIONS: Record<string, (rng: Rng, segs: Segment[]) => Segment[]> = {
  cut: (rng, segs) => {
    const all = Buffer.concat(segs.map((s) => s.bytes));
    return [{ bytes: all.subarray(0, rng.int(all.length)) }];
  },
  smallWrites: (rng, segs) => {
    const all = Buffer.concat(segs.map((s) => s.bytes));
    const out: Segment[] = [];
    for (let p = 0; p < all.length; ) {
      const n = rng.range(1, Math.max(1, Math.min(4000, all.length >> 3)));
      out.push({ bytes: all.subarray(p, p + n), delayMs: out.length < 20 && rng.chance(0.3) ? rng.int(15) : 0 });
      p += n;
    }
    return out;
  },
  trickle: (rng, segs) => {
    const all = Buffer.concat(segs.map((s) => s.bytes));
    const at = rng.int(all.length);
    const out: Segment[] = [{ bytes: all.subarray(0, at) }];
    for (let i = 0; i < 40 && at + i < all.length; i++) out.push({ bytes: all.subarray(at + i, at + i + 1), delayMs: 60 });
    return out;
  },
  reset: (rng, segs) => {
    const all = Buffer.concat(segs.map((s) => s.bytes));
    return [{ bytes: all.subarray(0, rng.int(all.length)) }, { bytes: Buffer.alloc(0), reset: true }];
  },
};

/** Splits a dataset into P-DATA-TF PDUs of random sizes (one PDV each, or a few per PDU). */
function frameDataset(rng: Rng, pc: number, ds: Buffer, maxValue: number, store: number): Pdu[] {
  const out: Pdu[] = [];
  if (ds.length === 0) return [{ kind: 'data', store, bytes: pdataPdu(pc, PDV_LAST, Buffer.alloc(0)) }];
  for (let off = 0; off < ds.length; ) {
    const n = Math.min(ds.length - off, rng.chance(0.7) ? maxValue : rng.range(1, maxValue));
    const last = off + n === ds.length;
    out.push({ kind: 'data', store, bytes: pdataPdu(pc, last ? PDV_LAST : 0, ds.subarray(off, off + n)) });
    off += n;
  }
  return out;
}

/** Case `index` of run `seed`. */
export function generateCase(seed: number, index: number): FuzzCase {
  const rng = new Rng((Math.imul(seed, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca6b)) >>> 0);
  const c: FuzzCase = { seed, index, mutations: [], segments: [], stores: [] };
  const maxPdu = rng.pick([4096, 16384, 16384, 65536]);
  const pdus: Pdu[] = [
    {
      kind: 'assoc',
      bytes: associateRq({
        calling: rng.chance(0.05) ? rng.bytes(16).toString('latin1') : 'FUZZER',
        called: rng.chance(0.03) ? 'NOT-US' : 'MLSAM',
        maxPdu: rng.chance(0.05) ? 0 : maxPdu,
      }),
    },
  ];
  let uids = 0;
  const studyUid = fuzzUid(seed, index, ++uids);
  const seriesUid = fuzzUid(seed, index, ++uids);
  const datasetMutationNames = Object.keys(DATASET_MUTATIONS);
  const ops = rng.range(1, 4);
  for (let op = 0; op < ops; op++) {
    const messageId = op + 1;
    if (rng.chance(0.15)) {
      pdus.push({ kind: 'command', bytes: cEchoRq(PC.echo, messageId) });
      continue;
    }
    const syntax = rng.pick(['explicit', 'implicit', 'jpeg'] as const);
    const pc = PC[syntax];
    const sopInstanceUid = fuzzUid(seed, index, ++uids);
    let ds = ctDataset(rng, { explicit: syntax !== 'implicit', encapsulated: syntax === 'jpeg', sopInstanceUid, studyUid, seriesUid });
    if (rng.chance(0.45)) {
      const name = rng.pick(datasetMutationNames);
      ds = DATASET_MUTATIONS[name]!(rng, ds, syntax !== 'implicit');
      c.mutations.push(`dataset.${name}`);
    }
    const store = c.stores.length;
    c.stores.push({ sopInstanceUid, dataset: ds });
    pdus.push({ kind: 'command', store, bytes: cStoreRq(pc, messageId, CT_IMAGE_STORAGE, sopInstanceUid) });
    pdus.push(...frameDataset(rng, pc, ds, Math.max(16, Math.min(maxPdu || 16384, 16384) - 6), store));
  }
  const end = rng.next();
  if (end < 0.8) pdus.push({ kind: 'release', bytes: releaseRq() });
  else if (end < 0.9) pdus.push({ kind: 'abort', bytes: abortPdu() });
  const framingNames = Object.keys(FRAMING_MUTATIONS);
  for (let i = rng.pick([0, 0, 1, 1, 2]); i > 0; i--) {
    const name = rng.pick(framingNames);
    FRAMING_MUTATIONS[name]!(rng, pdus, c);
    c.mutations.push(`framing.${name}`);
  }
  let segments: Segment[] = pdus.map((p) => ({ bytes: p.bytes }));
  if (rng.chance(0.2)) {
    const name = rng.pick(['cut', 'smallWrites', 'smallWrites', 'reset', ...(rng.chance(0.1) ? ['trickle'] : [])]);
    segments = STREAM_MUTATIONS[name]!(rng, segments);
    c.mutations.push(`stream.${name}`);
    if (name === 'cut' || name === 'reset') for (const s of c.stores) delete s.dataset;
  }
  c.segments = segments;
  return c;
}

/** JSON form of a case (bytes in base64), for saving a failing case. */
export function serializeCase(c: FuzzCase, problem: string): string {
  return JSON.stringify(
    {
      seed: c.seed,
      index: c.index,
      problem,
      mutations: c.mutations,
      stores: c.stores.map((s) => ({ sopInstanceUid: s.sopInstanceUid, ...(s.dataset ? { dataset: s.dataset.toString('base64') } : {}) })),
      segments: c.segments.map((s) => ({
        bytes: s.bytes.toString('base64'),
        ...(s.delayMs ? { delayMs: s.delayMs } : {}),
        ...(s.reset ? { reset: true } : {}),
      })),
    },
    null,
    1,
  );
}

export function deserializeCase(json: string): FuzzCase {
  const o = JSON.parse(json) as {
    seed: number;
    index: number;
    mutations: string[];
    stores: Array<{ sopInstanceUid: string; dataset?: string }>;
    segments: Array<{ bytes: string; delayMs?: number; reset?: boolean }>;
  };
  return {
    seed: o.seed,
    index: o.index,
    mutations: o.mutations,
    stores: o.stores.map((s) => ({
      sopInstanceUid: s.sopInstanceUid,
      ...(s.dataset ? { dataset: Buffer.from(s.dataset, 'base64') } : {}),
    })),
    segments: o.segments.map((s) => ({
      bytes: Buffer.from(s.bytes, 'base64'),
      ...(s.delayMs ? { delayMs: s.delayMs } : {}),
      ...(s.reset ? { reset: true } : {}),
    })),
  };
}
