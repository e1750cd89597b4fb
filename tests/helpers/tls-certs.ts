/**
 * Throw-away X.509 material for DICOM TLS tests, made with the openssl CLI: a CA, a server
 * certificate for 127.0.0.1 / localhost, a client certificate, a certificate without any
 * subjectAltName, and a second ("rogue") CA with a client certificate of its own.
 * RSA 2048 / SHA-256, as DCMTK's default BCP 195 profile requires.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const exec = promisify(execFile);

export interface KeyPair {
  cert: string;
  key: string;
}

export interface TestPki {
  dir: string;
  ca: string;
  server: KeyPair;
  client: KeyPair;
  /** Server certificate with no subjectAltName (hostname checks fail on it). */
  noSan: KeyPair;
  rogueCa: string;
  rogueClient: KeyPair;
  remove(): Promise<void>;
}

async function openssl(args: string[]): Promise<void> {
  await exec('openssl', args, { timeout: 60_000 });
}

async function makeCa(dir: string, name: string): Promise<KeyPair> {
  const pair = { cert: join(dir, `${name}.pem`), key: join(dir, `${name}.key`) };
  await openssl([
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-sha256',
    '-nodes',
    '-keyout',
    pair.key,
    '-out',
    pair.cert,
    '-days',
    '3',
    '-subj',
    `/CN=${name}`,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  return pair;
}

async function makeLeaf(dir: string, name: string, ca: KeyPair, ext: string): Promise<KeyPair> {
  const pair = { cert: join(dir, `${name}.pem`), key: join(dir, `${name}.key`) };
  const csr = join(dir, `${name}.csr`);
  const extFile = join(dir, `${name}.ext`);
  await writeFile(extFile, `${ext}\n`);
  await openssl(['req', '-newkey', 'rsa:2048', '-sha256', '-nodes', '-keyout', pair.key, '-out', csr, '-subj', `/CN=${name}`]);
  await openssl([
    'x509',
    '-req',
    '-sha256',
    '-in',
    csr,
    '-CA',
    ca.cert,
    '-CAkey',
    ca.key,
    '-set_serial',
    `0x${randomBytes(8).toString('hex')}`,
    '-out',
    pair.cert,
    '-days',
    '3',
    '-extfile',
    extFile,
  ]);
  return pair;
}

export async function makeTestPki(): Promise<TestPki> {
  const dir = await mkdtemp(join(tmpdir(), 'mlsam-pki-'));
  const ca = await makeCa(dir, 'test-ca');
  const rogue = await makeCa(dir, 'rogue-ca');
  const both = 'extendedKeyUsage=serverAuth,clientAuth';
  const [server, client, noSan, rogueClient] = await Promise.all([
    makeLeaf(dir, 'server', ca, `subjectAltName=IP:127.0.0.1,DNS:localhost\n${both}`),
    makeLeaf(dir, 'client', ca, `subjectAltName=DNS:pacs.example\n${both}`),
    makeLeaf(dir, 'nosan', ca, both),
    makeLeaf(dir, 'rogue-client', rogue, both),
  ]);
  return {
    dir,
    ca: ca.cert,
    server,
    client,
    noSan,
    rogueCa: rogue.cert,
    rogueClient,
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}
