import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../helpers/dcmtk.js';
import { mlsam } from '../helpers/process.js';
import { REPO_ROOT, SHARED_DATA, startTestListener, type TestListener } from '../helpers/dicom-listener.js';

const SAMPLES = join(SHARED_DATA, 'dicom-samples');

describe('mlsam echo / send (dcmjs-dimse SCU) against the listener', () => {
  let tl: TestListener;
  beforeAll(async () => {
    tl = await startTestListener();
  });
  afterAll(async () => {
    await tl?.stop();
  });

  it('echo succeeds, and fails (non-zero) for a wrong called AE or a closed port', async () => {
    const ok = await mlsam(['echo', '--port', String(tl.port)]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/success/);
    const wrong = await mlsam(['echo', '--port', String(tl.port), '--aet', 'NOPE']);
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toMatch(/rejected/);
    const closed = await mlsam(['echo', '--port', '1', '--timeout', '3']);
    expect(closed.code).not.toBe(0);
  });

  it('send stores files in their own transfer syntax and reports failures', async () => {
    const files = [
      join(SAMPLES, 'pydicom-data', 'eCT_Supplemental.dcm'), // Enhanced CT, nested undefined-length sequences
      join(SAMPLES, 'pydicom-data', '693_J2KR.dcm'), // JPEG 2000 lossless
      join(SAMPLES, 'pydicom-data', '693_UNCI.dcm'),
      join(SAMPLES, 'orthanc-tests', 'odd', 'SignedCT.dcm'),
      join(SAMPLES, 'orthanc-tests', 'TransferSyntaxes', '1.2.840.10008.1.2.4.70.dcm'),
    ];
    const r = await mlsam(['send', '--port', String(tl.port), '--calling-aet', 'SENDER', ...files]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/sent 5, failed 0/);
    const byTs = new Map(tl.instances.map((i) => [i.transferSyntaxUid, i]));
    expect(byTs.get('1.2.840.10008.1.2.4.90')).toBeDefined();
    expect(byTs.get('1.2.840.10008.1.2.4.70')).toBeDefined();
    expect(tl.instances.find((i) => i.sopClassUid === '1.2.840.10008.5.1.4.1.1.2.1')).toBeDefined();
    for (const inst of tl.instances) {
      expect(inst.callingAeTitle).toBe('SENDER');
      // Every spooled file is readable Part-10 with the transfer syntax it was received in.
      const meta = await run('dcmdump', ['-M', '+P', '0002,0010', inst.path]);
      expect(meta.code, meta.stderr).toBe(0);
      expect(meta.stdout).toContain(inst.transferSyntaxUid === '1.2.840.10008.1.2.1' ? 'LittleEndianExplicit' : '');
    }
    // An unsupported SOP class and a non-DICOM file: reported, exit non-zero.
    const bad = await mlsam([
      'send',
      '--port',
      String(tl.port),
      join(SAMPLES, 'orthanc-tests', 'odd', 'UnknownSopClassUid.dcm'),
      join(REPO_ROOT, 'package.json'),
    ]);
    expect(bad.code).not.toBe(0);
    expect(bad.stdout).toMatch(/sent 0, failed 2/);
  });
});
