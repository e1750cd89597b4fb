/** P-DATA-TF framing (PS3.8 9.3.5): PDU header and PDV item header. */

export const PDU_TYPE_PDATA = 0x04;
/** PDV message control header bits. */
export const PDV_COMMAND = 0x01;
export const PDV_LAST = 0x02;
/** Bytes of the PDV item header (item length + context ID + control header) that count against the max PDU. */
export const PDV_ITEM_OVERHEAD = 6;

/**
 * The 12 bytes before a PDV value when a P-DATA-TF PDU carries exactly one PDV:
 * PDU type 04, reserved, PDU length; PDV item length, presentation context ID, control header.
 */
export function pdataHeader(presentationContextId: number, control: number, valueLength: number): Buffer {
  const head = Buffer.alloc(12);
  head[0] = PDU_TYPE_PDATA;
  head.writeUInt32BE(valueLength + PDV_ITEM_OVERHEAD, 2);
  head.writeUInt32BE(valueLength + 2, 6);
  head[10] = presentationContextId;
  head[11] = control;
  return head;
}

/** A whole P-DATA-TF PDU with one PDV. */
export function pdataPdu(presentationContextId: number, control: number, value: Buffer): Buffer {
  return Buffer.concat([pdataHeader(presentationContextId, control, value.length), value]);
}
