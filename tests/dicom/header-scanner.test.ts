import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { HeaderScanner } from '../../src/dicom/spool/header-scanner.js';
import { el, element, ITEM, ITEM_END, SEQ_END, tagOnly } from '../helpers/dataset-bytes.js';
import { run } from '../helpers/dcmtk.js';
import { SHARED_DATA } from '../helpers/dicom-listener.js';

const FILES = [
  join(SHARED_DATA, 'dicom-samples', 'pydicom-data', 'eCT_Supplemental.dcm'),
  join(SHARED_DATA, 'dicom-samples', 'pydicom-data', '693_UNCI.dcm'),
  join(SHARED_DATA, 'dicom-samples', 'pydicom-data', '693_J2KR.dcm'),
  join(SHARED_DATA, 'dicom-samples', 'orthanc-tests', 'odd', '2026-05-06-Deeply-Nested-Sequence.dcm'),
  join(SHARED_DATA, 'dicom-samples', 'orthanc-tests', 'odd', '2024-05-30-GuillemVela.dcm'),
  join(SHARED_DATA, 'dicom-samples', 'orthanc-tests', 'odd', '2020-09-12-ELSCINT1-PMSCT_RLE1.dcm'),
  join(SHARED_DATA, 'covid-ct-md', 'P001', '98C14734-ASSH_1.dcm'),
];

/** Dataset bytes after the file meta group, and the transfer syntax named there. */
async function datasetOf(path: string): Promise<{ ts: string; sop: string; data: Buffer }> {
  const b = await readFile(path);
  const metaLen = b.readUInt32LE(140);
  const end = 132 + 12 + metaLen;
  let pos = 144;
  let ts = '';
  let sop = '';
  while (pos < end) {
    const elem = b.readUInt16LE(pos + 2);
    const vr = b.toString('latin1', pos + 4, pos + 6);
    const long = ['OB', 'OW', 'UN', 'SQ', 'UT'].includes(vr);
    const len = long ? b.readUInt32LE(pos + 8) : b.readUInt16LE(pos + 6);
    const start = pos + (long ? 12 : 8);
    const value = b.toString('latin1', start, start + len).replace(/[\0 ]+$/, '');
    if (elem === 0x0010) ts = value;
    if (elem === 0x0003) sop = value;
    pos = start + len;
  }
  return { ts, sop, data: b.subarray(end) };
}

async function dcmdumpValue(path: string, tag: string): Promise<string | undefined> {
  const r = await run('dcmdump', ['-M', '+P', tag, '-q', path]);
  if (r.code !== 0) return undefined; // DCMTK cannot read it (e.g. sequences nested thousands deep)
  const m = r.stdout.split('\n')[0]?.match(/\[(.*?)\]/);
  return m?.[1]?.trim() ?? '';
}

const EXPLICIT = '1.2.840.10008.1.2.1';

function scan(ts: string, data: Buffer, chunk: (i: number) => number): ReturnType<HeaderScanner['result']> & { error?: string } {
  const s = new HeaderScanner(ts);
  let pos = 0;
  let i = 0;
  while (pos < data.length) {
    const n = Math.max(1, chunk(i++));
    s.push(data.subarray(pos, pos + n));
    pos += n;
  }
  return { ...s.result(), ...(s.error ? { error: s.error } : {}) };
}

