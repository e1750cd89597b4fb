/**
 * JPEG Lossless (ITU-T T.81 process 14, SOF3; DICOM transfer syntaxes 1.2.840.10008.1.2.4.57 and .70), one
 * component, 9–16 bit precision, no restart intervals: what CT scanners and archives write. In plain
 * TypeScript because it beats the WASM libjpeg-turbo build of dcmjs-codecs on this path (no copy in and out of the
 * WASM heap; the entropy-coded data unstuffed once, then read through a 32-bit big-endian window with no refill
 * branch and a 12-bit code + extra bits lookup; selection value 1 decoded straight to modality values in one
 * pass) — `npm run bench` measures the decode stage.
 *
 * Anything else (several components, ≤ 8-bit precision, restart markers, hierarchical or arithmetic coding, or
 * a stream it cannot read) returns null, and the caller uses the WASM codec, so the answer for unusual or
 * corrupt streams is exactly what it was. Output: the reconstructed samples (mod 2^16, shifted left by the
 * point transform), as libjpeg returns them, or their modality values.
 */
import { integerModality, type Modality, modalityU16 } from './modality.js';

const FAST_BITS = 9;
/** Bits of the combined lookup (code + extra bits → difference in one step). */
const COMBO_BITS = 12;

interface Huffman {
  /** (length << 8) | symbol for codes of ≤ FAST_BITS bits, indexed by the next FAST_BITS bits; 0 = longer code. */
  fast: Uint16Array;
  /**
   * Indexed by the next COMBO_BITS bits: (difference << 8) | bits used, when the code and its extra bits fit in
   * them; 0 otherwise.
   */
  combo: Int32Array;
  /** Largest code of each length (−1: none), 1..16. */
  maxCode: Int32Array;
  /** Index into `values` of the first code of each length, minus that code. */
  delta: Int32Array;
  values: Uint8Array;
}

function buildHuffman(counts: Uint8Array, values: Uint8Array): Huffman | null {
  const fast = new Uint16Array(1 << FAST_BITS);
  const maxCode = new Int32Array(18).fill(-1);
  const delta = new Int32Array(18);
  let code = 0;
  let k = 0;
  for (let len = 1; len <= 16; len++) {
    const n = counts[len - 1] as number;
    if (n) {
      delta[len] = k - code;
      for (let i = 0; i < n; i++, k++, code++) {
        if (code >= 1 << len) return null; // over-subscribed table
        if (len <= FAST_BITS) {
          const sym = values[k] as number;
          if (sym > 16) return null;
          const shift = FAST_BITS - len;
          const base = code << shift;
          const entry = (len << 8) | sym;
          for (let j = 0; j < 1 << shift; j++) fast[base + j] = entry;
        }
      }
      maxCode[len] = code - 1;
    }
    code <<= 1;
  }
  for (let i = 0; i < values.length; i++) if ((values[i] as number) > 16) return null;
  const combo = new Int32Array(1 << COMBO_BITS);
  code = 0;
  k = 0;
  for (let len = 1; len <= 16; len++) {
    const n = counts[len - 1] as number;
    for (let i = 0; i < n; i++, k++, code++) {
      if (len > COMBO_BITS) continue;
      const sym = values[k] as number;
      const extra = sym === 16 ? 0 : sym;
      const used = len + extra;
      if (used > COMBO_BITS) continue;
      for (let v = 0; v < 1 << extra; v++) {
        let diff = 0;
        if (sym === 16) diff = 32768;
        else if (sym > 0) diff = v < 1 << (sym - 1) ? v - ((1 << sym) - 1) : v;
        const shift = COMBO_BITS - used;
        const base = ((code << extra) | v) << shift;
        const entry = (diff << 8) | used;
        for (let j = 0; j < 1 << shift; j++) combo[base + j] = entry;
      }
    }
    code <<= 1;
  }
  return { fast, combo, maxCode, delta, values };
}

/** Huffman tables by their DHT bytes: a series' slices share them, so each is built once (bounded cache). */
const tableCache = new Map<string, Huffman | null>();

function cachedHuffman(counts: Uint8Array, values: Uint8Array): Huffman | null {
  const key = Buffer.from(counts).toString('latin1') + Buffer.from(values).toString('latin1');
  if (tableCache.has(key)) return tableCache.get(key) ?? null;
  const t = buildHuffman(counts, values);
  if (tableCache.size >= 64) tableCache.delete(tableCache.keys().next().value as string);
  tableCache.set(key, t);
  return t;
}

export interface LosslessImage {
  width: number;
  height: number;
  precision: number;
  samples: Uint16Array;
}

