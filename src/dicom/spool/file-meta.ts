import { IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME } from '../uids.js';

/** What goes into the Part-10 file meta information group (0002). */
export interface FileMetaFields {
  sopClassUid: string;
  sopInstanceUid: string;
  transferSyntaxUid: string;
  /** Calling AE title of the association that sent the instance. */
  sourceAeTitle: string;
}

function element(group: number, elem: number, vr: string, value: Buffer): Buffer {
  const long = vr === 'OB';
  const header = Buffer.alloc(long ? 12 : 8);
  header.writeUInt16LE(group, 0);
  header.writeUInt16LE(elem, 2);
  header.write(vr, 4, 'latin1');
  if (long) header.writeUInt32LE(value.length, 8);
  else header.writeUInt16LE(value.length, 6);
  return Buffer.concat([header, value]);
}

/** A string value padded to even length: UIDs with NUL, other VRs with a space. */
function text(value: string, vr: 'UI' | 'SH' | 'AE'): Buffer {
  const pad = vr === 'UI' ? '\0' : ' ';
  return Buffer.from(value.length % 2 ? value + pad : value, 'latin1');
}

/**
 * The 128-byte preamble, "DICM" and the file meta group in explicit VR little endian with its
 * group length: the bytes a Part-10 file starts with, before the dataset as received.
 */
export function buildPart10Header(f: FileMetaFields): Buffer {
  const body = Buffer.concat([
    element(0x0002, 0x0001, 'OB', Buffer.from([0x00, 0x01])),
    element(0x0002, 0x0002, 'UI', text(f.sopClassUid, 'UI')),
    element(0x0002, 0x0003, 'UI', text(f.sopInstanceUid, 'UI')),
    element(0x0002, 0x0010, 'UI', text(f.transferSyntaxUid, 'UI')),
    element(0x0002, 0x0012, 'UI', text(IMPLEMENTATION_CLASS_UID, 'UI')),
    element(0x0002, 0x0013, 'SH', text(IMPLEMENTATION_VERSION_NAME, 'SH')),
    ...(f.sourceAeTitle.trim() ? [element(0x0002, 0x0016, 'AE', text(f.sourceAeTitle.trim(), 'AE'))] : []),
  ]);
  const groupLength = Buffer.alloc(4);
  groupLength.writeUInt32LE(body.length, 0);
  return Buffer.concat([Buffer.alloc(128), Buffer.from('DICM', 'latin1'), element(0x0002, 0x0000, 'UL', groupLength), body]);
}
