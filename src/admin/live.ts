/**
 * Server-sent events for the dashboard's live updates: one stream per open page, re-computed
 * every second while something on it changes by itself (a series received, queued, scored or
 * sent) and every 5 s otherwise; an event is sent only when its content changed. Each stream ends
 * after 10 minutes (EventSource reconnects) and when the server closes.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';

export interface LiveEvent {
  event: string;
  /** JSON-encoded into the event's data line. */
  data: unknown;
}

export interface LiveFrame {
  events: LiveEvent[];
  /** Something on the page is changing: look again in a second. */
  active: boolean;
}

const FAST_MS = 1_000;
const SLOW_MS = 5_000;
const KEEPALIVE_MS = 15_000;
const MAX_STREAM_MS = 10 * 60_000;

export class LiveStreams {
  private readonly open = new Set<() => void>();

  /** Takes over the request's connection and streams what `frame` returns while it changes. */
  serve(req: FastifyRequest, reply: FastifyReply, frame: () => Promise<LiveFrame>): void {
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.write('retry: 2000\n\n');
    const last = new Map<string, string>();
    const started = Date.now();
    let lastWrite = started;
    let timer: NodeJS.Timeout | undefined;
    let closed = false;
    const end = (): void => {
      if (closed) return;
      closed = true;
      clearTimeout(timer);
      this.open.delete(end);
      res.end();
    };
    this.open.add(end);
    req.raw.on('close', end);
    const tick = async (): Promise<void> => {
      let active = false;
      try {
        const f = await frame();
        active = f.active;
        for (const e of f.events) {
          const data = JSON.stringify(e.data);
          const key = e.event === 'html' ? `html:${(e.data as { id?: string }).id ?? ''}` : e.event;
          if (last.get(key) === data) continue;
          last.set(key, data);
          if (closed) return;
          res.write(`event: ${e.event}\ndata: ${data}\n\n`);
          lastWrite = Date.now();
        }
      } catch {
        // Redis away for a moment: keep the stream, look again later.
      }
      if (closed) return;
      if (Date.now() - lastWrite > KEEPALIVE_MS) {
        res.write(': keep-alive\n\n');
        lastWrite = Date.now();
      }
      if (Date.now() - started > MAX_STREAM_MS) return end();
      timer = setTimeout(() => void tick(), active ? FAST_MS : SLOW_MS);
    };
    void tick();
  }

  /** Ends every open stream (before the server closes: an open stream would hold it). */
  closeAll(): void {
    for (const end of [...this.open]) end();
  }
}
