/**
 * Encodes a C-STORE-RSP as one P-DATA-TF PDU (command set in implicit VR little endian, one PDV,
 * command + last fragment), for associations whose C-STOREs bypass the DIMSE library.
 */
import { encodeCommandSet, NO_DATASET, str, us } from '../pdu/command-set.js';
import { PDV_COMMAND, PDV_LAST, pdataPdu } from '../pdu/pdata.js';

export function encodeCStoreResponse(r: {
  presentationContextId: number;
  messageIdBeingRespondedTo: number;
  sopClassUid: string;
  sopInstanceUid: string;
  status: number;
  errorComment?: string;
}): Buffer {
  const command = encodeCommandSet([
    [0x0002, str(r.sopClassUid, '\0')],
    [0x0100, us(0x8001)],
    [0x0120, us(r.messageIdBeingRespondedTo)],
    [0x0800, us(NO_DATASET)],
    [0x0900, us(r.status)],
    ...(r.errorComment && r.status !== 0 ? [[0x0902, str(r.errorComment.slice(0, 64), ' ')] as const] : []),
    [0x1000, str(r.sopInstanceUid, '\0')],
  ]);
  return pdataPdu(r.presentationContextId, PDV_COMMAND | PDV_LAST, command);
}
