/** Configuration of DICOMweb destinations, notifications and the STOW-RS receiver (issue 25). */
import { describe, expect, it } from 'vitest';
import { allTargets } from '../../src/config/dispatch-targets.js';
import { ConfigError, loadConfig } from '../../src/config/load.js';

const load = (overrides: Record<string, unknown>) => loadConfig({ env: {}, overrides: overrides as never });

describe('targets in the configuration', () => {
  it('defaults: no notifications, the STOW-RS receiver off', () => {
    const c = load({});
    expect(c.notifications).toEqual([]);
    expect(c.dicomwebDestinations).toEqual([]);
    expect(c.http.stow).toEqual({ enabled: false, tokens: [], basicAuth: true, allowedHosts: ['*'], maxRequestMB: 200, maxInstanceMB: 50 });
  });

  it('splits destinations into DIMSE and DICOMweb, and lists every target in order', () => {
    const c = load({
      destinations: [
        { name: 'pacs', aeTitle: 'PACS', host: 'pacs', port: 104 },
        { type: 'dicomweb', name: 'vna', url: 'https://vna.example/dicom-web', auth: { type: 'bearer', token: 't' } },
        { type: 'dicom', name: 'pacs2', aeTitle: 'PACS2', host: 'pacs2', port: 104 },
      ],
      notifications: [{ type: 'hl7', name: 'ris', host: 'ris', port: 2575, receivingApplication: 'RIS' }],
    });
    expect(c.destinations.map((d) => d.name)).toEqual(['pacs', 'pacs2']);
    expect(c.dicomwebDestinations).toEqual([
      { type: 'dicomweb', name: 'vna', url: 'https://vna.example/dicom-web', auth: { type: 'bearer', token: 't' } },
    ]);
    expect(allTargets(c).map((t) => [t.kind, t.name])).toEqual([
      ['dimse', 'pacs'],
      ['dimse', 'pacs2'],
      ['dicomweb', 'vna'],
      ['notification', 'ris'],
    ]);
    expect(c.notifications[0]).toMatchObject({ sendingApplication: 'MLSAM', processingId: 'P', sendingFacility: '' });
  });

  it('refuses a name used twice, a short webhook secret, a bad URL and an unknown auth type, naming the key', () => {
    expect(() =>
      load({
        destinations: [{ type: 'dicomweb', name: 'x', url: 'http://a/dicom-web' }],
        notifications: [{ type: 'webhook', name: 'x', url: 'http://b/h', secret: '0123456789abcdef' }],
      }),
    ).toThrow(/target name "x" is used twice/);
    expect(() => load({ notifications: [{ type: 'webhook', name: 'w', url: 'http://b/h', secret: 'short' }] })).toThrow(
      /notifications\.0\.secret: use a secret of at least 16 characters/,
    );
    expect(() => load({ notifications: [{ type: 'fhir', name: 'f', url: 'ftp://x/r4' }] })).toThrow(ConfigError);
    expect(() => load({ notifications: [{ type: 'fhir', name: 'f', url: 'http://x/r4', auth: { type: 'digest' } }] })).toThrow(
      /notifications\.0\.auth/,
    );
    expect(() => load({ http: { stow: { enabled: true, tokens: ['short'] } } })).toThrow(
      /http\.stow\.tokens\.0: use tokens of at least 16 characters/,
    );
  });
});
