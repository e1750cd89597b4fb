/**
 * A push the node refuses at the presentation context (an MR, an encapsulated PDF: not CT) is visible
 * on the node (issue 26 item 5): DCMTK storescu sends them to the listener; the association record,
 * the Redis audit trail, the Associations page and the log name the refused SOP classes and why,
 * instead of "accepted-released, nothing (no request)". The site here refuses storage classes it does not
 * score (dicom.acceptUnscoredSopClasses false; the default accepts and ignores them, tests/e2e/whole-study).
 */
import { Writable } from 'node:stream';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { associationServices, associationsPage } from '../../src/admin/pages.js';
import type { Config } from '../../src/config/schema.js';
import type { AssociationRecord } from '../../src/dicom/received-instance.js';
import { DicomListener } from '../../src/dicom/scp/listener.js';
import { AssociationAudit } from '../../src/stores/audit.js';
import { closeRedis, createRedis } from '../../src/stores/redis.js';
import { run } from '../helpers/dcmtk.js';
import { SHARED_DATA } from '../helpers/dicom-listener.js';
import { cleanup, logger as quiet, testConfig, waitFor } from '../queue/helpers.js';

const SAMPLES = join(SHARED_DATA, 'dicom-samples', 'orthanc-tests');
const MR = join(SAMPLES, 'TransferSyntaxes', '1.2.840.10008.1.2.4.51.dcm'); // MR Image Storage, JPEG Extended
const PDF = join(SAMPLES, 'odd', 'sample-pdf.dcm'); // Encapsulated PDF Storage
const CT = join(SHARED_DATA, 'dicom-samples', 'pydicom-data', '693_UNCI.dcm');

let config: Config;
let listener: DicomListener;
let port: number;
const records: AssociationRecord[] = [];
const logLines: Array<Record<string, unknown>> = [];

beforeAll(async () => {
  config = await testConfig('refused');
  config = { ...config, dicom: { ...config.dicom, acceptUnscoredSopClasses: false } };
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n').filter(Boolean)) logLines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  listener = new DicomListener({
    config,
    logger: pino({ level: 'info' }, sink),
    sink: { instanceStored: async () => undefined },
    observer: { associationEnded: async (r) => void records.push(r) },
    fsync: false,
  });
  ({ port } = await listener.start());
});

afterAll(async () => {
  await listener?.stop();
  if (config) await cleanup(config);
});

describe('refused presentation contexts', () => {
  it('are named in the association record, the audit trail, the Associations page and the log', async () => {
    // -R: propose only what the files need, as a PACS does.
    const r = await run('storescu', [
      '-R',
      '-aec',
      config.dicom.aeTitle,
      '-aet',
      'MODALITY',
      '--no-halt',
      '127.0.0.1',
      String(port),
      MR,
      PDF,
    ]);
    expect(r.stderr + r.stdout).toMatch(/presentation context/i); // storescu: nothing to send either file on
    const [rec] = await waitFor(async () => (records.length ? records : undefined), 10_000, 'the association record');
    // Accepted (the association itself is fine); storescu then releases or aborts, having nothing to send on.
    expect(rec!.outcome).toMatch(/^(accepted-released|aborted)$/);
    expect(rec!.instances).toBe(0);
    const bySop = new Map(rec!.refused!.map((x) => [x.sopClassUid, x]));
    expect(bySop.get('1.2.840.10008.5.1.4.1.1.4')?.reason).toBe('SOP class not supported');
    expect(bySop.get('1.2.840.10008.5.1.4.1.1.104.1')?.reason).toBe('SOP class not supported');
    expect(bySop.get('1.2.840.10008.5.1.4.1.1.4')?.transferSyntaxUids.length).toBeGreaterThan(0);

    // The audit trail in Redis keeps them.
    const redis = createRedis(config.redis.url, 'command', quiet);
    try {
      const audit = new AssociationAudit({ config, logger: quiet, redis });
      await audit.record(rec!);
      const [back] = await audit.listAssociations(5);
      expect(back!.refused).toEqual(rec!.refused);
      // The Associations page says what was refused, not "nothing (no request)".
      const services = associationServices(back!);
      expect(services).toMatch(/^nothing stored: refused /);
      expect(services).toContain('MR Image Storage (SOP class not supported)');
      expect(services).toContain('Encapsulated PDF Storage (SOP class not supported)');
      expect(associationsPage([back!])).toContain('MR Image Storage (SOP class not supported)');
    } finally {
      await closeRedis(redis);
    }

    // The log line names them too, as a warning (nothing could be stored).
    const line = logLines.find((l) => String(l.msg).startsWith('association accepted'))!;
    expect(line.level).toBe(40);
    expect(line.accepted).toEqual([]);
    expect(String(line.msg)).toContain(
      'refused MR Image Storage: SOP class not supported; Encapsulated PDF Storage: SOP class not supported',
    );
  });

  it('an SCU that proposes every storage class: one entry per class, a short summary on the page and in the log', async () => {
    records.length = 0;
    logLines.length = 0;
    await run('storescu', ['-aec', config.dicom.aeTitle, '-aet', 'MODALITY', '--no-halt', '127.0.0.1', String(port), MR]);
    const [rec] = await waitFor(async () => (records.length ? records : undefined), 10_000, 'the association record');
    const classes = rec!.refused!.map((x) => x.sopClassUid);
    expect(new Set(classes).size).toBe(classes.length);
    expect(classes).toContain('1.2.840.10008.5.1.4.1.1.4');
    const total = classes.length + (rec!.refusedMore ?? 0);
    expect(total).toBeGreaterThan(10);
    expect(associationServices(rec!)).toMatch(
      new RegExp(`^nothing stored: refused [^,]+, [^,]+, [^,]+ and ${total - 3} more SOP classes the peer proposed$`),
    );
    const line = logLines.find((l) => String(l.msg).startsWith('association accepted'))!;
    expect(String(line.msg)).toMatch(new RegExp(`and ${total - 5} more SOP classes$`));
  });

  it('a CT pushed beside an MR: the CT is stored, the MR named as refused', async () => {
    records.length = 0;
    const r = await run('storescu', [
      '-R',
      '-aec',
      config.dicom.aeTitle,
      '-aet',
      'MODALITY',
      '--no-halt',
      '127.0.0.1',
      String(port),
      CT,
      MR,
    ]);
    expect(r.stderr + r.stdout).toMatch(/presentation context/i);
    const [rec] = await waitFor(async () => (records.length ? records : undefined), 10_000, 'the association record');
    expect(rec!.instances).toBe(1);
    expect(associationServices(rec!)).toBe('C-STORE 1 instance; refused MR Image Storage (SOP class not supported)');
  });
});
