import { describe, expect, it } from 'vitest';
import { sopClassName, TransferSyntax, transferSyntaxName } from '../../src/dicom/uids.js';

/**
 * One table of SOP class and transfer syntax names (src/dicom/uids.ts): the refusal messages of the
 * listener, the dashboard and the routing reasons all say a UID with these names.
 */
describe('UID names', () => {
  it('names the SOP classes a forwarded study carries, scored or not, and keeps an unknown UID as it is', () => {
    expect(sopClassName('1.2.840.10008.5.1.4.1.1.2')).toBe('CT Image Storage');
    expect(sopClassName('1.2.840.10008.5.1.4.1.1.2.1')).toBe('Enhanced CT Image Storage');
    expect(sopClassName('1.2.840.10008.5.1.4.1.1.7')).toBe('Secondary Capture Image Storage');
    expect(sopClassName('1.2.840.10008.5.1.4.1.1.88.67')).toBe('X-Ray Radiation Dose SR Storage');
    expect(sopClassName('1.2.840.10008.5.1.4.1.1.481.2')).toBe('RT Dose Storage');
    expect(sopClassName('1.2.840.10008.1.1')).toBe('Verification');
    expect(sopClassName('1.2.3.4')).toBe('1.2.3.4');
  });

  it('names every transfer syntax the code knows, and keeps an unknown UID as it is', () => {
    for (const uid of Object.values(TransferSyntax)) expect(transferSyntaxName(uid), uid).not.toBe(uid);
    expect(transferSyntaxName(TransferSyntax.Jpeg2000Lossless)).toBe('JPEG 2000 Lossless');
    expect(transferSyntaxName('1.2.840.10008.1.2.4.102')).toBe('MPEG-4 AVC/H.264');
    expect(transferSyntaxName('1.2.3.4')).toBe('1.2.3.4');
  });
});
