/**
 * Encodes a C-STORE-RSP as one P-DATA-TF PDU (command set in implicit VR little endian, one PDV,
 * command + last fragment), for associations whose C-STOREs bypass the DIMSE library.
 */
function el(element: number, value: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt16LE(0x0000, 0);
  h.writeUInt16LE(element, 2);
  h.writeUInt32LE(value.length, 4);
  return Buffer.concat([h, value]);
}

const us = (v: number): Buffer => {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(v, 0);
  return b;
};

/** UI padded with NUL, other strings with a space, to even length. */
const str = (v: string, pad: '\0' | ' '): Buffer => Buffer.from(v.length % 2 ? v + pad : v, 'latin1');

export function encodeCStoreResponse(r: {
  presentationContextId: number;
  messageIdBeingRespondedTo: number;
  sopClassUid: string;
  sopInstanceUid: string;
  status: number;
  errorComment?: string;
}): Buffer {
  const body = Buffer.concat([
    el(0x0002, str(r.sopClassUid, '\0')),
    el(0x0100, us(0x8001)),
    el(0x0120, us(r.messageIdBeingRespondedTo)),
    el(0x0800, us(0x0101)),
    el(0x0900, us(r.status)),
    ...(r.errorComment && r.status !== 0 ? [el(0x0902, str(r.errorComment.slice(0, 64), ' '))] : []),
    el(0x1000, str(r.sopInstanceUid, '\0')),
  ]);
  const gl = Buffer.alloc(4);
  gl.writeUInt32LE(body.length, 0);
  const command = Buffer.concat([el(0x0000, gl), body]);
  const head = Buffer.alloc(12);
  head[0] = 0x04;
  head.writeUInt32BE(command.length + 6, 2);
  head.writeUInt32BE(command.length + 2, 6);
  head[10] = r.presentationContextId;
  head[11] = 0x03;
  return Buffer.concat([head, command]);
}
