/**
 * Where results go, target by target (issue 25): every destination (DICOM C-STORE, DICOMweb
 * STOW-RS) and notification (HL7 ORU, FHIR, webhook) with its latest attempt and its counts.
 *   GET /admin/targets    page
 *   GET /api/targets      JSON
 *   GET /metrics/targets  Prometheus text: mlsam_target_attempts_total{target,type,outcome},
 *                         mlsam_target_last_attempt_timestamp_seconds{target,type}, mlsam_target_last_ok{target,type}
 * A fastify plugin, registered by src/admin/server.ts under its basic auth.
 */
import type { FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import type { Config } from '../config/schema.js';
import { TargetStatusStore, type TargetStatus } from '../stores/target-status.js';
import { allTargets, describeTarget, type DispatchTarget } from '../config/dispatch-targets.js';
import { esc, layout } from './pages.js';

export interface TargetsPluginOptions {
  config: Config;
  redis: Redis;
}

export interface TargetView {
  name: string;
  type: string;
  description: string;
  sent: number;
  failed: number;
  last: TargetStatus['last'] | null;
}

const typeOf = (t: DispatchTarget): string => (t.kind === 'dimse' ? 'dicom' : t.kind === 'dicomweb' ? 'dicomweb' : t.notification.type);

export async function targetViews(config: Config, redis: Redis): Promise<TargetView[]> {
  const targets = allTargets(config);
  const status = await new TargetStatusStore(redis, config.redis.keyPrefix).all(targets.map((t) => t.name));
  return targets.map((t) => {
    const s = status.get(t.name) ?? { sent: 0, failed: 0 };
    return { name: t.name, type: typeOf(t), description: describeTarget(t), sent: s.sent, failed: s.failed, last: s.last ?? null };
  });
}

export function targetsPage(views: readonly TargetView[]): string {
  const rows = views.map((v) => {
    const l = v.last;
    const badge = !l
      ? '<span class="muted">never tried</span>'
      : `<span class="badge s-${l.outcome === 'sent' ? 'sent' : 'failed'}">${l.outcome === 'sent' ? 'delivered' : l.parked ? 'failed, parked' : 'failed, will retry'}</span>`;
    return `<tr data-target="${esc(v.name)}"><td><b>${esc(v.name)}</b></td><td>${esc(v.type)}</td><td class="mono">${esc(v.description)}</td><td>${badge}</td>
<td>${l ? `${esc(l.at.replace('T', ' ').slice(0, 19))} UTC, <a href="/admin/series/${esc(l.seriesInstanceUid)}">series</a>, attempt ${esc(l.attempt)}` : ''}</td><td>${esc(l?.error ?? '')}</td><td>${esc(v.sent)}</td><td>${esc(v.failed)}</td></tr>`;
  });
  const body = `<h1>Targets</h1>
<p>Every place results go: DICOM and DICOMweb destinations (the result objects) and notifications (HL7 ORU, FHIR, webhook). Failed deliveries are retried with backoff, then parked; retry them from a series page or <a href="/admin/queues">Queues</a>. Per series, the Dispatch table of its page says which went out.</p>
${
  views.length
    ? `<table id="targets"><thead><tr><th>Name</th><th>Type</th><th>Where</th><th>Last result</th><th>Last attempt</th><th>Last error</th><th>Delivered</th><th>Failed attempts</th></tr></thead><tbody>${rows.join('')}</tbody></table>`
    : '<p class="card info" id="targets">No destinations or notifications are configured (config keys <span class="mono">destinations</span> and <span class="mono">notifications</span>).</p>'
}
<p class="notice">NOT FOR DIAGNOSTIC USE</p>`;
  return layout('Targets', body, { refreshSeconds: 15 });
}

const label = (v: string): string => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

export function targetsMetrics(views: readonly TargetView[]): string {
  const lines = [
    '# HELP mlsam_target_attempts_total Delivery attempts per target and outcome (destinations and notifications).',
    '# TYPE mlsam_target_attempts_total counter',
    ...views.flatMap((v) =>
      (['sent', 'failed'] as const).map(
        (o) => `mlsam_target_attempts_total{target="${label(v.name)}",type="${v.type}",outcome="${o}"} ${o === 'sent' ? v.sent : v.failed}`,
      ),
    ),
    '# HELP mlsam_target_last_attempt_timestamp_seconds Time of the latest attempt per target.',
    '# TYPE mlsam_target_last_attempt_timestamp_seconds gauge',
    ...views
      .filter((v) => v.last)
      .map(
        (v) => `mlsam_target_last_attempt_timestamp_seconds{target="${label(v.name)}",type="${v.type}"} ${Date.parse(v.last!.at) / 1000}`,
      ),
    '# HELP mlsam_target_last_ok 1 when the latest attempt to the target delivered, 0 when it failed.',
    '# TYPE mlsam_target_last_ok gauge',
    ...views
      .filter((v) => v.last)
      .map((v) => `mlsam_target_last_ok{target="${label(v.name)}",type="${v.type}"} ${v.last!.outcome === 'sent' ? 1 : 0}`),
  ];
  return `${lines.join('\n')}\n`;
}

export async function targetsPlugin(app: FastifyInstance, opts: TargetsPluginOptions): Promise<void> {
  const views = () => targetViews(opts.config, opts.redis);
  app.get('/admin/targets', async (_req, reply) => reply.type('text/html; charset=utf-8').send(targetsPage(await views())));
  app.get('/api/targets', async () => views());
  app.get('/metrics/targets', async (_req, reply) =>
    reply.type('text/plain; version=0.0.4; charset=utf-8').send(targetsMetrics(await views())),
  );
}
