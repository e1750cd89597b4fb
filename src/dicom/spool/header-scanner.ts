/**
 * Incremental walker over a DICOM dataset stream (implicit or explicit VR little endian) that
 * picks out the few top-level header attributes the listener needs while the bytes go to disk,
 * and, in `validate` mode, checks the structure of the whole dataset on the way.
 *
 * It never buffers more than one element header plus the (small) values it keeps; everything
 * else is skipped by counting. Sequences and items of undefined length are followed through
 * their delimiters (nested data inside them is skipped).
 *
 * - Header mode (default; the SCU and the spool readers): scanning stops at Pixel Data
 *   (7FE0,0010) or at the first top-level tag after the last wanted one (`done`).
 * - Validate mode (the listener): the walk goes on to the last byte. Every element, item and
 *   encapsulated fragment must fit inside the item or sequence that holds it, every undefined
 *   length must be closed by its delimiter, and at the end of the stream nothing may be left
 *   open (`incomplete()`): a dataset cut short — or one that declares a length it never sends —
 *   is not a dataset DCMTK or pydicom can read. Sequence nesting and the number of items are
 *   bounded ({@link ScanLimits}), so the walker's memory stays a few hundred bytes whatever the
 *   input.
 */
import { standardVr } from '../dictionary.js';
import type { InstanceAttributes } from '../received-instance.js';
import { type ElementHeader, readElementHeader, Tag, UNDEFINED_LENGTH } from '../encoding.js';
import { TransferSyntax } from '../uids.js';

const TAG_IMAGE_TYPE = 0x00080008;
const TAG_SOP_CLASS_UID = 0x00080016;
const TAG_SOP_INSTANCE_UID = 0x00080018;
const TAG_MODALITY = 0x00080060;
const TAG_BODY_PART = 0x00180015;
const TAG_STUDY_UID = 0x0020000d;
const TAG_SERIES_UID = 0x0020000e;
// Series-level attributes for study completion and series selection (src/queue/series-selection.ts).
const TAG_STUDY_DATE = 0x00080020;
const TAG_STUDY_DESCRIPTION = 0x00081030;
const TAG_SERIES_DESCRIPTION = 0x0008103e;
const TAG_SLICE_THICKNESS = 0x00180050;
const TAG_CONVOLUTION_KERNEL = 0x00181210;
const TAG_SERIES_NUMBER = 0x00200011;
const TAG_IMAGE_POSITION = 0x00200032;
const TAG_IMAGE_ORIENTATION = 0x00200037;
const TAG_PIXEL_SPACING = 0x00280030;
const LAST_WANTED = TAG_PIXEL_SPACING;
const TAG_PIXEL_DATA = 0x7fe00010;
const MAX_KEPT_VALUE = 1024;
/** Longest element header (explicit VR with a 32-bit length). */
const MAX_HEADER = 12;

const WANTED = new Set([
  TAG_IMAGE_TYPE,
  TAG_SOP_CLASS_UID,
  TAG_SOP_INSTANCE_UID,
  TAG_MODALITY,
  TAG_BODY_PART,
  TAG_STUDY_UID,
  TAG_SERIES_UID,
  TAG_STUDY_DATE,
  TAG_STUDY_DESCRIPTION,
  TAG_SERIES_DESCRIPTION,
  TAG_SLICE_THICKNESS,
  TAG_CONVOLUTION_KERNEL,
  TAG_SERIES_NUMBER,
  TAG_IMAGE_POSITION,
  TAG_IMAGE_ORIENTATION,
  TAG_PIXEL_SPACING,
]);

/**
 * What the scanner reads: the routing UIDs and attributes, and the series-level attributes as stored (InstanceAttributes:
 * trimmed, "" when absent; ConvolutionKernel and the vectors as stored, values joined by "\\") for study completion
 * and series selection.
 */
export interface ScannedHeader extends InstanceAttributes {
  sopClassUid: string;
  sopInstanceUid: string;
  studyInstanceUid: string;
  seriesInstanceUid: string;
  modality: string;
  bodyPartExamined: string;
  imageType: string[];
}

/** Bounds on the work one dataset may cause (config dicom.maxSequenceDepth / maxItemsPerInstance). */
export interface ScanLimits {
  /** Sequences nested deeper than this are refused. */
  maxSequenceDepth: number;
  /** Sequence items plus encapsulated fragments in one dataset. */
  maxItems: number;
}

export const DEFAULT_SCAN_LIMITS: ScanLimits = { maxSequenceDepth: 32, maxItems: 1_000_000 };

export interface HeaderScannerOptions {
  /** Walk and check the whole dataset (see the module comment). */
  validate?: boolean;
  limits?: ScanLimits;
}

