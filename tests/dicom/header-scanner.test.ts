import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { HeaderScanner } from '../../src/dicom/spool/header-scanner.js';
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
      const expected = study === undefined
        ? { sopInstanceUid: sop }
        : {
          studyInstanceUid: study,
          seriesInstanceUid: await dcmdumpValue(path, '0020,000e'),
          sopInstanceUid: await dcmdumpValue(path, '0008,0018'),
          modality: (await dcmdumpValue(path, '0008,0060'))!.toUpperCase(),
          bodyPartExamined: (await dcmdumpValue(path, '0018,0015'))!.toUpperCase(),
          imageType: (await dcmdumpValue(path, '0008,0008'))!.split('\\').filter((x) => x !== '').map((x) => x.trim().toUpperCase()),
        };
      const whole = scan(ts, data, () => data.length);
      expect(whole.studyInstanceUid).toMatch(/^[0-9.]+$/);
      expect(whole.seriesInstanceUid).toMatch(/^[0-9.]+$/);
      let seed = 7;
      const rnd = (): number => (seed = (seed * 1103515245 + 12345) % 2147483648) % 97;
      for (const chunker of [() => data.length, () => 1, () => 7, rnd, () => 16384]) {
        const got = scan(ts, data, chunker);
        expect(got.error).toBeUndefined();
        expect(got).toMatchObject(expected);
        expect(got).toEqual(whole);
      }
    }
  });
});