/** What the stream's headers say about its one scan. */
interface ScanParams {
  start: number;
  width: number;
  height: number;
  precision: number;
  predictor: number;
  pt: number;
  huff: Huffman;
}

/**
 * Decode a single-component JPEG Lossless stream into samples (`into` when it holds width × height of them, else a
 * new array); null when it is a variant this decoder leaves to the WASM codec.
 */
export function decodeJpegLossless(data: Uint8Array, into?: Uint16Array): LosslessImage | null {
  const sp = readHeaders(data);
  if (!sp || !scanDiffs(data, sp)) return null;
  const n = sp.width * sp.height;
  const out = into && into.length >= n ? into.subarray(0, n) : new Uint16Array(n);
  predict(sp, out);
  return { width: sp.width, height: sp.height, precision: sp.precision, samples: out };
}

/** Samples reused by decodeJpegLosslessModality for the predictors it does not fuse. */
let samplesScratch = new Uint16Array(0);

/**
 * Decode a single-component JPEG Lossless stream straight to modality values (modality.ts) in `out` (at least
 * width × height values): the same values as decodeJpegLossless followed by the modality LUT. With selection value
 * 1 (what CT archives write) it takes a single pass and stores neither differences nor samples: each difference
 * is added to the sample on its left (the row's first to the first of the row above) and the sum turned into a
 * modality value at once. False when the decoder leaves the stream to the WASM codec or its size is not `expect`
 * (the header's Columns × Rows); `out` may then hold anything.
 */
export function decodeJpegLosslessModality(
  data: Uint8Array,
  m: Modality,
  out: Float32Array,
  expect: { width: number; height: number },
): boolean {
  const sp = readHeaders(data);
  if (!sp || sp.width !== expect.width || sp.height !== expect.height) return false;
  const n = sp.width * sp.height;
  if (out.length < n || !integerModality(m)) return false;
  if (sp.predictor === 1) return scanModality1(data, sp, m, out);
  if (!scanDiffs(data, sp)) return false;
  if (samplesScratch.length < n) samplesScratch = new Uint16Array(n);
  const samples = samplesScratch.subarray(0, n);
  predict(sp, samples);
  modalityU16(samples, out, n, m);
  return true;
}

function readHeaders(data: Uint8Array): ScanParams | null {
  const len = data.length;
  if (len < 4 || data[0] !== 0xff || data[1] !== 0xd8) return null;
  const tables: (Huffman | null)[] = [null, null, null, null];
  let pos = 2;
  let width = 0;
  let height = 0;
  let precision = 0;
  let componentId = -1;
  const u16 = (p: number): number => ((data[p] as number) << 8) | (data[p + 1] as number);
  for (;;) {
    // next marker (fill bytes 0xFF allowed)
    if (pos + 4 > len || data[pos] !== 0xff) return null;
    let marker = data[pos + 1] as number;
    while (marker === 0xff && pos + 2 < len) {
      pos++;
      marker = data[pos + 1] as number;
    }
    pos += 2;
    if (marker === 0xd8 || (marker >= 0xd0 && marker <= 0xd7) || marker === 0x01) continue;
    if (pos + 2 > len) return null;
    const segLen = u16(pos);
    const segEnd = pos + segLen;
    if (segLen < 2 || segEnd > len) return null;
    if (marker === 0xc4) {
      let p = pos + 2;
      while (p < segEnd) {
        const tc = (data[p] as number) >> 4;
        const th = (data[p] as number) & 15;
        if (tc !== 0 || th > 3 || p + 17 > segEnd) return null;
        const counts = data.subarray(p + 1, p + 17);
        let total = 0;
        for (let i = 0; i < 16; i++) total += counts[i] as number;
        if (p + 17 + total > segEnd) return null;
        const t = cachedHuffman(counts, data.subarray(p + 17, p + 17 + total));
        if (!t) return null;
        tables[th] = t;
        p += 17 + total;
      }
    } else if (marker === 0xc3) {
      if (segLen < 8) return null;
      precision = data[pos + 2] as number;
      height = u16(pos + 3);
      width = u16(pos + 5);
      const nf = data[pos + 7] as number;
      if (nf !== 1 || segLen < 11) return null;
      componentId = data[pos + 8] as number;
      if (precision <= 8 || precision > 16 || width === 0 || height === 0) return null;
    } else if (marker === 0xdd) {
      if (segLen >= 4 && u16(pos + 2) !== 0) return null; // restart intervals: left to the WASM codec
    } else if (marker === 0xda) {
      if (!width) return null; // no SOF3 (another process) or SOS first
      const ns = data[pos + 2] as number;
      if (ns !== 1 || segLen !== 8) return null;
      if ((data[pos + 3] as number) !== componentId) return null;
      const td = (data[pos + 4] as number) >> 4;
      const predictor = data[pos + 5] as number;
      const pt = (data[pos + 7] as number) & 15;
      const huff = tables[td & 3];
      if (!huff || td > 3 || predictor < 1 || predictor > 7 || pt >= precision) return null;
      return { start: segEnd, width, height, precision, predictor, pt, huff };
    } else if ((marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) || marker === 0xd9) {
      return null; // another coding process, or no scan
    }
    pos = segEnd;
  }
}

