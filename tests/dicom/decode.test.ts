/**
 * DICOM pixel decoding (src/dicom/decode) against real references: DCMTK's own decoders
 * (dcmdjpeg, dcmdjpls, dcmdrle, dcmconv) and encoders (dcmcjpeg, dcmcjpls, dcmcrle), pydicom+GDCM
 * for JPEG 2000, and the pairs the sample data sets ship (693_J2KR = 693_UNCR, NM1 in JPEG-LS =
 * JPEG 2000 = RLE). Malformed files must give a DecodeError with a reason, fast.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import {
  DecodeError,
  decodeDicom,
  decodeDicomFile,
  decodeDicomImage,
  decodeDicomImageFile,
  readDicomHeaderFile,
} from '../../src/dicom/decode/index.js';
import { readDirect } from '../../src/dicom/decode/direct.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const data = path.resolve(repoRoot, '..', 'shared', 'data');
const samples = path.join(data, 'dicom-samples');
const ts = (uid: string) => path.join(samples, 'orthanc-tests', 'TransferSyntaxes', `${uid}.dcm`);
const odd = (name: string) => path.join(samples, 'orthanc-tests', 'odd', name);
const pyd = (name: string) => path.join(samples, 'pydicom-data', name);
const covid = path.join(data, 'covid-ct-md');

const tmp = mkdtempSync(path.join(tmpdir(), 'mlsam-decode-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const env = { ...process.env, TCP_NODELAY: '1' };

/** Run a DCMTK tool `tool [...args] in out` and return out. */
function dcmtk(tool: string, args: string[], input: string, name: string): string {
  const out = path.join(tmp, name);
  execFileSync(tool, [...args, input, out], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  return out;
}

async function expectSamePixels(a: string, b: string): Promise<void> {
  const x = (await decodeDicomFile(a)).image;
  const y = (await decodeDicomFile(b)).image;
  expect([x.width, x.height, x.kind]).toEqual([y.width, y.height, y.kind]);
  let mismatches = 0;
  let first = -1;
  for (let i = 0; i < x.data.length; i++) {
    if (x.data[i] !== y.data[i]) {
      mismatches++;
      if (first < 0) first = i;
    }
  }
  expect({ mismatches, first, a: path.basename(a), b: path.basename(b) }).toEqual({
    mismatches: 0,
    first: -1,
    a: path.basename(a),
    b: path.basename(b),
  });
}

describe('transfer syntaxes decode to the same pixels as the references', () => {
  it('JPEG Lossless SV1 covid-ct-md slices equal DCMTK dcmdjpeg output, in HU', async () => {
    for (const f of ['P001/98C14734-ASSH_29.dcm', `normal001/${firstFile('normal001')}`]) {
      const src = path.join(covid, f);
      const ref = dcmtk('dcmdjpeg', [], src, `covid-${path.basename(f)}`);
      await expectSamePixels(src, ref);
      const { image, pixel } = await decodeDicomFile(src);
      expect(image.kind).toBe('hu');
      expect([image.width, image.height]).toEqual([512, 512]);
      expect([pixel.rescaleSlope, pixel.rescaleIntercept]).toEqual([1, -1024]);
      let min = Infinity;
      let max = -Infinity;
      for (const v of image.data) {
        if (v < min) min = v;
        if (v > max) max = v;
      }
      expect(min).toBeGreaterThanOrEqual(-1024);
      expect(max).toBeLessThanOrEqual(2019);
    }
  });

  it('JPEG lossless (process 14 and SV1), extended 12-bit, JPEG-LS near-lossless, RLE equal DCMTK decoders', async () => {
    await expectSamePixels(ts('1.2.840.10008.1.2.4.70'), dcmtk('dcmdjpeg', [], ts('1.2.840.10008.1.2.4.70'), 'j70.dcm'));
    await expectSamePixels(ts('1.2.840.10008.1.2.4.57'), dcmtk('dcmdjpeg', [], ts('1.2.840.10008.1.2.4.57'), 'j57.dcm'));
    await expectSamePixels(ts('1.2.840.10008.1.2.4.51'), dcmtk('dcmdjpeg', [], ts('1.2.840.10008.1.2.4.51'), 'j51.dcm'));
    await expectSamePixels(ts('1.2.840.10008.1.2.4.80'), dcmtk('dcmdjpls', [], ts('1.2.840.10008.1.2.4.80'), 'j80.dcm'));
    await expectSamePixels(ts('1.2.840.10008.1.2.4.81'), dcmtk('dcmdjpls', [], ts('1.2.840.10008.1.2.4.81'), 'j81.dcm'));
    await expectSamePixels(ts('1.2.840.10008.1.2.5'), dcmtk('dcmdrle', [], ts('1.2.840.10008.1.2.5'), 'rle.dcm'));
  });

  it('JPEG baseline (lossy, 8-bit colour, process 1) equals dcmdjpeg: libjpeg-turbo and DCMTK agree bit for bit', async () => {
    await expectSamePixels(ts('1.2.840.10008.1.2.4.50'), dcmtk('dcmdjpeg', [], ts('1.2.840.10008.1.2.4.50'), 'j50.dcm'));
  });

  it('the same NM image in JPEG-LS lossless, JPEG 2000 lossless and RLE decodes identically', async () => {
    await expectSamePixels(ts('1.2.840.10008.1.2.4.80'), ts('1.2.840.10008.1.2.4.90'));
    await expectSamePixels(ts('1.2.840.10008.1.2.4.80'), ts('1.2.840.10008.1.2.5'));
  });

  it('693_J2KR (JPEG 2000 lossless, BitsStored 16) and 693_DEFL (deflated) equal 693_UNCR (BitsStored 14)', async () => {
    await expectSamePixels(pyd('693_J2KR.dcm'), pyd('693_UNCR.dcm'));
    await expectSamePixels(pyd('693_DEFL.dcm'), pyd('693_UNCR.dcm'));
  });

  it('JPEG 2000 lossy equals pydicom + GDCM after the modality LUT', async () => {
    const out = path.join(tmp, 'j91.f32');
    const script = [
      'import sys, pydicom',
      'from pydicom.pixel_data_handlers.util import apply_modality_lut',
      'd = pydicom.dcmread(sys.argv[1])',
      "apply_modality_lut(d.pixel_array, d).astype('float32').tofile(sys.argv[2])",
    ].join('\n');
    execFileSync('/usr/bin/python3', ['-c', script, ts('1.2.840.10008.1.2.4.91'), out]);
    const buf = readFileSync(out);
    const ref = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
    const { image } = await decodeDicomFile(ts('1.2.840.10008.1.2.4.91'));
    expect(image.data.length).toBe(ref.length);
    let maxDiff = 0;
    for (let i = 0; i < ref.length; i++) maxDiff = Math.max(maxDiff, Math.abs((image.data[i] as number) - (ref[i] as number)));
    expect(maxDiff).toBe(0);
  });

  it('signed CT survives DCMTK JPEG lossless (SV1, process 14), JPEG-LS and RLE encoding', async () => {
    const src = odd('SignedCT.dcm');
    await expectSamePixels(dcmtk('dcmcjpeg', ['+e1'], src, 's-sv1.dcm'), src);
    await expectSamePixels(dcmtk('dcmcjpeg', ['+el'], src, 's-p14.dcm'), src);
    await expectSamePixels(dcmtk('dcmcjpls', [], src, 's-jls.dcm'), src);
    await expectSamePixels(dcmtk('dcmcrle', [], src, 's-rle.dcm'), src);
    const { image } = await decodeDicomFile(src);
    let min = Infinity;
    for (const v of image.data) min = Math.min(min, v);
    expect(min).toBe(-2000 - 1024); // PixelPaddingValue -2000, HU = value - 1024
  });

  it('big endian, and a bare implicit-VR dataset with no preamble or meta', async () => {
    await expectSamePixels(dcmtk('dcmconv', ['+tb'], pyd('693_UNCR.dcm'), 'be.dcm'), pyd('693_UNCR.dcm'));
    const bare = ts('1.2.840.10008.1.2');
    await expectSamePixels(bare, dcmtk('dcmconv', ['+te'], bare, 'bare-explicit.dcm'));
  });

  it('colour images come out as 0..255 luma of kind display', async () => {
    for (const f of [ts('1.2.840.10008.1.2.1'), ts('1.2.840.10008.1.2.2'), ts('1.2.840.10008.1.2.4.50'), odd('Issue143.dcm')]) {
      const { image } = await decodeDicomFile(f);
      expect(image.kind).toBe('display');
      expect(image.data.every((v) => v >= 0 && v <= 255)).toBe(true);
    }
  });

  it('reads the header fields slice selection needs', async () => {
    const h = await readDicomHeaderFile(path.join(covid, 'P001', '98C14734-ASSH_29.dcm'));
    expect(h.sopClassUid).toBe('1.2.840.10008.5.1.4.1.1.2');
    expect(h.sopInstanceUid).toBe('1.3.12.2.1107.5.1.4.93005.30000020030507333373200012452');
    expect(h.modality).toBe('CT');
    expect(h.transferSyntaxUid).toBe('1.2.840.10008.1.2.4.70');
    expect(h.imageOrientationPatient).toHaveLength(6);
    expect(h.imagePositionPatient).toHaveLength(3);
    expect(h.seriesInstanceUid).toMatch(/^[0-9.]+$/);
    expect(h.studyInstanceUid).toMatch(/^[0-9.]+$/);
    expect([h.rows, h.columns, h.hasPixelData]).toEqual([512, 512, true]);
    expect(h.imageType).toContain('AXIAL');
  });
});

describe('bad input gives a typed DecodeError, fast, never a crash', () => {
  const cases: [string, string, RegExp][] = [
    [odd('2026-05-26-oob-monochrome-46341.dcm'), 'bad-geometry', /46341x46341/],
    [odd('2026-05-26-oob-monochrome-65535.dcm'), 'bad-geometry', /65535/],
    [odd('2026-05-06-Deeply-Nested-Sequence.dcm'), 'parse-failed', /nested deeper/],
    [odd('Issue22-NoPixelData.dcm'), 'no-pixel-data', /Pixel Data/],
    [odd('2020-09-12-ELSCINT1-PMSCT_RLE1.dcm'), 'no-pixel-data', /Pixel Data/],
    [odd('sample-pdf.dcm'), 'no-pixel-data', /Pixel Data/],
    [odd('Issue195.dcm'), 'no-pixel-data', /Pixel Data/],
    [pyd('liver_deflate.dcm'), 'unsupported-image', /BitsAllocated 1/],
  ];
  for (const [file, code, msg] of cases) {
    it(`${path.basename(file)} → ${code}`, async () => {
      const t0 = Date.now();
      const err = await decodeDicomFile(file).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(DecodeError);
      expect((err as DecodeError).code).toBe(code);
      expect((err as DecodeError).message).toMatch(msg);
      expect(Date.now() - t0).toBeLessThan(10_000);
    });
  }

  it('odd but valid files decode: 3x3 JPEG lossless with private tags, private tags after pixel data', async () => {
    await expectSamePixels(odd('Issue140.dcm'), dcmtk('dcmdjpeg', [], odd('Issue140.dcm'), 'i140.dcm'));
    await expectSamePixels(odd('2024-05-30-GuillemVela.dcm'), dcmtk('dcmdjpeg', [], odd('2024-05-30-GuillemVela.dcm'), 'gv.dcm'));
  });

  it('a codec failure (WASM trap) is a codec-failed error and the codecs keep working after it', async () => {
    for (const uid of ['1.2.840.10008.1.2.4.80', '1.2.840.10008.1.2.5']) {
      const b = Buffer.from(readFileSync(ts(uid)));
      const start = b.length - Math.floor(b.length / 2);
      for (let i = start; i < start + 3000; i++) b[i] = (i * 7919) & 0xff;
      const err = await decodeDicom(b).then(
        () => null,
        (e: unknown) => e,
      );
      expect((err as DecodeError).code).toBe('codec-failed');
      await expectSamePixels(ts(uid), ts('1.2.840.10008.1.2.4.90'));
    }
  });

  it('truncated, corrupted and non-DICOM buffers', async () => {
    const full = readFileSync(path.join(covid, 'P001', '98C14734-ASSH_29.dcm'));
    const codes = async (buf: Uint8Array) =>
      decodeDicom(buf).then(
        () => 'ok',
        (e: unknown) => (e instanceof DecodeError ? e.code : `untyped: ${String(e)}`),
      );
    expect(await codes(full.subarray(0, Math.floor(full.length / 2)))).toMatch(/^(parse-failed|codec-failed|pixel-data-too-short)$/);
    // JPEG stream with its entropy-coded data overwritten
    const bad = Buffer.from(full);
    bad.fill(0xaa, bad.length - 60_000, bad.length - 1_000);
    expect(await codes(bad)).toMatch(/^(ok|codec-failed)$/);
    const png = readFileSync(path.join(data, 'covid-ct', 'CT_COVID', firstFile(path.join('..', 'covid-ct', 'CT_COVID'))));
    expect(await codes(png)).toBe('not-dicom');
    const junk = Buffer.alloc(4096, 0x11);
    junk.write('DICM', 128, 'latin1');
    expect(await codes(junk)).toBe('parse-failed');
    // native pixel data shorter than Rows x Columns says
    const short = path.join(tmp, 'short.dcm');
    const uncr = readFileSync(pyd('693_UNCR.dcm'));
    writeFileSync(short, uncr.subarray(0, uncr.length - 100_000));
    expect(
      await decodeDicomFile(short).then(
        () => 'ok',
        (e: unknown) => (e as DecodeError).code,
      ),
    ).toMatch(/^(parse-failed|pixel-data-too-short)$/);
  });
});

describe('the scoring path reads plain files directly, with the same answers as the full parse', () => {
  /** Every sample file (odd ones included) and the first and last slices of each covid-ct-md series. */
  const files = [
    ...execFileSync('find', [samples, '-name', '*.dcm', '-size', '-20M']).toString().trim().split('\n').sort(),
    ...['P001', 'cap001', 'normal001'].flatMap((s) => {
      const names = execFileSync('ls', [path.join(covid, s)])
        .toString()
        .trim()
        .split('\n')
        .sort();
      return [names[0], names[names.length - 1]].map((n) => path.join(covid, s, n as string));
    }),
  ];
  const outcome = async (f: () => Promise<{ width: number; height: number; kind: string; data: Float32Array }>): Promise<unknown> => {
    try {
      const img = await f();
      return { ...img, data: Buffer.from(img.data.buffer, img.data.byteOffset, img.data.byteLength).toString('base64') };
    } catch (err) {
      return err instanceof DecodeError ? { code: err.code, message: err.message } : { untyped: String(err) };
    }
  };

  it('decodeDicomImageFile = decodeDicomFile(...).image (pixels, spacing, thickness, or the same DecodeError) on every sample', async () => {
    let direct = 0;
    const into = new Float32Array(1024 * 1024);
    for (const file of files) {
      const full = await outcome(async () => (await decodeDicomFile(file)).image);
      expect(await outcome(() => decodeDicomImageFile(file)), path.basename(file)).toEqual(full);
      // into a reused buffer (the prepare pool's threads): the same values
      expect(await outcome(() => decodeDicomImageFile(file, { into })), path.basename(file)).toEqual(full);
      if (readDirect(readFileSync(file))) direct++;
    }
    // the plain files (all CT slices, most samples) took the direct reader; the odd ones the full parse
    expect(direct).toBeGreaterThanOrEqual(20);
    expect(direct).toBeLessThan(files.length);
  });

  it('a file the direct reader would misread is left to the full parse: wrong group length, VR, character set, trailing bytes', async () => {
    const slice = readFileSync(path.join(covid, 'P001', '98C14734-ASSH_29.dcm'));
    const expected = await outcome(async () => (await decodeDicom(slice)).image);
    expect(readDirect(slice)).not.toBeNull();
    const variants: Buffer[] = [];
    // (0002,0000) one byte off: dcmjs reads the meta by it
    const gl = Buffer.from(slice);
    gl.writeUInt32LE(gl.readUInt32LE(140) + 2, 140);
    variants.push(gl);
    // SpecificCharacterSet dcmjs refuses
    const cs = Buffer.from(slice);
    const at = cs.indexOf('ISO_IR 100', 0, 'latin1');
    cs.write('ISO_IR 999', at, 'latin1');
    variants.push(cs);
    // Rows as a DS instead of a US
    const vr = Buffer.from(slice);
    const rows = vr.indexOf(Buffer.from([0x28, 0x00, 0x10, 0x00, 0x55, 0x53]));
    vr.write('DS', rows + 4, 'latin1');
    variants.push(vr);
    // three stray bytes after the dataset
    variants.push(Buffer.concat([slice, Buffer.from([1, 2, 3])]));
    for (const v of variants) {
      expect(readDirect(v)).toBeNull();
      expect(await outcome(() => decodeDicomImage(v))).toEqual(await outcome(async () => (await decodeDicom(v)).image));
    }
    expect(await outcome(() => decodeDicomImage(slice))).toEqual(expected);
  });
});

function firstFile(sub: string): string {
  const names = execFileSync('ls', [path.join(covid, sub)])
    .toString()
    .split('\n')
    .filter((n) => n && !n.endsWith('.csv'));
  return names[0] as string;
}
