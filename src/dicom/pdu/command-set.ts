/**
 * DIMSE command sets (group 0000, always implicit VR little endian): encoding and the small
 * parser both sides use. Shared by the SCP (scp/pdu-stream.ts, scp/store-response.ts) and the
 * C-STORE SCU (scu/store-scu.ts).
 */
import { SopClass } from '../uids.js';

/** One command element: (0000,element) with its value bytes (already padded to even length). */
export type CommandElement = readonly [element: number, value: Buffer];

/** US value. */
export const us = (v: number): Buffer => {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(v, 0);
  return b;
};

/** UI padded with NUL, other strings with a space, to even length. */
export const str = (v: string, pad: '\0' | ' '): Buffer => Buffer.from(v.length % 2 ? v + pad : v, 'latin1');

/** The command set bytes: (0000,0000) group length, then the elements in the order given (ascending). */
export function encodeCommandSet(elements: readonly CommandElement[]): Buffer {
  const parts: Buffer[] = [];
  let bodyLength = 0;
  for (const [element, value] of elements) {
    const h = Buffer.alloc(8);
    h.writeUInt16LE(0x0000, 0);
    h.writeUInt16LE(element, 2);
    h.writeUInt32LE(value.length, 4);
    parts.push(h, value);
    bodyLength += 8 + value.length;
  }
  const gl = Buffer.alloc(12);
  gl.writeUInt16LE(0x0000, 0);
  gl.writeUInt16LE(0x0000, 2);
  gl.writeUInt32LE(4, 4);
  gl.writeUInt32LE(bodyLength, 8);
  return Buffer.concat([gl, ...parts]);
}

/** CommandDataSetType value meaning "no dataset follows". */
export const NO_DATASET = 0x0101;

/** C-STORE-RQ command set (priority medium, a dataset follows). */
export function cStoreRequest(messageId: number, sopClassUid: string, sopInstanceUid: string): Buffer {
  return encodeCommandSet([
    [0x0002, str(sopClassUid, '\0')],
    [0x0100, us(0x0001)],
    [0x0110, us(messageId)],
    [0x0700, us(0x0000)],
    [0x0800, us(0x0000)],
    [0x1000, str(sopInstanceUid, '\0')],
  ]);
}

/** C-ECHO-RQ command set (Verification SOP class, no dataset). */
export function cEchoRequest(messageId: number): Buffer {
  return encodeCommandSet([
    [0x0002, str(SopClass.Verification, '\0')],
    [0x0100, us(0x0030)],
    [0x0110, us(messageId)],
    [0x0800, us(NO_DATASET)],
  ]);
}

export interface ParsedCommand {
  commandField: number;
  messageId: number;
  messageIdBeingRespondedTo: number;
  dataSetType: number;
  status: number;
  errorComment: string;
  affectedSopClassUid: string;
  affectedSopInstanceUid: string;
}

/** Reads the few elements we need from a command set; undefined when it is not one. */
export function parseCommand(buf: Buffer): ParsedCommand | undefined {
  const out: ParsedCommand = {
    commandField: -1,
    messageId: -1,
    messageIdBeingRespondedTo: -1,
    dataSetType: -1,
    status: -1,
    errorComment: '',
    affectedSopClassUid: '',
    affectedSopInstanceUid: '',
  };
  let pos = 0;
  while (pos + 8 <= buf.length) {
    const group = buf.readUInt16LE(pos);
    const element = buf.readUInt16LE(pos + 2);
    const length = buf.readUInt32LE(pos + 4);
    pos += 8;
    if (group !== 0x0000 || pos + length > buf.length) return undefined;
    const text = (): string => buf.toString('latin1', pos, pos + length).replace(/[\0 ]+$/, '');
    const u16 = (): number => (length >= 2 ? buf.readUInt16LE(pos) : -1);
    switch (element) {
      case 0x0002:
        out.affectedSopClassUid = text();
        break;
      case 0x0100:
        out.commandField = u16();
        break;
      case 0x0110:
        out.messageId = u16();
        break;
      case 0x0120:
        out.messageIdBeingRespondedTo = u16();
        break;
      case 0x0800:
        out.dataSetType = u16();
        break;
      case 0x0900:
        out.status = u16();
        break;
      case 0x0902:
        out.errorComment = text();
        break;
      case 0x1000:
        out.affectedSopInstanceUid = text();
        break;
      default:
        break;
    }
    pos += length;
  }
  return out;
}
