/**
 * `mlsam` says in words what went wrong (issue 26 item 4): an association rejected by a real listener
 * names the reason PS3.8 gives, a path that does not exist is one line (no stack trace), and every
 * A-ASSOCIATE-RJ result/source/reason, A-ABORT source/reason and DIMSE status the standard defines has
 * words, not a number.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  abortText,
  associateRejectText,
  dimseStatusMeaning,
  dimseStatusText,
  presentationContextResultText,
} from '../../src/dicom/words.js';
import { SHARED_DATA, startTestListener, type TestListener } from '../helpers/dicom-listener.js';
import { mlsam } from '../helpers/process.js';

const STACK = /\n\s+at |Error: /;

describe('association rejections in words (against the listener)', () => {
  let tl: TestListener;
  beforeAll(async () => {
    tl = await startTestListener({ dicom: { allowedCallers: [{ aeTitle: 'FRIEND', host: '*' }] } });
  });
  afterAll(async () => {
    await tl?.stop();
  });

  it('a wrong called AE title: "rejected permanently by the peer: called AE title not recognised"', async () => {
    const r = await mlsam(['echo', '--port', String(tl.port), '--aet', 'NOPE', '--calling-aet', 'FRIEND']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/association rejected permanently by the peer: called AE title not recognised/);
    expect(r.stderr).not.toMatch(/result \d|source \d|reason \d/);
  });

  it('a calling AE title the peer does not allow, on send', async () => {
    const file = join(SHARED_DATA, 'dicom-samples', 'pydicom-data', '693_UNCI.dcm');
    const r = await mlsam(['send', '--port', String(tl.port), '--calling-aet', 'STRANGER', file]);
    expect(r.code).toBe(1);
    expect(r.stderr + r.stdout).toMatch(
      /rejected permanently by the peer: calling AE title not recognised; our calling AE title is not among the callers the peer allows/,
    );
  });
});

describe('a path that does not exist', () => {
  it('send: one line, no stack trace', async () => {
    const r = await mlsam(['send', '--port', '1', '/nonexistent/study']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('mlsam: /nonexistent/study: no such file or directory\n');
  });

  it('score: listed as skipped with the reason in words', async () => {
    const r = await mlsam(['score', '/nonexistent/study']);
    expect(r.code).toBe(2);
    expect(r.stdout).toContain('/nonexistent/study: cannot read: no such file or directory');
    expect(r.stderr).not.toMatch(STACK);
  });

  it('a bad flag value: one line', async () => {
    const r = await mlsam(['echo', '--port', 'abc']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('mlsam: --port: not a port: abc\n');
  });
});

describe('PS3.8 / PS3.7 codes in words', () => {
  it('every A-ASSOCIATE-RJ result, source and defined reason (PS3.8 table 9-21)', () => {
    const defined: Array<[number, number, string]> = [
      [1, 1, 'no reason given'],
      [1, 2, 'application context name not supported'],
      [1, 3, 'calling AE title not recognised'],
      [1, 7, 'called AE title not recognised'],
      [2, 1, 'no reason given'],
      [2, 2, 'protocol version not supported'],
      [3, 1, 'temporary congestion'],
      [3, 2, 'local limit exceeded'],
    ];
    for (const result of [1, 2]) {
      for (const [source, reason, words] of defined) {
        const t = associateRejectText({ result, source, reason });
        expect(t).toContain(result === 1 ? 'rejected permanently' : 'rejected for now (transient)');
        expect(t).toContain(words);
        expect(t).not.toMatch(/reserved|unknown/);
      }
    }
    expect(associateRejectText({ result: 1, source: 1, reason: 7 }, false)).toBe(
      'association rejected permanently by the peer: called AE title not recognised',
    );
    expect(associateRejectText({ result: 2, source: 3, reason: 2 }, false)).toMatch(
      /^association rejected for now \(transient\) by the peer's DICOM network layer \(presentation service-provider\): local limit exceeded/,
    );
    expect(associateRejectText({ result: 1, source: 2, reason: 2 }, false)).toMatch(
      /ACSE service-provider\): protocol version not supported$/,
    );
    // Reserved values keep their number rather than a wrong word.
    expect(associateRejectText({ result: 1, source: 1, reason: 5 })).toMatch(/reserved reason 5/);
  });

  it('every A-ABORT source and reason (PS3.8 table 9-26), every presentation context result', () => {
    expect(abortText({ source: 0, reason: 0 })).toBe('association aborted by the peer');
    const reasons = [
      'reason not specified',
      'unrecognised PDU',
      'unexpected PDU',
      '',
      'unrecognised PDU parameter',
      'unexpected PDU parameter',
      'invalid PDU parameter value',
    ];
    reasons.forEach((w, reason) => {
      if (w)
        expect(abortText({ source: 2, reason })).toBe(`association aborted by the peer's DICOM network layer (service-provider): ${w}`);
    });
    expect(abortText({ source: 2, reason: 3 })).toMatch(/reserved reason 3/);
    expect([0, 1, 2, 3, 4].map(presentationContextResultText)).toEqual([
      'accepted',
      'refused by the peer (user rejection)',
      'refused by the peer (no reason given)',
      'SOP class not supported',
      'none of the transfer syntaxes supported',
    ]);
  });

  it('every DIMSE status of PS3.7 annex C and the storage / query-retrieve service statuses', () => {
    const codes = [
      0x0000, 0x0001, 0x0107, 0x0116, 0xb000, 0xb006, 0xb007, 0x0105, 0x0106, 0x0110, 0x0111, 0x0112, 0x0113, 0x0114, 0x0115, 0x0117,
      0x0118, 0x0119, 0x0120, 0x0121, 0x0122, 0x0123, 0x0124, 0x0210, 0x0211, 0x0212, 0x0213, 0xa700, 0xa7ff, 0xa701, 0xa702, 0xa801,
      0xa900, 0xa9ff, 0xc000, 0xcfff, 0xfe00, 0xff00, 0xff01,
    ];
    for (const c of codes) expect(dimseStatusMeaning(c), c.toString(16)).not.toBe('unknown status');
    expect(dimseStatusText(0xa700)).toBe('0xA700 (refused: out of resources)');
    expect(dimseStatusText(0x0122)).toBe('0x0122 (refused: SOP class not supported)');
    expect(dimseStatusText(0xc123)).toBe('0xC123 (error: cannot understand)');
    expect(dimseStatusMeaning(0x0999)).toBe('unknown status');
  });
});