/**
 * Reused from frame to frame (a thread decodes one slice at a time): the differences, and the entropy-coded bytes
 * unstuffed, with a big-endian view of them for the bit reader.
 */
let diffScratch = new Int32Array(0);
let ecsScratch = new Uint8Array(0);
let ecsView = new DataView(ecsScratch.buffer);

/**
 * The entropy-coded segment data[start…] with its stuffed zero bytes removed (0xFF 0x00 → 0xFF), up to the first
 * marker (0xFF followed by anything else, or a 0xFF as the last byte), into ecsScratch; then `pad` zero bytes.
 * Returns the number of data bytes. Reading these bits is reading exactly what a reader that unstuffed byte by
 * byte, and fed zeros from the first marker on, would read. The bytes are copied in one block and moved down only
 * where a stuffed byte was dropped (a few hundred times in a CT slice), so this costs about a memcpy.
 */
function unstuff(data: Uint8Array, start: number, pad: number): number {
  const len = data.length;
  const need = len - start + pad;
  if (ecsScratch.length < need) {
    ecsScratch = new Uint8Array(need + (need >> 3));
    ecsView = new DataView(ecsScratch.buffer);
  }
  const u = ecsScratch;
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength); // memchr-speed indexOf
  u.set(data.subarray(start), 0);
  let w = 0; // bytes kept so far
  let p = start; // next source byte not yet accounted for
  let end = len;
  for (let ff = buf.indexOf(0xff, p); ff >= 0; ff = buf.indexOf(0xff, p)) {
    if (ff + 1 >= len || data[ff + 1] !== 0) {
      end = ff; // a marker: the data stop here
      break;
    }
    // keep p … ff (the 0xFF included), drop the stuffed zero after it
    if (w !== p - start) u.copyWithin(w, p - start, ff + 1 - start);
    w += ff + 1 - p;
    p = ff + 2;
  }
  if (end > p) {
    if (w !== p - start) u.copyWithin(w, p - start, end - start);
    w += end - p;
  }
  u.fill(0, w, w + pad);
  return w;
}

/**
 * The entry of a code longer than the combined lookup, or whose extra bits do not fit in it: (difference << 8) |
 * bits used, as a combo entry; 0 for a code the table does not have. `win`: the 32 bits at bit position `bp`.
 */
function slowEntry(win: number, bp: number, h: Huffman, dv: DataView): number {
  let s: number;
  let used: number;
  const f = h.fast[win >>> (32 - FAST_BITS)] as number;
  if (f) {
    used = f >> 8;
    s = f & 255;
  } else {
    let l = FAST_BITS + 1;
    let code = win >>> (32 - l);
    while (l <= 16 && code > (h.maxCode[l] as number)) {
      l++;
      code = win >>> (32 - l);
    }
    if (l > 16) return 0;
    used = l;
    s = h.values[(h.delta[l] as number) + code] as number;
  }
  if (s === 0) return used;
  if (s === 16) return (32768 << 8) | used;
  const at = bp + used;
  const extra = (dv.getInt32(at >>> 3, false) << (at & 7)) >>> (32 - s);
  const diff = extra < 1 << (s - 1) ? extra - ((1 << s) - 1) : extra;
  return (diff << 8) | (used + s);
}

/**
 * Unstuffs the scan's entropy-coded data (unstuff) with room for a row of the longest codes after it; returns the
 * number of data bits. A pixel takes at most 32 bits (a 16-bit code and 16 extra bits): a row reads at most
 * 4 · width bytes (and a 4-byte window) past where it started, and each row starts inside the data (the callers
 * check after each row), so the padding keeps every read in the buffer.
 */
function unstuffScan(data: Uint8Array, sp: ScanParams): number {
  return unstuff(data, sp.start, 4 * sp.width + 8) * 8;
}

// The bit reader of both passes: `bp` is the bit position in the unstuffed bytes; a 32-bit big-endian window read at
// it (dv.getInt32, shifted left by bp & 7) holds at least 25 unread bits, most significant first, so the combined
// lookup needs no refill branch. A difference is one combo entry, or slowEntry's.

