import * as net from 'node:net';
import * as tls from 'node:tls';
import type { Config } from '../../config/schema.js';
import { resolvePath } from '../../config/load.js';
import type { Logger } from '../../log.js';
import type { AssociationObserver, InstanceSink, ReceivedInstance } from '../received-instance.js';
import { DiskWatermark, prepareSpool, spoolTmpDir } from '../spool/spool-layout.js';
import { configureDimse } from '../dimse-library.js';
import { serverTlsOptions } from '../tls.js';
import { AssociationHandler, type ListenerContext } from './association-handler.js';

export interface ListenerOptions {
  config: Config;
  sink: InstanceSink;
  observer?: AssociationObserver;
  logger: Logger;
  /**
   * fsync each instance and its directory before answering Success (default true; the daemon
   * must keep it on — a switch for benchmarks only).
   */
  fsync?: boolean;
}

/**
 * The DICOM C-ECHO / C-STORE SCP. It owns the TCP server (bound to config.dicom.host:port, which
 * dcmjs-dimse's Server cannot do) and runs one {@link AssociationHandler} per connection. With
 * dicom.tls.enabled the server speaks DICOM TLS only (TLS 1.2+, our certificate, client
 * certificates checked against dicom.tls.caFile when required); a handshake must finish within
 * the association timeout.
 */
export class DicomListener {
  private readonly opts: ListenerOptions;
  private readonly log: Logger;
  private server: net.Server | undefined;
  private readonly handlers = new Set<AssociationHandler>();
  /** One per open connection; settles when its socket has closed and its handler cleaned up. */
  private readonly connectionsClosed = new Set<Promise<void>>();
  private readonly pendingCallbacks = new Set<Promise<unknown>>();
  private readonly ctx: ListenerContext;

  constructor(opts: ListenerOptions) {
    this.opts = opts;
    this.log = opts.logger.child({ component: 'dicom-listener' });
    const spoolDir = resolvePath(opts.config.spool.dir);
    this.ctx = {
      config: opts.config,
      logger: this.log,
      spoolDir,
      tmpDir: spoolTmpDir(spoolDir),
      fsync: opts.fsync ?? true,
      watermark: new DiskWatermark(spoolDir, opts.config.spool.maxDiskUsagePercent),
      acceptedAssociations: () => this.activeAssociations,
      instanceStored: (inst) => this.deliver(inst),
    };
  }

  /** TCP connections open (negotiating, associated or closing). */
  get connections(): number {
    return this.handlers.size;
  }

  /** Associations accepted and not yet closed. */
  get activeAssociations(): number {
    let n = 0;
    for (const h of this.handlers) if (h.accepted && !h.socket.destroyed) n++;
    return n;
  }

  async start(): Promise<{ host: string; port: number }> {
    if (this.server) throw new Error('listener already started');
    configureDimse();
    await prepareSpool(this.ctx.spoolDir);
    const useTls = this.opts.config.dicom.tls.enabled;
    const server: net.Server = useTls
      ? tls.createServer({ ...serverTlsOptions(this.opts.config), noDelay: true }, (socket) => this.onConnection(socket))
      : net.createServer({ noDelay: true }, (socket) => this.onConnection(socket));
    if (useTls) {
      // A failed handshake (no or untrusted client certificate, plain DICOM on the TLS port, timeout).
      server.on('tlsClientError', (err: Error & { code?: string }, socket: tls.TLSSocket) => {
        this.log.warn({ peer: socket.remoteAddress, err: err.message, code: err.code }, 'TLS handshake failed');
        socket.destroy();
      });
    }
    this.server = server;
    const { host, port } = this.opts.config.dicom;
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      server.once('error', onError);
      server.listen({ host, port }, () => {
        server.off('error', onError);
        resolve();
      });
    });
    server.on('error', (err) => this.log.error({ err: err.message }, 'DICOM server error'));
    const addr = server.address() as net.AddressInfo;
    this.log.info(
      { host: addr.address, port: addr.port, aeTitle: this.opts.config.dicom.aeTitle, spool: this.ctx.spoolDir, tls: useTls },
      'DICOM listener started',
    );
    return { host: addr.address, port: addr.port };
  }

  /**
   * Stops accepting connections, gives open associations `graceMs` to finish, aborts the rest,
   * and waits until every started write and sink call has settled.
   */
  async stop(opts: { graceMs?: number } = {}): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    const graceMs = opts.graceMs ?? 2000;
    const deadline = Date.now() + graceMs;
    while (this.handlers.size > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 25));
    }
    for (const h of this.handlers) h.abortAssociation('listener stopping');
    await Promise.allSettled([...this.handlers].map((h) => h.settled()));
    for (const h of this.handlers) h.socket.destroy();
    // The server's own 'close' can come before the sockets' 'close' events: wait for those too.
    await Promise.allSettled([...this.connectionsClosed]);
    await closed;
    await Promise.allSettled([...this.pendingCallbacks]);
    this.log.info('DICOM listener stopped');
  }

  private onConnection(socket: net.Socket): void {
    socket.setNoDelay(true);
    if (!this.server) {
      socket.destroy();
      return;
    }
    let handler: AssociationHandler;
    try {
      handler = new AssociationHandler(socket, this.ctx);
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'cannot set up association');
      socket.destroy();
      return;
    }
    this.handlers.add(handler);
    socket.on('error', () => undefined); // reported through the handler's networkError
    let markClosed!: () => void;
    const closed = new Promise<void>((resolve) => {
      markClosed = resolve;
    });
    this.connectionsClosed.add(closed);
    void closed.then(() => this.connectionsClosed.delete(closed));
    socket.once('close', () => {
      this.handlers.delete(handler);
      markClosed();
      void handler.settled().then(() => {
        const record = handler.record(Date.now());
        this.log.info(
          {
            assoc: record.id.slice(0, 8),
            callingAe: record.callingAeTitle,
            host: record.callingHost,
            instances: record.instances,
            bytes: record.bytes,
            outcome: record.outcome,
            ...(record.failed ? { failed: record.failed } : {}),
            ...(record.reason ? { reason: record.reason } : {}),
            ms: record.endedAt - record.startedAt,
          },
          'association ended',
        );
        const observer = this.opts.observer;
        if (observer) this.track(() => observer.associationEnded(record), 'association observer failed');
      });
    });
  }

  private deliver(inst: ReceivedInstance): void {
    this.track(() => this.opts.sink.instanceStored(inst), 'instance sink failed (the spool reconciler will pick it up)', {
      sopInstanceUid: inst.sopInstanceUid,
      seriesInstanceUid: inst.seriesInstanceUid,
    });
  }

  private track(call: () => Promise<void>, message: string, fields: Record<string, unknown> = {}): void {
    const tracked = Promise.resolve()
      .then(call)
      .catch((err: unknown) => this.log.error({ ...fields, err: (err as Error)?.message ?? String(err) }, message))
      .finally(() => this.pendingCallbacks.delete(tracked));
    this.pendingCallbacks.add(tracked);
  }
}
