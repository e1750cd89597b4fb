/**
 * Streaming re-encoder from Explicit VR Little Endian to Implicit VR Little Endian, for a peer that
 * accepts only the default transfer syntax (which every DICOM SCP must accept).
 *
 * Only element headers change: every value is copied byte for byte (both syntaxes are little
 * endian), so no attribute value is reformatted. Sequences and items of defined length are written
 * with undefined length and delimiters (their lengths would otherwise change with the headers), so
 * nothing has to be buffered. UN of undefined length (implicit VR content) is copied as it is.
 * Memory: one element header at a time, values pass through as slices of the input.
 */
import { readElementHeader, Tag, UNDEFINED_LENGTH } from '../encoding.js';

// Elements of group 0xFFFE (the group is checked apart).
const ITEM = Tag.Item & 0xffff;
const ITEM_DELIM = Tag.ItemDelimitation & 0xffff;
const SEQ_DELIM = Tag.SequenceDelimitation & 0xffff;

interface Frame {
  kind: 'seq' | 'item';
  /** Absolute input offset where a defined-length frame ends; -1 for undefined length. */
  end: number;
  /** Content encoded implicit VR (inside UN of undefined length): copied unchanged. */
  implicit: boolean;
}

function implicitHeader(group: number, element: number, length: number): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt16LE(group, 0);
  h.writeUInt16LE(element, 2);
  h.writeUInt32LE(length >>> 0, 4);
  return h;
}

export class ExplicitToImplicit {
  private pending: Buffer | null = null;
  /** Absolute input offset of the next byte to parse. */
  private pos = 0;
  /** Value bytes still to copy unchanged. */
  private copy = 0;
  private readonly stack: Frame[] = [];
  private out: Buffer[] = [];
  error: string | undefined;

  /** Converts the next input bytes; returns the output produced so far (may be empty). */
  push(chunk: Buffer): Buffer[] {
    if (this.error) return [];
    let data = chunk;
    if (this.pending) {
      data = Buffer.concat([this.pending, chunk]);
      this.pending = null;
    }
    let i = 0;
    const len = data.length;
    while (i < len && !this.error) {
      if (this.copy > 0) {
        const n = Math.min(this.copy, len - i);
        this.out.push(data.subarray(i, i + n));
        this.copy -= n;
        i += n;
        this.pos += n;
        if (this.copy === 0) this.closeFrames();
        continue;
      }
      const frame = this.stack[this.stack.length - 1];
      const implicit = frame?.implicit ?? false;
      if (len - i < 8) break;
      const group = data.readUInt16LE(i);
      const element = data.readUInt16LE(i + 2);
      if (group === 0xfffe) {
        const length = data.readUInt32LE(i + 4);
        i += 8;
        this.pos += 8;
        this.delimitation(group, element, length, implicit);
        continue;
      }
      if (frame?.kind === 'seq') {
        this.error = 'element directly inside a sequence';
        break;
      }
      if (implicit) {
        // Inside UN (implicit content): copy headers and values unchanged, follow nesting only.
        const length = data.readUInt32LE(i + 4);
        this.out.push(data.subarray(i, i + 8));
        i += 8;
        this.pos += 8;
        if (length === UNDEFINED_LENGTH) this.stack.push({ kind: 'seq', end: -1, implicit: true });
        else this.startCopy(length);
        continue;
      }
      const h = readElementHeader(data, i, false);
      if (h === undefined) break;
      if (h === null) {
        this.error = `unknown VR ${JSON.stringify(data.toString('latin1', i + 4, i + 6))}`;
        break;
      }
      const { vr, length } = h;
      i += h.headerLength;
      this.pos += h.headerLength;
      if (vr === 'SQ' || (vr === 'UN' && length === UNDEFINED_LENGTH)) {
        if (length === 0) {
          this.out.push(implicitHeader(group, element, 0));
          this.closeFrames();
          continue;
        }
        this.out.push(implicitHeader(group, element, UNDEFINED_LENGTH));
        this.stack.push({ kind: 'seq', end: length === UNDEFINED_LENGTH ? -1 : this.pos + length, implicit: vr === 'UN' });
        if (vr === 'UN' && length !== UNDEFINED_LENGTH) this.error = 'UN sequence of defined length';
        continue;
      }
      if (length === UNDEFINED_LENGTH) {
        this.error = `undefined length ${vr} (encapsulated data) in an uncompressed dataset`;
        break;
      }
      this.out.push(implicitHeader(group, element, length));
      this.startCopy(length);
    }
    if (i < len && !this.error) this.pending = Buffer.from(data.subarray(i));
    const out = this.out;
    this.out = [];
    return out;
  }

  /** Call after the last input byte; returns the remaining output, or sets `error`. */
  end(): Buffer[] {
    if (this.error) return [];
    if (this.pending || this.copy > 0) this.error = 'dataset ends inside an element';
    else if (this.stack.length > 0) this.error = 'dataset ends inside a sequence';
    const out = this.out;
    this.out = [];
    return out;
  }

  private startCopy(length: number): void {
    if (length === 0) this.closeFrames();
    else this.copy = length;
  }

  private delimitation(group: number, element: number, length: number, _implicit: boolean): void {
    const frame = this.stack[this.stack.length - 1];
    if (element === ITEM) {
      if (frame?.kind !== 'seq') {
        this.error = 'item outside a sequence';
        return;
      }
      if (frame.implicit) {
        // Implicit content: item copied unchanged (its length stays valid).
        this.out.push(implicitHeader(group, element, length));
        if (length === UNDEFINED_LENGTH) this.stack.push({ kind: 'item', end: -1, implicit: true });
        else this.startCopy(length);
        return;
      }
      this.out.push(implicitHeader(group, element, UNDEFINED_LENGTH));
      if (length === 0) {
        this.out.push(implicitHeader(0xfffe, ITEM_DELIM, 0));
        this.closeFrames();
        return;
      }
      this.stack.push({ kind: 'item', end: length === UNDEFINED_LENGTH ? -1 : this.pos + length, implicit: false });
    } else if (element === ITEM_DELIM || element === SEQ_DELIM) {
      const want = element === ITEM_DELIM ? 'item' : 'seq';
      if (!frame || frame.kind !== want || frame.end !== -1) {
        this.error = `${want} delimiter out of place`;
        return;
      }
      this.out.push(implicitHeader(group, element, 0));
      this.stack.pop();
      this.closeFrames();
    } else {
      this.error = `unexpected (FFFE,${element.toString(16)})`;
    }
  }

  /** Closes defined-length frames that end here, writing the delimiters they now need. */
  private closeFrames(): void {
    for (;;) {
      const top = this.stack[this.stack.length - 1];
      if (!top || top.end === -1 || top.end !== this.pos) {
        if (top && top.end !== -1 && this.pos > top.end) this.error = 'element runs past the end of its sequence or item';
        return;
      }
      this.stack.pop();
      this.out.push(implicitHeader(0xfffe, top.kind === 'item' ? ITEM_DELIM : SEQ_DELIM, 0));
    }
  }
}
