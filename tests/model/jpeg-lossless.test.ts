/**
 * The TypeScript JPEG Lossless decoder (src/dicom/decode/jpeg-lossless.ts) against DCMTK: a real CT slice and a
 * signed CT encoded by dcmcjpeg with every selection value (predictor 1-7) and with a point transform decodes to
 * exactly what dcmdjpeg decodes; streams it does not handle (truncated, 8-bit) return null so that the WASM codec
 * takes them, and a truncated file still fails with a DecodeError as before.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeDicomFile, parseDicom } from '../../src/dicom/decode/index.js';
import { decodeJpegLossless } from '../../src/dicom/decode/jpeg-lossless.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const data = path.resolve(repoRoot, '..', 'shared', 'data');
const p001 = path.join(data, 'covid-ct-md', 'P001');
const signedCt = path.join(data, 'dicom-samples', 'orthanc-tests', 'odd', 'SignedCT.dcm');
const tmp = mkdtempSync(path.join(tmpdir(), 'mlsam-jpegll-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function dcmtk(tool: string, args: string[], input: string, name: string): string {
  const out = path.join(tmp, name);
  execFileSync(tool, [...args, input, out], { stdio: ['ignore', 'ignore', 'pipe'] });
  return out;
}

/** The encoded frame of a single-frame encapsulated file. */
function frameOf(file: string): Uint8Array {
  const values = (parseDicom(readFileSync(file)).dataset['7FE00010']?.Value ?? []) as ArrayBuffer[];
  return Buffer.concat(values.map((v) => Buffer.from(v)));
}

async function expectSameAsDcmdjpeg(encoded: string): Promise<void> {
  const ref = (await decodeDicomFile(dcmtk('dcmdjpeg', [], encoded, `${path.basename(encoded)}.raw.dcm`))).image;
  const ours = (await decodeDicomFile(encoded)).image;
  expect([ours.width, ours.height, ours.kind]).toEqual([ref.width, ref.height, ref.kind]);
  let mismatches = 0;
  for (let i = 0; i < ref.data.length; i++) if (ours.data[i] !== ref.data[i]) mismatches++;
  expect(mismatches).toBe(0);
}

describe('JPEG Lossless in TypeScript', () => {
  const slice = path.join(p001, readdirSync(p001).sort()[0] as string);
  const raw = dcmtk('dcmdjpeg', [], slice, 'p001-raw.dcm');

  it('decodes every predictor and a point transform exactly as dcmdjpeg does, on a real CT slice and a signed CT', async () => {
    for (const [src, tag] of [
      [raw, 'p001'],
      [signedCt, 'signed'],
    ] as const) {
      for (let sv = 1; sv <= 7; sv++) {
        const enc = dcmtk('dcmcjpeg', ['+el', '+sv', String(sv)], src, `${tag}-sv${sv}.dcm`);
        const img = decodeJpegLossless(frameOf(enc));
        expect(img, `${tag} selection value ${sv} is taken by the TypeScript decoder`).not.toBeNull();
        await expectSameAsDcmdjpeg(enc);
      }
      const pt = dcmtk('dcmcjpeg', ['+el', '+sv', '1', '+pt', '2'], src, `${tag}-pt2.dcm`);
      expect(decodeJpegLossless(frameOf(pt))).not.toBeNull();
      await expectSameAsDcmdjpeg(pt);
    }
  });

  it("the shipped series itself (SV1): the decoder takes the frame, and the samples equal dcmdjpeg's", async () => {
    expect(decodeJpegLossless(frameOf(slice))?.samples.length).toBe(512 * 512);
    await expectSameAsDcmdjpeg(slice);
  });

  it('leaves truncated streams and 8-bit ones to the WASM codec; a truncated file is still a DecodeError', async () => {
    const frame = frameOf(slice);
    expect(decodeJpegLossless(frame.subarray(0, frame.length >> 1))).toBeNull();
    expect(decodeJpegLossless(frame.subarray(0, 100))).toBeNull();
    expect(decodeJpegLossless(new Uint8Array([0xff, 0xd8, 0xff, 0xd9]))).toBeNull();
    // 8-bit lossless (an 8-bit RGB sample encoded by dcmcjpeg +el): several components, not taken
    const eight = dcmtk(
      'dcmconv',
      [],
      path.join(data, 'dicom-samples', 'orthanc-tests', 'TransferSyntaxes', '1.2.840.10008.1.2.1.dcm'),
      'eight.dcm',
    );
    const enc8 = dcmtk('dcmcjpeg', ['+el'], eight, 'eight-ll.dcm');
    expect(decodeJpegLossless(frameOf(enc8))).toBeNull();
    await expectSameAsDcmdjpeg(enc8);
    // a file cut in the middle of its pixel data
    const whole = readFileSync(slice);
    const cut = path.join(tmp, 'cut.dcm');
    writeFileSync(cut, whole.subarray(0, Math.floor(whole.length * 0.6)));
    await expect(decodeDicomFile(cut)).rejects.toMatchObject({ name: 'DecodeError' });
  });
});
