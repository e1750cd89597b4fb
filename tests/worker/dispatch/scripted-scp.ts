/**
 * A C-STORE SCP (dcmjs-dimse, real DICOM over TCP on 127.0.0.1) that answers each C-STORE with a
 * scripted status per SOP Instance UID: the fault injection DCMTK storescp and Orthanc 1.10 lack
 * (storescp has no per-instance failure option; Orthanc answers Success to an instance its Lua
 * ReceivedInstanceFilter drops). Every other C-STORE gets Success.
 */
import { createServer, type Server, type Socket } from 'node:net';
import dimse from 'dcmjs-dimse';

const { Scp } = dimse;
const { CEchoResponse, CStoreResponse } = dimse.responses;
const { PresentationContextResult } = dimse.constants;

type Association = InstanceType<typeof dimse.association.Association>;
type CStoreRequest = InstanceType<typeof dimse.requests.CStoreRequest>;
type CEchoRequest = InstanceType<typeof dimse.requests.CEchoRequest>;

export interface Reception {
  sopInstanceUid: string;
  status: number;
}

interface State {
  /** SOP Instance UID → statuses to answer, one per C-STORE, in order (then Success). */
  script: Map<string, number[]>;
  receptions: Reception[];
}

class ScriptedConnection extends Scp {
  constructor(
    socket: Socket,
    private readonly state: State,
  ) {
    super(socket, { connectTimeout: 10_000, associationTimeout: 10_000, pduTimeout: 10_000 });
    // Server.listen would set these; the socket is handed over already connected.
    const internals = this as unknown as { connected: boolean; connectedTime: number };
    internals.connected = true;
    internals.connectedTime = Date.now();
  }

  override associationRequested(association: Association): void {
    (this as unknown as { association: Association }).association = association;
    for (const c of association.getPresentationContexts()) {
      const ctx = association.getPresentationContext(c.id);
      ctx.setResult(PresentationContextResult.Accept, ctx.getTransferSyntaxUids()[0]);
    }
    this.sendAssociationAccept();
  }

  override cEchoRequest(request: CEchoRequest, callback: (r: InstanceType<typeof CEchoResponse>) => void): void {
    const r = CEchoResponse.fromRequest(request);
    r.setStatus(0);
    callback(r);
  }

  override cStoreRequest(request: CStoreRequest, callback: (r: InstanceType<typeof CStoreResponse>) => void): void {
    const uid = request.getAffectedSopInstanceUid();
    const status = this.state.script.get(uid)?.shift() ?? 0;
    this.state.receptions.push({ sopInstanceUid: uid, status });
    const r = CStoreResponse.fromRequest(request);
    r.setStatus(status);
    callback(r);
  }

  override associationReleaseRequested(): void {
    this.sendAssociationReleaseResponse();
  }
}

export interface ScriptedScp {
  port: number;
  /** Every C-STORE received, in order, with the status it was answered. */
  receptions: Reception[];
  /** Statuses to answer for a SOP Instance UID, one per C-STORE (then Success). */
  script(sopInstanceUid: string, statuses: number[]): void;
  stop(): Promise<void>;
}

export async function startScriptedScp(): Promise<ScriptedScp> {
  const state: State = { script: new Map(), receptions: [] };
  const sockets = new Set<Socket>();
  const server: Server = createServer({ noDelay: true }, (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    new ScriptedConnection(socket, state);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return {
    port,
    receptions: state.receptions,
    script(uid, statuses) {
      state.script.set(uid, [...statuses]);
    },
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