/** Pass 1: the differences of every sample, into diffScratch; false for a stream to leave to the WASM codec. */
function scanDiffs(data: Uint8Array, sp: ScanParams): boolean {
  const { width, height } = sp;
  const n = width * height;
  const h = sp.huff;
  const combo = h.combo;
  if (diffScratch.length < n) diffScratch = new Int32Array(n);
  const diffs = diffScratch;
  const availBits = unstuffScan(data, sp);
  const dv = ecsView;
  let bp = 0;
  for (let y = 0, i = 0; y < height; y++) {
    const rowEnd = i + width;
    for (; i < rowEnd; i++) {
      const win = dv.getInt32(bp >>> 3, false) << (bp & 7);
      let e = combo[win >>> (32 - COMBO_BITS)] as number;
      if (e === 0) {
        e = slowEntry(win, bp, h, dv);
        if (e === 0) return false;
      }
      bp += e & 255;
      diffs[i] = e >> 8;
    }
    // Bits read past the entropy-coded data (a truncated or odd stream): leave it to the WASM codec.
    if (bp > availBits) return false;
  }
  return true;
}

/** Pass 2: undo the prediction (T.81 H.1.2.1; no restart intervals) into `out`: values mod 2^16, then the point transform. */
function predict(sp: ScanParams, out: Uint16Array): void {
  const { width, height, precision, predictor, pt } = sp;
  const n = width * height;
  const diffs = diffScratch;
  const initial = 1 << (precision - pt - 1);
  let ra = (initial + (diffs[0] as number)) & 0xffff;
  out[0] = ra;
  for (let x = 1; x < width; x++) {
    ra = (ra + (diffs[x] as number)) & 0xffff;
    out[x] = ra;
  }
  for (let y = 1; y < height; y++) {
    const row = y * width;
    const up = row - width;
    ra = ((out[up] as number) + (diffs[row] as number)) & 0xffff;
    out[row] = ra;
    switch (predictor) {
      case 1:
        for (let i = row + 1; i < row + width; i++) {
          ra = (ra + (diffs[i] as number)) & 0xffff;
          out[i] = ra;
        }
        break;
      case 2:
        for (let i = row + 1; i < row + width; i++) out[i] = ((out[i - width] as number) + (diffs[i] as number)) & 0xffff;
        break;
      case 3:
        for (let i = row + 1; i < row + width; i++) out[i] = ((out[i - width - 1] as number) + (diffs[i] as number)) & 0xffff;
        break;
      default:
        for (let i = row + 1; i < row + width; i++) {
          const a = out[i - 1] as number;
          const b = out[i - width] as number;
          const c = out[i - width - 1] as number;
          const p =
            predictor === 4 ? a + b - c : predictor === 5 ? a + ((b - c) >> 1) : predictor === 6 ? b + ((a - c) >> 1) : (a + b) >> 1;
          out[i] = (p + (diffs[i] as number)) & 0xffff;
        }
    }
  }
  if (pt > 0) for (let i = 0; i < n; i++) out[i] = ((out[i] as number) << pt) & 0xffff;
}

/**
 * Selection value 1 (Ra), decoded, predicted and turned into modality values in one pass: sample (mod 2^16) →
 * << pt (mod 2^16) → modalityU16's formula, written as a float32 straight away.
 */
function scanModality1(data: Uint8Array, sp: ScanParams, m: Modality, out: Float32Array): boolean {
  const { width, height, precision, pt } = sp;
  const h = sp.huff;
  const combo = h.combo;
  const availBits = unstuffScan(data, sp);
  const dv = ecsView;
  const range = 2 ** m.bitsStored;
  const half = range / 2;
  const mask = range - 1;
  const shift = m.shift;
  const slope = m.slope;
  const icpt = m.intercept;
  const signed = m.signed;
  let bp = 0;
  let first = 1 << (precision - pt - 1); // predictor of the row's first sample: the first sample of the row above
  for (let y = 0, i = 0; y < height; y++) {
    const rowStart = i;
    const rowEnd = i + width;
    let ra = first;
    for (; i < rowEnd; i++) {
      const win = dv.getInt32(bp >>> 3, false) << (bp & 7);
      let e = combo[win >>> (32 - COMBO_BITS)] as number;
      if (e === 0) {
        e = slowEntry(win, bp, h, dv);
        if (e === 0) return false;
      }
      bp += e & 255;
      ra = (ra + (e >> 8)) & 0xffff;
      if (i === rowStart) first = ra;
      let v = (((ra << pt) & 0xffff) >>> shift) & mask;
      if (signed && v >= half) v -= range;
      out[i] = v * slope + icpt;
    }
    if (bp > availBits) return false;
  }
  return true;
}
