/**
 * Discovery's header reader (decode/direct-header.ts): readDicomHeaderFile reads a plain file only up to its Pixel
 * Data and must give the DicomHeader (or the DecodeError) dcmjs gives from the whole file, on every DICOM file of
 * the shared data and on edited copies of a real slice built to trip it.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { readHeaderDirect } from '../../src/dicom/decode/direct-header.js';
import { DecodeError, HEADER_CHUNK_BYTES, readDicomHeaderFile, readDicomHeaderFileFull } from '../../src/dicom/decode/index.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const data = path.resolve(repoRoot, '..', 'shared', 'data');
const slicePath = path.join(data, 'covid-ct-md', 'P001', '98C14734-ASSH_29.dcm');

const tmp = mkdtempSync(path.join(tmpdir(), 'mlsam-header-direct-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function outcome(f: () => Promise<unknown>): Promise<unknown> {
  try {
    return { header: await f() };
  } catch (err) {
    return err instanceof DecodeError ? { code: err.code, message: err.message } : { untyped: String(err) };
  }
}

/** Explicit VR LE element bytes (short-length VR unless `long`). */
function element(group: number, elem: number, vr: string, value: Buffer): Buffer {
  const long = ['OB', 'OW', 'SQ', 'UN', 'UT', 'UC', 'UR'].includes(vr);
  const head = Buffer.alloc(long ? 12 : 8);
  head.writeUInt16LE(group, 0);
  head.writeUInt16LE(elem, 2);
  head.write(vr, 4, 'latin1');
  if (long) head.writeUInt32LE(value.length, 8);
  else head.writeUInt16LE(value.length, 6);
  return Buffer.concat([head, value]);
}

/** Where the dataset of a Part 10 file starts (after the file meta group). */
function datasetStart(buf: Buffer): number {
  return 132 + 12 + buf.readUInt32LE(140);
}

/** The slice with `bytes` inserted at the start of its dataset. */
function withInserted(slice: Buffer, bytes: Buffer): Buffer {
  const at = datasetStart(slice);
  return Buffer.concat([slice.subarray(0, at), bytes, slice.subarray(at)]);
}

/** The slice with the value of the explicit VR element (group, elem, vr) overwritten (same length). */
function withValue(slice: Buffer, group: number, elem: number, vr: string, text: string): Buffer {
  const key = Buffer.alloc(6);
  key.writeUInt16LE(group, 0);
  key.writeUInt16LE(elem, 2);
  key.write(vr, 4, 'latin1');
  const at = slice.indexOf(key, datasetStart(slice));
  expect(at).toBeGreaterThan(0);
  const len = slice.readUInt16LE(at + 6);
  const out = Buffer.from(slice);
  out.fill(0x20, at + 8, at + 8 + len);
  out.write(text.slice(0, len), at + 8, 'latin1');
  return out;
}

describe('discovery reads headers directly, with the answers of the full dcmjs parse', () => {
  it('readDicomHeaderFile = dcmjs on the whole file for every DICOM file of the shared data, most of them read directly', async () => {
    const files = execFileSync('find', [data, '-name', '*.dcm', '-size', '-20M']).toString().trim().split('\n').sort();
    expect(files.length).toBeGreaterThan(100);
    let direct = 0;
    for (const file of files) {
      const full = await outcome(() => readDicomHeaderFileFull(file));
      expect(await outcome(() => readDicomHeaderFile(file)), file).toEqual(full);
      const bytes = readFileSync(file);
      const d = readHeaderDirect(bytes, true);
      if (d && d !== 'more') direct++;
      // a prefix of the file: 'more', or (past the header) the same header
      for (const n of [0, 100, 200, 1000, 4000]) {
        if (n >= bytes.length) continue;
        const r = readHeaderDirect(bytes.subarray(0, n), false);
        if (r !== 'more' && r !== null) expect(r, `${file} first ${n} bytes`).toEqual((full as { header: unknown }).header);
        if (d && d !== 'more') expect(r, `${file} first ${n} bytes`).not.toBeNull();
      }
    }
    // all CT slices and most samples read directly; the odd ones (big endian, deflate, deep nesting...) by dcmjs
    expect(direct).toBeGreaterThan(files.length * 0.9);
    expect(direct).toBeLessThan(files.length);
  });

  it('edited copies of a real slice: the same header or error as dcmjs, read directly only where that is safe', async () => {
    const slice = readFileSync(slicePath);
    expect(readHeaderDirect(slice, true)).not.toBeNull();
    const cases: { name: string; bytes: Buffer; direct: boolean }[] = [
      // a private blob longer than the first chunk before the rest of the header: read on in bigger chunks
      {
        name: 'long header',
        bytes: withInserted(
          slice,
          Buffer.concat([
            element(0x0009, 0x0010, 'LO', Buffer.from('MLSAMTEST ')),
            element(0x0009, 0x1010, 'OB', Buffer.alloc(3 * HEADER_CHUNK_BYTES, 7)),
          ]),
        ),
        direct: true,
      },
      // a sequence holding a Pixel Data element (an icon image): dcmjs's untilTag stops inside it, left to dcmjs
      {
        name: 'icon image sequence',
        bytes: withInserted(
          slice,
          element(
            0x0088,
            0x0200,
            'SQ',
            Buffer.concat([Buffer.from([0xfe, 0xff, 0x00, 0xe0, 16, 0, 0, 0]), element(0x7fe0, 0x0010, 'OW', Buffer.alloc(4))]),
          ),
        ),
        direct: false,
      },
      // multi-valued and padded values: dcmjs's splitting and trimming
      { name: 'two modalities', bytes: withValue(slice, 0x0008, 0x0060, 'CS', ' C\\T'), direct: true },
      { name: 'odd SOP instance UID', bytes: withValue(slice, 0x0008, 0x0018, 'UI', 'x1.2 3\\4.5'), direct: true },
      { name: 'padded instance number', bytes: withValue(slice, 0x0020, 0x0013, 'IS', ' +29'), direct: true },
      { name: 'acquisition time with spaces', bytes: withValue(slice, 0x0008, 0x0032, 'TM', ' 12 \\3'), direct: true },
      // cut short inside the header: dcmjs's error
      { name: 'truncated header', bytes: slice.subarray(0, datasetStart(slice) + 300), direct: false },
    ];
    // Rows written as DS (the VR dcmjs would then read it with)
    const rowsKey = Buffer.from([0x28, 0x00, 0x10, 0x00, 0x55, 0x53]);
    const rowsDs = Buffer.from(slice);
    rowsDs.write('DS', rowsDs.indexOf(rowsKey, datasetStart(slice)) + 4, 'latin1');
    cases.push({ name: 'rows as DS', bytes: rowsDs, direct: false });
    for (const c of cases) {
      const file = path.join(tmp, `${c.name.replace(/ /g, '-')}.dcm`);
      writeFileSync(file, c.bytes);
      const full = await outcome(() => readDicomHeaderFileFull(file));
      expect(await outcome(() => readDicomHeaderFile(file)), c.name).toEqual(full);
      const d = readHeaderDirect(c.bytes, true);
      expect(d !== null, c.name).toBe(c.direct);
    }
  });
});
