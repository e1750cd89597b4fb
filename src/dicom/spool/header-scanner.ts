/**
 * Incremental scanner over a DICOM dataset stream (implicit or explicit VR little endian) that
 * picks out the few top-level header attributes the listener needs while the bytes go to disk.
 *
 * It never buffers more than one element header plus the (small) values it keeps; everything
 * else is skipped by counting. Sequences and items of undefined length are followed through
 * their delimiters (nested data inside them is skipped); scanning stops at Pixel Data
 * (7FE0,0010) or at the first top-level tag after the last wanted one.
 */
import { LONG_LENGTH_VRS, SHORT_LENGTH_VRS, Tag, UNDEFINED_LENGTH } from '../encoding.js';
import { TransferSyntax } from '../uids.js';

const TAG_IMAGE_TYPE = 0x00080008;
const TAG_SOP_CLASS_UID = 0x00080016;
const TAG_SOP_INSTANCE_UID = 0x00080018;
const TAG_MODALITY = 0x00080060;
const TAG_BODY_PART = 0x00180015;
const TAG_STUDY_UID = 0x0020000d;
const TAG_SERIES_UID = 0x0020000e;
const LAST_WANTED = TAG_SERIES_UID;
const TAG_PIXEL_DATA = 0x7fe00010;
const MAX_KEPT_VALUE = 1024;

const WANTED = new Set([
  TAG_IMAGE_TYPE, TAG_SOP_CLASS_UID, TAG_SOP_INSTANCE_UID, TAG_MODALITY, TAG_BODY_PART, TAG_STUDY_UID,
  TAG_SERIES_UID,
]);

export interface ScannedHeader {
  sopClassUid: string;
  sopInstanceUid: string;
  studyInstanceUid: string;
  seriesInstanceUid: string;
  modality: string;
  bodyPartExamined: string;
  imageType: string[];
}

interface Frame {
  /** 'seq': inside a sequence (expects items); 'item': inside an item (expects elements). */
  kind: 'seq' | 'item';
  implicit: boolean;
}

export class HeaderScanner {
  private readonly implicitTs: boolean;
  private pending: Buffer | null = null;
  private skip = 0;
  private collectTag = 0;
  private collectLeft = 0;
  private collected: Buffer[] = [];
  private readonly stack: Frame[] = [];
  private readonly values = new Map<number, string>();
  /** True once everything wanted is known (or the header is over). */
  done = false;
  /** Set when the bytes cannot be a dataset in the negotiated syntax; scanning stops. */
  error: string | undefined;

  constructor(transferSyntaxUid: string) {
    this.implicitTs = transferSyntaxUid === TransferSyntax.ImplicitVRLittleEndian;
  }

  push(chunk: Buffer): void {
    if (this.done || this.error) return;
    let data = chunk;
    if (this.pending) {
      data = Buffer.concat([this.pending, chunk]);
      this.pending = null;
    }
    let pos = 0;
    const len = data.length;
    while (pos < len && !this.done) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, len - pos);
        this.skip -= n;
        pos += n;
        continue;
      }
      if (this.collectLeft > 0) {
        const n = Math.min(this.collectLeft, len - pos);
        this.collected.push(Buffer.from(data.subarray(pos, pos + n)));
        this.collectLeft -= n;
        pos += n;
        if (this.collectLeft === 0) this.finishValue();
        continue;
      }
      const frame = this.stack[this.stack.length - 1];
      const implicit = frame ? frame.implicit : this.implicitTs;
      if (len - pos < 8) {
        this.pending = Buffer.from(data.subarray(pos));
        return;
      }
      const group = data.readUInt16LE(pos);
      const element = data.readUInt16LE(pos + 2);
      const tag = ((group << 16) | element) >>> 0;
      if (group === 0xfffe) {
        const length = data.readUInt32LE(pos + 4);
        pos += 8;
        this.onDelimitation(tag, length, implicit);
        continue;
      }
      if (frame && frame.kind === 'seq') {
        this.error = `element (${hex(tag)}) directly inside a sequence`;
        return;
      }
      let vr = '';
      let length: number;
      let headerLen: number;
      if (implicit) {
        length = data.readUInt32LE(pos + 4);
        headerLen = 8;
      } else {
        vr = data.toString('latin1', pos + 4, pos + 6);
        if (LONG_LENGTH_VRS.has(vr)) {
          if (len - pos < 12) {
            this.pending = Buffer.from(data.subarray(pos));
            return;
          }
          length = data.readUInt32LE(pos + 8);
          headerLen = 12;
        } else if (SHORT_LENGTH_VRS.has(vr)) {
          length = data.readUInt16LE(pos + 6);
          headerLen = 8;
        } else {
          this.error = `unknown VR ${JSON.stringify(vr)} at (${hex(tag)})`;
          return;
        }
      }
      pos += headerLen;
      if (!frame) {
        if (tag === TAG_PIXEL_DATA || tag > LAST_WANTED) {
          this.done = true;
          return;
        }
        if (WANTED.has(tag) && length !== UNDEFINED_LENGTH) {
          if (length > MAX_KEPT_VALUE) {
            this.skip = length;
          } else if (length === 0) {
            this.values.set(tag, '');
          } else {
            this.collectTag = tag;
            this.collectLeft = length;
            this.collected = [];
          }
          continue;
        }
      }
      if (length === UNDEFINED_LENGTH) {
        // A sequence (SQ, implicit-VR SQ, or UN whose content is implicit VR LE), or encapsulated data.
        this.stack.push({ kind: 'seq', implicit: implicit || vr === 'UN' });
      } else {
        this.skip = length;
      }
    }
  }

  private onDelimitation(tag: number, length: number, implicit: boolean): void {
    const frame = this.stack[this.stack.length - 1];
    if (tag === Tag.Item) {
      if (!frame || frame.kind !== 'seq') {
        this.error = 'item outside a sequence';
        return;
      }
      if (length === UNDEFINED_LENGTH) this.stack.push({ kind: 'item', implicit });
      else this.skip = length;
    } else if (tag === Tag.ItemDelimitation) {
      if (!frame || frame.kind !== 'item') {
        this.error = 'item delimiter outside an item';
        return;
      }
      this.stack.pop();
    } else if (tag === Tag.SequenceDelimitation) {
      if (!frame || frame.kind !== 'seq') {
        this.error = 'sequence delimiter outside a sequence';
        return;
      }
      this.stack.pop();
    } else {
      // Other (FFFE,xxxx) tags are not defined; skip their value.
      if (length !== UNDEFINED_LENGTH) this.skip = length;
    }
  }

  private finishValue(): void {
    const raw = Buffer.concat(this.collected).toString('latin1');
    this.collected = [];
    this.values.set(this.collectTag, raw.replace(/[\0 ]+$/, '').replace(/^ +/, ''));
    if (TAG_SERIES_UID === this.collectTag && this.values.has(TAG_STUDY_UID)) {
      // Everything wanted sits at or before (0020,000E); nothing later is needed.
      this.done = true;
    }
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
    };
  }
}

function hex(tag: number): string {
  const s = tag.toString(16).toUpperCase().padStart(8, '0');
  return `${s.slice(0, 4)},${s.slice(4)}`;
}