interface Frame {
  /** seq: expects items; item: expects elements; frags: encapsulated Pixel Data, expects fragments. */
  kind: 'seq' | 'item' | 'frags';
  implicit: boolean;
  /** Offset where a defined-length frame ends; -1 for an undefined length (ends at its delimiter). */
  end: number;
  /** The nearest defined end of this frame or one around it; -1 when there is none (top level). */
  limit: number;
}

export class HeaderScanner {
  private readonly implicitTs: boolean;
  private readonly validate: boolean;
  private readonly limits: ScanLimits;
  /** Start of an element header split across chunks (at most MAX_HEADER - 1 bytes). */
  private pending: Buffer | null = null;
  private skip = 0;
  private collectTag = 0;
  private collectLeft = 0;
  private collected: Buffer[] = [];
  private readonly stack: Frame[] = [];
  private sequenceDepth = 0;
  private items = 0;
  /** Dataset bytes consumed so far. */
  private offset = 0;
  /** The element whose value is being skipped or collected (for messages). */
  private valueTag = 0;
  private readonly values = new Map<number, string>();
  /** True once everything wanted is known (or the header is over). */
  done = false;
  /** Set when the bytes cannot be a dataset in the negotiated syntax (or break a limit); scanning stops. */
  error: string | undefined;

  constructor(transferSyntaxUid: string, opts: HeaderScannerOptions = {}) {
    this.implicitTs = transferSyntaxUid === TransferSyntax.ImplicitVRLittleEndian;
    this.validate = opts.validate ?? false;
    this.limits = opts.limits ?? DEFAULT_SCAN_LIMITS;
  }

  /** Dataset bytes walked so far. */
  get bytes(): number {
    return this.offset;
  }

  private get stopped(): boolean {
    return this.error !== undefined || (this.done && !this.validate);
  }

  push(chunk: Buffer): void {
    if (this.stopped) return;
    let pos = 0;
    if (this.pending) {
      // Only a header can be split: complete it from the head of this chunk.
      const held = this.pending;
      const bridge = Buffer.concat([held, chunk.subarray(0, MAX_HEADER)]);
      const h = this.readHeader(bridge, 0);
      if (h === null) return;
      if (h === undefined) {
        this.pending = bridge;
        return;
      }
      this.pending = null;
      pos = h.headerLength - held.length;
      this.offset += h.headerLength;
      this.onHeader(h);
    }
    this.run(chunk, pos);
  }

