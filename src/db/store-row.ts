/** The row stored for a record: the record's figures plus the acquisition attributes of its first scored slice. */
import type { ResultRecord } from '../contracts/result-record.js';
import { readAcquisitionAttributes, type AcquisitionAttributes } from '../dicom/decode/acquisition.js';
import { resultRow } from './result-row.js';
import type { NewResultRow } from './tables.js';

export async function storedRow(record: ResultRecord): Promise<NewResultRow> {
  let attrs: AcquisitionAttributes | null = null;
  const file = record.slices[0]?.file;
  if (file) attrs = await readAcquisitionAttributes(file).catch(() => null);
  return resultRow(record, attrs);
}
