/**
 * DICOM TLS both ways, against DCMTK (storescu/echoscu --enable-tls, storescp --enable-tls) and
 * Orthanc's DICOM TLS, with certificates made for the test by openssl (tests/helpers/tls-certs.ts).
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { startOrthanc, type Orthanc } from '../../src/demo/orthanc.js';
import { collectFiles, echo, sendFiles } from '../../src/dicom/scu/client.js';
import { scuTls } from '../../src/dicom/tls.js';
import { destinationPeer } from '../../src/worker/dispatch/destinations.js';
import { echoDestination } from '../../src/worker/dispatch/echo.js';
import { run } from '../helpers/dcmtk.js';
import { spoolFiles, startTestListener, type TestListener } from '../helpers/dicom-listener.js';
import { freePort, mlsam } from '../helpers/process.js';
import { cStoreRq, RawPeer } from '../helpers/raw-peer.js';
import { writeSyntheticSeries, type SyntheticSeries } from '../helpers/synthetic-series.js';
import { makeTestPki, type TestPki } from '../helpers/tls-certs.js';
import { startStorescp, type Storescp } from '../worker/dispatch/helpers.js';

let pki: TestPki;
let work: string;
let series: SyntheticSeries;

beforeAll(async () => {
  pki = await makeTestPki();
  work = await mkdtemp(join(tmpdir(), 'mlsam-tls-'));
  series = await writeSyntheticSeries({ dir: join(work, 'series'), count: 6, rows: 64, columns: 64 });
});

afterAll(async () => {
  await pki?.remove();
  if (work) await rm(work, { recursive: true, force: true });
});

/**
 * Config of a node whose SCU identity is the test client certificate (trusting the test CA),
 * with these destinations.
 */
function scuConfig(destinations: unknown[] = [], extra: Record<string, unknown> = {}): Config {
  return loadConfig({
    env: {},
    overrides: {
      dicom: { tls: { enabled: false, certFile: pki.client.cert, keyFile: pki.client.key, caFile: pki.ca, requireClientCert: false } },
      destinations,
      ...extra,
    } as never,
  });
}

/** storescu/echoscu TLS arguments: our key and certificate, trust the test CA. */
function dcmtkTls(pair: { key: string; cert: string }, ca: string): string[] {
  return ['+tls', pair.key, pair.cert, '-pw', '+cf', ca];
}

