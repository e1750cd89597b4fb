/**
 * JPEG Lossless (ITU-T T.81 process 14, SOF3; DICOM transfer syntaxes 1.2.840.10008.1.2.4.57 and .70), one
 * component, 9–16 bit precision, no restart intervals: what CT scanners and archives write. In plain
 * TypeScript because it beats the WASM libjpeg-turbo build of dcmjs-codecs on this path by about 2× (no copy in
 * and out of the WASM heap, a 9-bit Huffman lookup table) — `npm run bench` measures both.
 *
 * Anything else (several components, ≤ 8-bit precision, restart markers, hierarchical or arithmetic coding, or
 * a stream it cannot read) returns null, and the caller uses the WASM codec, so the answer for unusual or
 * corrupt streams is exactly what it was. Output: the reconstructed samples (mod 2^16, shifted left by the
 * point transform), as libjpeg returns them.
 */

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

/** Decode a single-component JPEG Lossless stream; null when it is a variant this decoder leaves to the WASM codec. */
export function decodeJpegLossless(data: Uint8Array): LosslessImage | null {
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
      return scan(data, segEnd, width, height, precision, predictor, pt, huff);
    } else if ((marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) || marker === 0xd9) {
      return null; // another coding process, or no scan
    }
    pos = segEnd;
  }
}

let diffScratch = new Int32Array(0);

function scan(
  data: Uint8Array,
  start: number,
  width: number,
  height: number,
  precision: number,
  predictor: number,
  pt: number,
  h: Huffman,
): LosslessImage | null {
  const n = width * height;
  const len = data.length;
  const fast = h.fast;
  const combo = h.combo;
  const maxCode = h.maxCode;
  const delta = h.delta;
  const values = h.values;
  if (diffScratch.length < n) diffScratch = new Int32Array(n);
  const diffs = diffScratch;
  let pos = start;
  let acc = 0; // bit buffer: the low `bits` bits are unread, most significant first
  let bits = 0;
  let padded = 0; // zero bytes fed once the data ran out or a marker came
  const FAST_MASK = (1 << FAST_BITS) - 1;
  const COMBO_MASK = (1 << COMBO_BITS) - 1;
  // 1. the differences, in one tight loop
  for (let i = 0; i < n; i++) {
    while (bits <= 24) {
      let b = 0;
      if (padded === 0 && pos < len) {
        b = data[pos] as number;
        if (b === 0xff) {
          if (pos + 1 < len && data[pos + 1] === 0) pos += 2;
          else {
            b = 0;
            padded++;
          }
        } else pos++;
      } else padded++;
      acc = (acc << 8) | b;
      bits += 8;
    }
    const e = combo[(acc >>> (bits - COMBO_BITS)) & COMBO_MASK] as number;
    if (e !== 0) {
      bits -= e & 255;
      diffs[i] = e >> 8;
      continue;
    }
    let s: number;
    const f = fast[(acc >>> (bits - FAST_BITS)) & FAST_MASK] as number;
    if (f) {
      bits -= f >> 8;
      s = f & 255;
    } else {
      let l = FAST_BITS + 1;
      let code = (acc >>> (bits - l)) & ((1 << l) - 1);
      while (l <= 16 && code > (maxCode[l] as number)) {
        l++;
        code = (acc >>> (bits - l)) & ((1 << l) - 1);
      }
      if (l > 16) return null;
      bits -= l;
      s = values[(delta[l] as number) + code] as number;
    }
    if (s === 0) {
      diffs[i] = 0;
      continue;
    }
    if (s === 16) {
      diffs[i] = 32768;
      continue;
    }
    while (bits < s) {
      // at most 16 bits were taken since the refill above: room for 8 more
      let b = 0;
      if (padded === 0 && pos < len) {
        b = data[pos] as number;
        if (b === 0xff) {
          if (pos + 1 < len && data[pos + 1] === 0) pos += 2;
          else {
            b = 0;
            padded++;
          }
        } else pos++;
      } else padded++;
      acc = (acc << 8) | b;
      bits += 8;
    }
    bits -= s;
    let d = (acc >>> bits) & ((1 << s) - 1);
    if (d < 1 << (s - 1)) d -= (1 << s) - 1;
    diffs[i] = d;
  }
  // Bits read past the entropy-coded data (a truncated or odd stream): leave it to the WASM codec.
  if (padded * 8 > bits) return null;
  // 2. undo the prediction (T.81 H.1.2.1; no restart intervals): values mod 2^16, then the point transform
  const out = new Uint16Array(n);
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
  return { width, height, precision, samples: out };
}
