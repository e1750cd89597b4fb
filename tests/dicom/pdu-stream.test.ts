import { describe, expect, it } from 'vitest';
import { PduStream, type CStoreCommand } from '../../src/dicom/scp/pdu-stream.js';
import { encodeCStoreResponse } from '../../src/dicom/scp/store-response.js';

function pdu(type: number, body: Buffer): Buffer {
  const h = Buffer.alloc(6);
  h[0] = type;
  h.writeUInt32BE(body.length, 2);
  return Buffer.concat([h, body]);
}

function pdv(pc: number, ctrl: number, value: Buffer): Buffer {
  const h = Buffer.alloc(6);
  h.writeUInt32BE(value.length + 2, 0);
  h[4] = pc;
  h[5] = ctrl;
  return Buffer.concat([h, value]);
}

function commandSet(fields: Array<[number, Buffer]>): Buffer {
  return Buffer.concat(
    fields.map(([el, v]) => {
      const h = Buffer.alloc(8);
      h.writeUInt16LE(0, 0);
      h.writeUInt16LE(el, 2);
      h.writeUInt32LE(v.length, 4);
      return Buffer.concat([h, v]);
    }),
  );
}

const us = (n: number): Buffer => Buffer.from([n & 0xff, n >> 8]);
const ui = (s: string): Buffer => Buffer.from(s.length % 2 ? `${s}\0` : s, 'latin1');

function feedAll(stream: PduStream, bytes: Buffer, size: number): void {
  for (let i = 0; i < bytes.length; i += size) stream.feed(bytes.subarray(i, i + size));
}

describe('PduStream', () => {
  const rq = pdu(1, Buffer.from('association request body'));
  const storeCmd = commandSet([
    [0x0002, ui('1.2.840.10008.5.1.4.1.1.2')],
    [0x0100, us(0x0001)],
    [0x0110, us(7)],
    [0x0800, us(0x0000)],
    [0x1000, ui('1.2.3.4.5')],
  ]);
  const echoCmd = commandSet([
    [0x0002, ui('1.2.840.10008.1.1')],
    [0x0100, us(0x0030)],
    [0x0110, us(8)],
    [0x0800, us(0x0101)],
  ]);
  const data1 = Buffer.alloc(3000, 0xab);
  const data2 = Buffer.alloc(1234, 0xcd);
  const stream = Buffer.concat([
    rq,
    // The C-STORE command split over two PDVs in two PDUs.
    pdu(4, pdv(3, 0x01, storeCmd.subarray(0, 10))),
    pdu(4, pdv(3, 0x03, storeCmd.subarray(10))),
    // Dataset: two fragments in one PDU, then the last one alone.
    pdu(4, Buffer.concat([pdv(3, 0x00, data1), pdv(3, 0x00, data2.subarray(0, 1000))])),
    pdu(4, pdv(3, 0x02, data2.subarray(1000))),
    pdu(4, pdv(1, 0x03, echoCmd)),
    pdu(5, Buffer.alloc(4)),
  ]);

  for (const size of [1, 5, 6, 7, 100, 4096, stream.length]) {
    it(`routes the dataset to the store and everything else to the library (chunks of ${size})`, () => {
      const forwarded: Buffer[] = [];
      const stored: Buffer[] = [];
      const commands: CStoreCommand[] = [];
      let ends = 0;
      const violations: string[] = [];
      const s = new PduStream(16384, {
        forward: (b) => forwarded.push(Buffer.from(b)),
        openStore: (cmd) => {
          commands.push(cmd);
          return { write: (c) => stored.push(Buffer.from(c)), end: () => ends++ };
        },
        violation: (r) => violations.push(r),
      });
      feedAll(s, stream, size);
      expect(violations).toEqual([]);
      expect(commands).toEqual([
        { presentationContextId: 3, messageId: 7, sopClassUid: '1.2.840.10008.5.1.4.1.1.2', sopInstanceUid: '1.2.3.4.5' },
      ]);
      expect(Buffer.concat(stored).equals(Buffer.concat([data1, data2]))).toBe(true);
      expect(ends).toBe(1);
      // The library sees the association request, the C-ECHO command and the release request — no C-STORE.
      expect(Buffer.concat(forwarded).equals(Buffer.concat([rq, pdu(4, pdv(1, 0x03, echoCmd)), pdu(5, Buffer.alloc(4))]))).toBe(true);
    });
  }

  it('flags garbage, a first PDU that is not an association request, and oversized PDUs', () => {
    const run = (bytes: Buffer): string[] => {
      const v: string[] = [];
      const s = new PduStream(16384, {
        forward: () => undefined,
        openStore: () => ({ write: () => undefined, end: () => undefined }),
        violation: (r) => v.push(r),
      });
      s.feed(bytes);
      s.feed(bytes);
      return v;
    };
    expect(run(Buffer.from('GET / HTTP/1.1\r\n'))).toHaveLength(1);
    expect(run(pdu(4, pdv(1, 3, Buffer.alloc(4))))[0]).toMatch(/not A-ASSOCIATE-RQ/);
    const big = Buffer.alloc(6);
    big[0] = 4;
    big.writeUInt32BE(16385, 2);
    expect(run(Buffer.concat([rq, big]))[0]).toMatch(/exceeds max PDU/);
    expect(run(Buffer.concat([rq, pdu(4, Buffer.from([0, 0, 0, 99, 1, 0]))]))[0]).toMatch(/PDV item length/);
  });

  it('encodes a C-STORE response the way DCMTK reads it back', () => {
    const rsp = encodeCStoreResponse({
      presentationContextId: 3,
      messageIdBeingRespondedTo: 7,
      sopClassUid: '1.2.840.10008.5.1.4.1.1.2',
      sopInstanceUid: '1.2.3.4.5',
      status: 0xa700,
      errorComment: 'disk full',
    });
    expect(rsp[0]).toBe(4);
    expect(rsp.readUInt32BE(2)).toBe(rsp.length - 6);
    expect(rsp[10]).toBe(3);
    expect(rsp[11]).toBe(3);
    const cmd = rsp.subarray(12);
    expect(cmd.readUInt32LE(8)).toBe(cmd.length - 12); // group length
    expect(cmd.includes(Buffer.from([0x00, 0x00, 0x00, 0x09, 0x02, 0x00, 0x00, 0x00, 0x00, 0xa7]))).toBe(true); // (0000,0900) = A700
  });
});