describe('HeaderScanner against dcmdump', () => {
  const tmp: string[] = [];
  afterAll(async () => {
    for (const t of tmp) await rm(t, { recursive: true, force: true });
  });

  it.each(FILES)('%s', async (file) => {
    const paths = [file];
    // The same file as implicit VR little endian too (where DCMTK can re-encode it).
    const dir = await mkdtemp(join(tmpdir(), 'mlsam-scan-'));
    tmp.push(dir);
    const implicit = join(dir, 'implicit.dcm');
    if ((await run('dcmconv', ['+ti', file, implicit])).code === 0) paths.push(implicit);
    for (const path of paths) {
      const { ts, sop, data } = await datasetOf(path);
      expect(ts).toMatch(/^1\.2\.840\.10008\.1\.2/);
      const study = await dcmdumpValue(path, '0020,000d');
      const expected =
        study === undefined
          ? { sopInstanceUid: sop }
          : {
              studyInstanceUid: study,
              seriesInstanceUid: await dcmdumpValue(path, '0020,000e'),
              sopInstanceUid: await dcmdumpValue(path, '0008,0018'),
              modality: (await dcmdumpValue(path, '0008,0060'))!.toUpperCase(),
              bodyPartExamined: (await dcmdumpValue(path, '0018,0015'))!.toUpperCase(),
              imageType: (await dcmdumpValue(path, '0008,0008'))!
                .split('\\')
                .filter((x) => x !== '')
                .map((x) => x.trim().toUpperCase()),
            };
      const whole = scan(ts, data, () => data.length);
      expect(whole.studyInstanceUid).toMatch(/^[0-9.]+$/);
      expect(whole.seriesInstanceUid).toMatch(/^[0-9.]+$/);
      let seed = 7;
      const rnd = (): number => {
        seed = (seed * 1103515245 + 12345) % 2147483648;
        return seed % 97;
      };
      for (const chunker of [() => data.length, () => 1, () => 7, rnd, () => 16384]) {
        const got = scan(ts, data, chunker);
        expect(got.error).toBeUndefined();
        expect(got).toMatchObject(expected);
        expect(got).toEqual(whole);
      }
    }
  });
});

/** Every sample file DCMTK reads, plus the real JPEG Lossless CT slices. */
const READABLE = [
  ...FILES.filter((f) => !f.includes('Deeply-Nested')),
  join(SHARED_DATA, 'dicom-samples', 'pydicom-data', '693_UNCR.dcm'),
  join(SHARED_DATA, 'dicom-samples', 'orthanc-tests', 'odd', 'Issue22-NoPixelData.dcm'),
  join(SHARED_DATA, 'dicom-samples', 'orthanc-tests', 'odd', 'Issue140.dcm'),
  join(SHARED_DATA, 'dicom-samples', 'orthanc-tests', 'odd', 'Issue143.dcm'),
  join(SHARED_DATA, 'dicom-samples', 'orthanc-tests', 'odd', 'SignedCT.dcm'),
  join(SHARED_DATA, 'dicom-samples', 'orthanc-tests', 'odd', 'sample-pdf.dcm'),
  join(SHARED_DATA, 'dicom-samples', 'orthanc-tests', 'TransferSyntaxes', '1.2.840.10008.1.2.4.70.dcm'),
  join(SHARED_DATA, 'dicom-samples', 'orthanc-tests', 'TransferSyntaxes', '1.2.840.10008.1.2.4.90.dcm'),
  join(SHARED_DATA, 'dicom-samples', 'orthanc-tests', 'TransferSyntaxes', '1.2.840.10008.1.2.5.dcm'),
  join(SHARED_DATA, 'covid-ct-md', 'P001', '98C14734-ASSH_10.dcm'),
];

function validate(ts: string, data: Buffer, chunk: number): string | undefined {
  const s = new HeaderScanner(ts, { validate: true });
  for (let pos = 0; pos < data.length; pos += chunk) s.push(data.subarray(pos, pos + chunk));
  return s.incomplete();
}