  private run(data: Buffer, start: number): void {
    let pos = start;
    const len = data.length;
    while (pos < len && !this.stopped) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, len - pos);
        this.skip -= n;
        pos += n;
        this.offset += n;
        continue;
      }
      if (this.collectLeft > 0) {
        const n = Math.min(this.collectLeft, len - pos);
        this.collected.push(Buffer.from(data.subarray(pos, pos + n)));
        this.collectLeft -= n;
        pos += n;
        this.offset += n;
        if (this.collectLeft === 0) this.finishValue();
        continue;
      }
      if (!this.closeFrames()) return;
      const h = this.readHeader(data, pos);
      if (h === null) return;
      if (h === undefined) {
        this.pending = Buffer.from(data.subarray(pos));
        return;
      }
      pos += h.headerLength;
      this.offset += h.headerLength;
      this.onHeader(h);
    }
    if (!this.stopped && this.skip === 0 && this.collectLeft === 0) this.closeFrames();
  }

  /** The element header at `pos`: undefined when more bytes are needed, null on an error. */
  private readHeader(data: Buffer, pos: number): ElementHeader | undefined | null {
    const frame = this.stack[this.stack.length - 1];
    const h = readElementHeader(data, pos, frame ? frame.implicit : this.implicitTs);
    if (h !== null) return h;
    const tag = ((data.readUInt16LE(pos) << 16) | data.readUInt16LE(pos + 2)) >>> 0;
    return this.fail(`unknown VR ${JSON.stringify(data.toString('latin1', pos + 4, pos + 6))} at (${hex(tag)})`);
  }

  private fail(reason: string): null {
    this.error ??= reason;
    return null;
  }

  private top(): Frame | undefined {
    return this.stack[this.stack.length - 1];
  }

  /** The nearest defined end around the current position (-1: none known). */
  private limit(): number {
    return this.top()?.limit ?? -1;
  }

  /** A value of `length` bytes starting at the current offset must end by the enclosing limit. */
  private fits(length: number, what: () => string): boolean {
    const limit = this.limit();
    if (limit >= 0 && this.offset + length > limit) {
      this.fail(`${what()} of ${length} bytes overruns its enclosing item by ${this.offset + length - limit} bytes`);
      return false;
    }
    return true;
  }

  private onHeader(h: ElementHeader): void {
    if (h.tag >>> 16 === 0xfffe) {
      this.onDelimitation(h.tag, h.length);
      return;
    }
    const frame = this.top();
    if (frame && frame.kind !== 'item') {
      this.fail(`element (${hex(h.tag)}) directly inside ${frame.kind === 'seq' ? 'a sequence' : 'encapsulated Pixel Data'}`);
      return;
    }
    if (this.limit() >= 0 && this.offset > this.limit()) {
      this.fail(`element header (${hex(h.tag)}) overruns its enclosing item`);
      return;
    }
    const { tag, vr, length } = h;
    const implicit = frame ? frame.implicit : this.implicitTs;
    if (!frame && !this.done) {
      if (tag === TAG_PIXEL_DATA || tag > LAST_WANTED) {
        this.done = true;
        if (!this.validate) return;
      } else if (WANTED.has(tag) && length !== UNDEFINED_LENGTH) {
        if (length > MAX_KEPT_VALUE) this.skipValue(tag, length);
        else if (length === 0) this.values.set(tag, '');
        else {
          this.collectTag = tag;
          this.valueTag = tag;
          this.collectLeft = length;
          this.collected = [];
        }
        return;
      }
    }
    // Implicit VR: the dictionary says what a standard element is (validate mode only).
    const knownVr = implicit && this.validate ? standardVr(tag) : undefined;
    if (length === UNDEFINED_LENGTH) {
      if (implicit && tag === TAG_PIXEL_DATA) {
        this.pushFrame('frags', false, -1);
      } else if (knownVr !== undefined && knownVr !== 'SQ') {
        // DCMTK reads an undefined length only on sequences (and unknown or private elements).
        this.fail(`undefined length on ${knownVr} element (${hex(tag)})`);
      } else if (!implicit && (vr === 'OB' || vr === 'OW')) {
        // Encapsulated (compressed) Pixel Data: fragments, then a sequence delimiter. Only Pixel
        // Data may be encapsulated (PS3.5 A.4): DCMTK refuses an undefined length on any other.
        if (tag !== TAG_PIXEL_DATA) {
          this.fail(`undefined length on ${vr} element (${hex(tag)}) that is not Pixel Data`);
          return;
        }
        this.pushFrame('frags', false, -1);
      } else if (implicit || vr === 'SQ' || vr === 'UN') {
        // A sequence (SQ, implicit-VR SQ, or UN whose content is implicit VR LE).
        this.pushSequence(implicit || vr === 'UN', -1);
      } else {
        this.fail(`undefined length on a ${vr} element (${hex(tag)})`);
      }
      return;
    }
    if (!this.fits(length, () => `element (${hex(tag)})`)) return;
    if (this.validate && (vr === 'SQ' || knownVr === 'SQ')) this.pushSequence(implicit, this.offset + length);
    else this.skipValue(tag, length);
  }

  private skipValue(tag: number, length: number): void {
    this.valueTag = tag;
    this.skip = length;
  }

  private pushSequence(implicit: boolean, end: number): void {
    if (this.sequenceDepth >= this.limits.maxSequenceDepth) {
      this.fail(`sequences nested deeper than ${this.limits.maxSequenceDepth} levels`);
      return;
    }
    this.sequenceDepth++;
    this.pushFrame('seq', implicit, end);
  }

  private pushFrame(kind: Frame['kind'], implicit: boolean, end: number): void {
    this.stack.push({ kind, implicit, end, limit: end >= 0 ? end : this.limit() });
  }

  private popFrame(): void {
    if (this.stack.pop()?.kind === 'seq') this.sequenceDepth--;
  }

  /**
   * Closes the defined-length frames that end at the current offset; fails when an
   * undefined-length one reaches the end of the frame around it without its delimiter.
   */
  private closeFrames(): boolean {
    for (let f = this.top(); f; f = this.top()) {
      if (f.end >= 0) {
        if (this.offset < f.end) return true;
        this.popFrame();
        continue;
      }
      if (f.limit >= 0 && this.offset >= f.limit) {
        this.fail(`${describe(f)} of undefined length not closed before the end of its enclosing item`);
        return false;
      }
      return true;
    }
    return true;
  }

  private onDelimitation(tag: number, length: number): void {
    const frame = this.top();
    if (tag === Tag.Item) {
      if (!frame || frame.kind === 'item') {
        this.fail('item outside a sequence');
        return;
      }
      if (++this.items > this.limits.maxItems) {
        this.fail(`more than ${this.limits.maxItems} items`);
        return;
      }
      if (length === UNDEFINED_LENGTH) {
        if (frame.kind === 'frags') this.fail('encapsulated Pixel Data fragment of undefined length');
        else this.pushFrame('item', frame.implicit, -1);
        return;
      }
      if (!this.fits(length, () => (frame.kind === 'frags' ? 'Pixel Data fragment' : 'item'))) return;
      if (this.validate && frame.kind === 'seq') this.pushFrame('item', frame.implicit, this.offset + length);
      else this.skipValue(tag, length);
    } else if (tag === Tag.ItemDelimitation) {
      if (frame?.kind !== 'item' || frame.end >= 0) {
        this.fail('item delimiter outside an item of undefined length');
        return;
      }
      this.popFrame();
    } else if (tag === Tag.SequenceDelimitation) {
      if (!frame || frame.kind === 'item' || frame.end >= 0) {
        this.fail('sequence delimiter outside a sequence of undefined length');
        return;
      }
      this.popFrame();
    } else if (this.validate) {
      this.fail(`undefined tag (${hex(tag)})`);
    } else if (length !== UNDEFINED_LENGTH) {
      // Other (FFFE,xxxx) tags are not defined; skip their value.
      this.skipValue(tag, length);
    }
  }

  private finishValue(): void {
    const raw = Buffer.concat(this.collected).toString('latin1');
    this.collected = [];
    this.values.set(this.collectTag, raw.replace(/[\0 ]+$/, '').replace(/^ +/, ''));
    if (TAG_PIXEL_SPACING === this.collectTag) {
      // Everything wanted sits at or before (0028,0030); nothing later is needed.
      this.done = true;
    }
  }

  /**
   * Validate mode, once the stream has ended: why the bytes are not a complete, well-formed
   * dataset, or undefined when they are.
   */
  incomplete(): string | undefined {
    if (this.error) return this.error;
    const left = this.skip + this.collectLeft;
    if (left > 0) {
      const what = this.valueTag === Tag.Item ? 'a Pixel Data fragment or item' : `element (${hex(this.valueTag)})`;
      return `dataset ends inside ${what}: ${left} of its bytes missing`;
    }
    if (this.pending) return 'dataset ends inside an element header';
    const open = this.top();
    if (open) return `dataset ends inside ${describe(open)} (not closed)`;
    return undefined;
  }

  /** The attributes found so far ("" / [] for the missing ones). */
  result(): ScannedHeader {
    const v = (t: number): string => this.values.get(t) ?? '';
    const imageType = v(TAG_IMAGE_TYPE);
    return {
      sopClassUid: v(TAG_SOP_CLASS_UID),
      sopInstanceUid: v(TAG_SOP_INSTANCE_UID),
      studyInstanceUid: v(TAG_STUDY_UID),
      seriesInstanceUid: v(TAG_SERIES_UID),
      modality: v(TAG_MODALITY).trim().toUpperCase(),
      bodyPartExamined: v(TAG_BODY_PART).trim().toUpperCase(),
      imageType: imageType === '' ? [] : imageType.split('\\').map((s) => s.trim().toUpperCase()),
      studyDate: v(TAG_STUDY_DATE).trim(),
      studyDescription: v(TAG_STUDY_DESCRIPTION).trim(),
      seriesDescription: v(TAG_SERIES_DESCRIPTION).trim(),
      seriesNumber: v(TAG_SERIES_NUMBER).trim(),
      sliceThickness: v(TAG_SLICE_THICKNESS).trim(),
      convolutionKernel: v(TAG_CONVOLUTION_KERNEL).trim(),
      imageOrientation: v(TAG_IMAGE_ORIENTATION).trim(),
      imagePosition: v(TAG_IMAGE_POSITION).trim(),
      pixelSpacing: v(TAG_PIXEL_SPACING).trim(),
    };
  }
}

/**
 * Checks a whole dataset held in memory (tests, the fuzz suite, spool checks): undefined when it
 * is complete and well-formed, else why not.
 */
export function datasetProblem(dataset: Buffer, transferSyntaxUid: string, limits: ScanLimits = DEFAULT_SCAN_LIMITS): string | undefined {
  const s = new HeaderScanner(transferSyntaxUid, { validate: true, limits });
  s.push(dataset);
  return s.incomplete();
}

function describe(f: Frame): string {
  return f.kind === 'seq' ? 'a sequence' : f.kind === 'item' ? 'an item' : 'encapsulated Pixel Data';
}

function hex(tag: number): string {
  const s = tag.toString(16).toUpperCase().padStart(8, '0');
  return `${s.slice(0, 4)},${s.slice(4)}`;
}