describe('the listener over DICOM TLS (client certificates required)', () => {
  let tl: TestListener;
  beforeAll(async () => {
    tl = await startTestListener({
      dicom: { tls: { enabled: true, certFile: pki.server.cert, keyFile: pki.server.key, caFile: pki.ca, requireClientCert: true } },
    });
  });
  afterAll(async () => {
    await tl?.stop();
  });

  it('stores a series from storescu --enable-tls and answers echoscu --enable-tls', async () => {
    const r = await run('storescu', [
      ...dcmtkTls(pki.client, pki.ca),
      '+sd',
      '-aec',
      'MLSAM',
      '-aet',
      'TLSSCU',
      '127.0.0.1',
      String(tl.port),
      series.dir,
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(tl.instances.filter((i) => i.callingAeTitle === 'TLSSCU')).toHaveLength(6);
    const e = await run('echoscu', [...dcmtkTls(pki.client, pki.ca), '-aec', 'MLSAM', '127.0.0.1', String(tl.port)]);
    expect(e.code, e.stderr).toBe(0);
    // mlsam echo / send with --tls-* flags.
    const tlsFlags = ['--tls-ca', pki.ca, '--tls-cert', pki.client.cert, '--tls-key', pki.client.key];
    const cli = await mlsam(['echo', '--port', String(tl.port), '--aet', 'MLSAM', ...tlsFlags]);
    expect(cli.code, cli.stderr).toBe(0);
    expect(cli.stdout).toMatch(/C-ECHO MLSAM@127\.0\.0\.1:\d+: success/);
    const noCert = await mlsam(['echo', '--port', String(tl.port), '--aet', 'MLSAM', '--tls-ca', pki.ca]);
    expect(noCert.code).not.toBe(0);
    const send = await mlsam(['send', '--port', String(tl.port), '--aet', 'MLSAM', '--calling-aet', 'CLITLS', ...tlsFlags, series.dir]);
    expect(send.code, send.stderr).toBe(0);
    expect(tl.instances.filter((i) => i.callingAeTitle === 'CLITLS')).toHaveLength(6);
  });

  it('refuses a peer without a client certificate, one from another CA, and plain DICOM on the TLS port; keeps serving', async () => {
    const before = (await spoolFiles(tl.spoolDir)).length;
    const anonymous = await run('storescu', [
      '+tla',
      '+cf',
      pki.ca,
      '-aec',
      'MLSAM',
      '127.0.0.1',
      String(tl.port),
      series.instances[0]!.path,
    ]);
    expect(anonymous.code).not.toBe(0);
    const rogue = await run('storescu', [
      ...dcmtkTls(pki.rogueClient, pki.ca),
      '-aec',
      'MLSAM',
      '127.0.0.1',
      String(tl.port),
      series.instances[0]!.path,
    ]);
    expect(rogue.code).not.toBe(0);
    const plain = await run('storescu', ['-to', '5', '-ta', '5', '-aec', 'MLSAM', '127.0.0.1', String(tl.port), series.instances[0]!.path]);
    expect(plain.code).not.toBe(0);
    expect((await spoolFiles(tl.spoolDir)).length).toBe(before);
    // Our own SCU, with the client certificate: works (sendFiles and echo over TLS).
    const config = scuConfig();
    const tls = scuTls(config, { verifyHostname: true });
    const peer = { host: '127.0.0.1', port: tl.port, calledAeTitle: 'MLSAM', callingAeTitle: 'OURSCU', timeoutMs: 10_000, tls };
    expect(await echo(peer)).toMatchObject({ ok: true, status: 0 });
    const sent = await sendFiles(peer, await collectFiles([series.dir]));
    expect(sent).toMatchObject({ sent: 6, failed: [] });
    expect(tl.instances.filter((i) => i.callingAeTitle === 'OURSCU')).toHaveLength(6);
    // Without a client certificate our SCU is refused too, with the handshake's reason.
    const bare = await echo({ ...peer, tls: { ca: tls.ca!, verifyHostname: true } });
    expect(bare.ok).toBe(false);
    expect(bare.error).toMatch(/network|closed|certificate|handshake/i);
  });

  it('a TLS peer trickling bytes mid-transfer is dropped like a plain one', async () => {
    const tl2 = await startTestListener({
      dicom: {
        tls: { enabled: true, certFile: pki.server.cert, keyFile: pki.server.key, caFile: pki.ca, requireClientCert: false },
        progressTimeoutSeconds: 1,
        minTransferBytesPerSecond: 2000,
      },
    });
    try {
      const peer = await RawPeer.connect(tl2.port, { tls: { ca: await readFile(pki.ca), servername: 'localhost' } });
      await peer.associate();
      // A C-STORE command, then a P-DATA-TF header announcing 1000 bytes, then a byte every 100 ms.
      await peer.write(cStoreRq(3, 1, '1.2.840.10008.5.1.4.1.1.2', '1.2.3.4.5'));
      const head = Buffer.from([0x04, 0, 0, 0, 0x03, 0xee, 0, 0, 0x03, 0xea, 3, 0]);
      await peer.write(head);
      const t0 = Date.now();
      while (!peer.closed && Date.now() - t0 < 30_000) {
        await peer.write(Buffer.from([0]));
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(peer.closed).toBe(true);
      const [rec] = await tl2.waitForRecords(1);
      expect(rec!.reason).toMatch(/too slow/);
    } finally {
      await tl2.stop();
    }
  });
});

describe('the SCU over DICOM TLS into storescp --enable-tls', () => {
  let scp: Storescp;
  beforeAll(async () => {
    scp = await startStorescp(await freePort(), ['+tls', pki.server.key, pki.server.cert, '-pw', '+cf', pki.ca]);
  });
  afterAll(async () => {
    await scp?.stop();
  });

  it("a destination with tls: C-ECHO and C-STORE succeed with the node's certificate; the wrong trust or no certificate fail with a reason", async () => {
    const config = scuConfig(
      [
        { name: 'scp', aeTitle: 'STORESCP', host: '127.0.0.1', port: scp.port, tls: {} },
        { name: 'untrusted', aeTitle: 'STORESCP', host: '127.0.0.1', port: scp.port, tls: { caFile: pki.rogueCa } },
        { name: 'plain', aeTitle: 'STORESCP', host: '127.0.0.1', port: scp.port },
      ],
      { dispatch: { timeoutSeconds: 5 } },
    );
    const [good, untrusted, plain] = config.destinations;
    expect(await echoDestination(config, good!)).toMatchObject({ ok: true, status: 0 });
    const sent = await sendFiles(destinationPeer(config, good!), await collectFiles([series.dir]));
    expect(sent).toMatchObject({ sent: 6, failed: [] });
    expect(new Set(scp.receptions())).toEqual(new Set(series.instances.map((i) => i.sopInstanceUid)));
    const u = await echoDestination(config, untrusted!);
    expect(u.ok).toBe(false);
    expect(u.error).toMatch(/certificate/i);
    expect((await echoDestination(config, plain!)).ok).toBe(false);
    // storescp requires a client certificate (its default -rc).
    const noCert = await echo({
      ...destinationPeer(config, good!),
      tls: { ca: scuTls(config, { verifyHostname: true }).ca!, verifyHostname: true },
    });
    expect(noCert.ok).toBe(false);
  });

  it('checks the host name unless told not to', async () => {
    const other = await startStorescp(await freePort(), ['+tls', pki.noSan.key, pki.noSan.cert, '-pw', '+cf', pki.ca]);
    try {
      const config = scuConfig(
        [
          { name: 'checked', aeTitle: 'STORESCP', host: '127.0.0.1', port: other.port, tls: {} },
          { name: 'unchecked', aeTitle: 'STORESCP', host: '127.0.0.1', port: other.port, tls: { verifyHostname: false } },
        ],
        { dispatch: { timeoutSeconds: 5 } },
      );
      const checked = await echoDestination(config, config.destinations[0]!);
      expect(checked.ok).toBe(false);
      expect(checked.error).toMatch(/IP: 127\.0\.0\.1 is not in the cert's list|altnames|Hostname/i);
      expect(await echoDestination(config, config.destinations[1]!)).toMatchObject({ ok: true });
    } finally {
      await other.stop();
    }
  });
});

describe('Orthanc DICOM TLS', () => {
  let orthanc: Orthanc;
  let tl: TestListener;
  beforeAll(async () => {
    tl = await startTestListener({
      dicom: { tls: { enabled: true, certFile: pki.server.cert, keyFile: pki.server.key, caFile: pki.ca, requireClientCert: true } },
    });
    orthanc = await startOrthanc({
      aeTitle: 'ORTHANC',
      acceptUnknownCallers: true,
      extraConfig: {
        DicomTlsEnabled: true,
        DicomTlsCertificate: pki.server.cert,
        DicomTlsPrivateKey: pki.server.key,
        DicomTlsTrustedCertificates: pki.ca,
        DicomTlsRemoteCertificateRequired: true,
        DicomModalities: { mlsam: { AET: 'MLSAM', Host: '127.0.0.1', Port: tl.port, UseDicomTls: true } },
      },
    });
  }, 120_000);
  afterAll(async () => {
    await orthanc?.stop();
    await tl?.stop();
  });

  it('Orthanc sends a series into the TLS listener, and our SCU stores into Orthanc over TLS', async () => {
    // Orthanc → node (Orthanc's client certificate is checked against the test CA).
    const ids: string[] = [];
    for (const inst of series.instances) ids.push(await orthanc.upload(await readFile(inst.path)));
    const before = tl.instances.length;
    await orthanc.storeTo('mlsam', ids, true);
    expect(
      tl.instances
        .slice(before)
        .map((i) => i.sopInstanceUid)
        .sort(),
    ).toEqual(series.instances.map((i) => i.sopInstanceUid).sort());
    expect(tl.instances.slice(before).every((i) => i.callingAeTitle === 'ORTHANC')).toBe(true);
    // node → Orthanc: a fresh series over TLS, read back over REST.
    const out = await writeSyntheticSeries({ dir: join(work, 'to-orthanc'), count: 3, rows: 32, columns: 32 });
    const config = scuConfig([{ name: 'orthanc', aeTitle: 'ORTHANC', host: '127.0.0.1', port: orthanc.dicomPort, tls: {} }]);
    const dest = config.destinations[0]!;
    expect(await echoDestination(config, dest)).toMatchObject({ ok: true });
    const sent = await sendFiles(destinationPeer(config, dest), await collectFiles([out.dir]));
    expect(sent).toMatchObject({ sent: 3, failed: [] });
    expect(await orthanc.instancesOfSeries(out.seriesInstanceUid)).toHaveLength(3);
    // Orthanc refuses plain DICOM now.
    expect(
      (await echo({ host: '127.0.0.1', port: orthanc.dicomPort, calledAeTitle: 'ORTHANC', callingAeTitle: 'MLSAM', timeoutMs: 5000 })).ok,
    ).toBe(false);
  });
});