describe('HeaderScanner validate mode (the listener refuses what DCMTK cannot read)', () => {
  const tmp: string[] = [];
  afterAll(async () => {
    for (const t of tmp) await rm(t, { recursive: true, force: true });
  });

  it.each(READABLE)('accepts %s whole and in any chunking, with the same header', async (file) => {
    expect((await run('dcmdump', ['-q', file])).code).toBe(0);
    const { ts, data } = await datasetOf(file);
    const header = scan(ts, data, () => data.length);
    for (const chunk of [data.length, 1, 7, 4093]) {
      expect(validate(ts, data, chunk), `chunks of ${chunk}`).toBeUndefined();
      const s = new HeaderScanner(ts, { validate: true });
      for (let pos = 0; pos < data.length; pos += chunk) s.push(data.subarray(pos, pos + chunk));
      expect(s.result()).toEqual(header);
      expect(s.bytes).toBe(data.length);
    }
  });

  it('refuses a dataset cut anywhere inside Pixel Data, as dcmdump does', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mlsam-cut-'));
    tmp.push(dir);
    let seed = 11;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    for (const file of [READABLE.at(-1)!, FILES[1]!, READABLE.find((f) => f.endsWith('1.2.840.10008.1.2.5.dcm'))!]) {
      const bytes = await readFile(file);
      const { ts, data } = await datasetOf(file);
      const pixelStart = data.indexOf(Buffer.from([0xe0, 0x7f, 0x10, 0x00]));
      expect(pixelStart).toBeGreaterThan(0);
      for (let i = 0; i < 6; i++) {
        const cut = pixelStart + 1 + rnd(data.length - pixelStart - 1);
        const problem = validate(ts, data.subarray(0, cut), 4096);
        expect(problem, `${file} cut at ${cut} of ${data.length}`).toMatch(/dataset ends inside|not closed/);
        const truncated = join(dir, `cut-${i}.dcm`);
        await writeFile(truncated, bytes.subarray(0, bytes.length - data.length + cut));
        expect((await run('dcmdump', ['-q', truncated])).code, `dcmdump reads ${file} cut at ${cut}`).not.toBe(0);
      }
    }
  });

  it('refuses impossible lengths, overruns, stray delimiters, deep nesting and too many items', () => {
    const header = Buffer.concat([el(0x0020, 0x000d, 'UI', Buffer.from('1.2.3\0')), el(0x0020, 0x000e, 'UI', Buffer.from('1.2.4\0'))]);
    const ok = (b: Buffer): void => expect(validate(EXPLICIT, Buffer.concat([header, b]), 5)).toBeUndefined();
    const bad = (b: Buffer, re: RegExp): void => expect(validate(EXPLICIT, Buffer.concat([header, b]), 5)).toMatch(re);
    // The audit's example: OW Pixel Data of length 0x7fffffff in a 1.2 KB dataset.
    bad(el(0x7fe0, 0x0010, 'OW', Buffer.alloc(1100), 0x7fffffff), /ends inside element \(7FE0,0010\): 2147482547 of its bytes missing/);
    ok(el(0x7fe0, 0x0010, 'OW', Buffer.alloc(1100)));
    // A defined-length sequence whose item overruns it, and an element overrunning its item.
    const item = Buffer.concat([tagOnly(ITEM, 10), el(0x0008, 0x0100, 'SH', Buffer.from('AB'))]);
    ok(el(0x0008, 0x1140, 'SQ', item));
    bad(el(0x0008, 0x1140, 'SQ', item, item.length - 2), /overruns/);
    bad(el(0x0008, 0x1140, 'SQ', Buffer.concat([tagOnly(ITEM, 8), el(0x0008, 0x0100, 'SH', Buffer.from('AB'))])), /overruns/);
    // Undefined lengths must be closed by their delimiters.
    const undefSeq = (content: Buffer): Buffer => Buffer.concat([el(0x0008, 0x1140, 'SQ', Buffer.alloc(0), 0xffffffff), content]);
    ok(undefSeq(Buffer.concat([tagOnly(ITEM, 0xffffffff), tagOnly(ITEM_END, 0), tagOnly(SEQ_END, 0)])));
    bad(undefSeq(Buffer.concat([tagOnly(ITEM, 0xffffffff), tagOnly(ITEM_END, 0)])), /ends inside a sequence/);
    bad(undefSeq(tagOnly(ITEM_END, 0)), /item delimiter outside/);
    bad(tagOnly(SEQ_END, 0), /sequence delimiter outside/);
    // Encapsulated Pixel Data: fragments then the sequence delimiter.
    const frags = (parts: Buffer[]): Buffer => Buffer.concat([el(0x7fe0, 0x0010, 'OB', Buffer.alloc(0), 0xffffffff), ...parts]);
    ok(frags([tagOnly(ITEM, 0), tagOnly(ITEM, 4), Buffer.alloc(4), tagOnly(SEQ_END, 0)]));
    bad(frags([tagOnly(ITEM, 0), tagOnly(ITEM, 4), Buffer.alloc(4)]), /encapsulated Pixel Data \(not closed\)/);
    bad(frags([tagOnly(ITEM, 0), tagOnly(ITEM, 400), Buffer.alloc(4), tagOnly(SEQ_END, 0)]), /fragment or item: 388 of its bytes missing/);
    bad(frags([el(0x0008, 0x0100, 'SH', Buffer.from('AB'))]), /directly inside encapsulated Pixel Data/);
    // Only Pixel Data may be encapsulated (the long fuzz run found bit flips in its tag that DCMTK refuses).
    bad(
      Buffer.concat([el(0x7fe0, 0x0018, 'OB', Buffer.alloc(0), 0xffffffff), tagOnly(ITEM, 0), tagOnly(SEQ_END, 0)]),
      /undefined length on OB element \(7FE0,0018\) that is not Pixel Data/,
    );
    // Nesting: 32 levels pass, 33 do not; a million unclosed levels stop at the limit (no memory).
    const nest = (levels: number, close: boolean): Buffer => {
      const open = Buffer.concat([el(0x0008, 0x1140, 'SQ', Buffer.alloc(0), 0xffffffff), tagOnly(ITEM, 0xffffffff)]);
      const shut = Buffer.concat([tagOnly(ITEM_END, 0), tagOnly(SEQ_END, 0)]);
      return Buffer.concat([...Array<Buffer>(levels).fill(open), ...(close ? Array<Buffer>(levels).fill(shut) : [])]);
    };
    ok(nest(32, true));
    bad(nest(33, true), /nested deeper than 32 levels/);
    const s = new HeaderScanner(EXPLICIT, { validate: true });
    const heapBefore = process.memoryUsage().heapUsed;
    const level = nest(1, false);
    s.push(header);
    for (let i = 0; i < 1_000_000; i++) s.push(level);
    expect(s.incomplete()).toMatch(/nested deeper than 32 levels/);
    expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(20 * 1048576);
    // Implicit VR: the dictionary tells a sequence from a value (as DCMTK reads it).
    const IMPLICIT = '1.2.840.10008.1.2';
    const iel = (tag: number, value: Buffer, length = value.length): Buffer => element(false, tag, '', value, length);
    const implicit = (b: Buffer): string | undefined => validate(IMPLICIT, Buffer.concat([iel(0x0020000d, Buffer.from('1.2.3\0')), b]), 3);
    const emptyItems = Buffer.concat([tagOnly(ITEM, 0xffffffff), tagOnly(ITEM_END, 0), tagOnly(SEQ_END, 0)]);
    expect(implicit(Buffer.concat([iel(0x00081140, Buffer.alloc(0), 0xffffffff), emptyItems]))).toBeUndefined();
    expect(implicit(Buffer.concat([iel(0x00091010, Buffer.alloc(0), 0xffffffff), emptyItems]))).toBeUndefined();
    expect(implicit(Buffer.concat([iel(0x00280030, Buffer.alloc(0), 0xffffffff), emptyItems]))).toMatch(
      /undefined length on DS element \(0028,0030\)/,
    );
    // A defined-length implicit SQ is walked too: its item must hold its element exactly (8 + 4 bytes).
    const implicitItem = (length: number): Buffer => Buffer.concat([tagOnly(ITEM, length), iel(0x00081150, Buffer.from('1.2\0'))]);
    expect(implicit(iel(0x00081140, implicitItem(12)))).toBeUndefined();
    expect(implicit(iel(0x00081140, implicitItem(10)))).toMatch(/overruns/);
    // Items: bounded per dataset.
    const many = Buffer.concat([
      el(0x0008, 0x1140, 'SQ', Buffer.alloc(0), 0xffffffff),
      ...Array<Buffer>(11).fill(tagOnly(ITEM, 0)),
      tagOnly(SEQ_END, 0),
    ]);
    const limited = (limit: number): string | undefined => {
      const v = new HeaderScanner(EXPLICIT, { validate: true, limits: { maxSequenceDepth: 32, maxItems: limit } });
      v.push(Buffer.concat([header, many]));
      return v.incomplete();
    };
    expect(limited(11)).toBeUndefined();
    expect(limited(10)).toMatch(/more than 10 items/);
  });
});
