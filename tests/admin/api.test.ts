import { rm } from 'node:fs/promises';
import { Queue, Worker } from 'bullmq';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config/schema.js';
import {
  DISPATCH_QUEUE,
  INFERENCE_JOB_OPTIONS,
  INFERENCE_QUEUE,
  inferenceJobId,
  instancesHash,
  studyInferenceJobId,
} from '../../src/queue/jobs.js';
import { Keys } from '../../src/stores/keys.js';
import { cleanup, freePort, testConfig, waitFor } from '../queue/helpers.js';
import { SHIPPED_VERSION } from '../helpers/model.js';
import {
  plainRedis,
  spoolSeries,
  startAdmin,
  trackSeries,
  writeDispatch,
  writeResult,
  type DaemonProcess,
  type http,
  type SeededSeries,
} from './helpers.js';

/**
 * The admin API and pages of `mlsam admin` (a real process, real Redis) over series in every state,
 * written with the real schemas (tracker hash, ResultRecord, DispatchState/Attempt, SR + SC files).
 * The end-to-end test (e2e.test.ts) covers a series that really went through the daemon.
 */
let config: Config;
let admin: DaemonProcess;
let get: ReturnType<typeof http>;
const redisUrl = 'redis://127.0.0.1:6379';
const redis = plainRedis(redisUrl);
const S: Record<string, SeededSeries> = {};
const AUTH: [string, string] = ['admin', 'api-test-secret'];

beforeAll(async () => {
  const deadPort = await freePort(); // a destination nobody listens on
  config = await testConfig('admin-api', {
    http: { username: AUTH[0], password: AUTH[1], showPhi: true },
    destinations: [{ name: 'pacs', aeTitle: 'PACS', host: '127.0.0.1', port: deadPort }],
    series: { quietPeriodSeconds: 30, routing: { minSlices: 3 } },
  });
  const now = Date.now();
  S.receiving = await spoolSeries(config, 3);
  await trackSeries(redis, config, S.receiving, { status: 'receiving', lastReceivedAt: now });
  S.waiting = await spoolSeries(config, 3);
  await trackSeries(redis, config, S.waiting, { status: 'receiving', lastReceivedAt: now - 12_000 });
  S.queued = await spoolSeries(config, 4);
  await trackSeries(redis, config, S.queued, { status: 'queued' });
  S.ignored = await spoolSeries(config, 3);
  await trackSeries(redis, config, S.ignored, { status: 'ignored', ignoreCode: 'modality', reason: 'modality MR not in [CT]' });
  S.notScored = await spoolSeries(config, 3);
  await trackSeries(redis, config, S.notScored, { status: 'queued' });
  await writeResult(redis, config, S.notScored, 'not-scored', { reason: 'too few axial slices: 2 < 3' });
  S.sent = await spoolSeries(config, 6, { patientName: 'DOE^JANE', patientId: 'PID-4711' });
  await trackSeries(redis, config, S.sent, { status: 'queued' });
  await writeResult(redis, config, S.sent, 'scored');
  await writeDispatch(redis, config, S.sent, 'pacs', 'sent');
  S.sendFailed = await spoolSeries(config, 5);
  await trackSeries(redis, config, S.sendFailed, { status: 'queued' });
  await writeResult(redis, config, S.sendFailed, 'scored', { score: 0.12 });
  await writeDispatch(redis, config, S.sendFailed, 'pacs', 'failed');
  // An association in the audit trail, as the listener records it (through AssociationAudit).
  const { AssociationAudit } = await import('../../src/stores/audit.js');
  const { createRedis, closeRedis } = await import('../../src/stores/redis.js');
  const { logger } = await import('../queue/helpers.js');
  const cmd = createRedis(redisUrl, 'command');
  await waitFor(async () => cmd.status === 'ready', 5_000, 'redis');
  await new AssociationAudit({ config, logger, redis: cmd }).associationEnded({
    id: 'a-1',
    callingAeTitle: 'PACS',
    calledAeTitle: 'MLSAM',
    callingHost: '127.0.0.1',
    startedAt: now - 70_000,
    endedAt: now - 65_000,
    instances: 6,
    bytes: 123_456,
    outcome: 'accepted-released',
  });
  await new Promise((r) => setTimeout(r, 200)); // the stats increment is fire-and-forget
  await closeRedis(cmd);

  ({ admin, get } = await startAdmin(config, AUTH));
});

afterAll(async () => {
  await admin?.stop();
  if (config) await cleanup(config);
  redis.disconnect();
});

type Summary = {
  seriesInstanceUid: string;
  status: string;
  statusText: string;
  reason?: string;
  sliceCount?: number;
  score?: number;
  category?: string;
  timings: Record<string, number>;
  callingAeTitle: string;
  quietRemainingSeconds?: number;
};

describe('admin API (mlsam admin, real Redis)', () => {
  it('GET /api/series lists every series with one status, reason, AE, slices, score, category and timings', async () => {
    // "receiving" means an instance within the last 5 s: arriving now, however long the admin took to start.
    await redis.hset(new Keys(config.redis.keyPrefix).series(S.receiving!.seriesInstanceUid), 'lastReceivedAt', String(Date.now()));
    // "waiting" 12 s into its 30 s quiet period, likewise counted from now (seeding and start-up take longer on a busy machine).
    await redis.hset(new Keys(config.redis.keyPrefix).series(S.waiting!.seriesInstanceUid), 'lastReceivedAt', String(Date.now() - 12_000));
    const res = await get('/api/series');
    expect(res.status).toBe(200);
    const list = (await res.json()) as Summary[];
    const by = new Map(list.map((s) => [s.seriesInstanceUid, s]));
    expect(by.size).toBe(7);
    expect(by.get(S.receiving!.seriesInstanceUid)?.status).toBe('receiving');
    const waiting = by.get(S.waiting!.seriesInstanceUid)!;
    expect(waiting.status).toBe('waiting');
    expect(waiting.statusText).toBe('waiting for the quiet period');
    expect(waiting.quietRemainingSeconds).toBeGreaterThan(10);
    expect(waiting.quietRemainingSeconds).toBeLessThanOrEqual(18);
    expect(by.get(S.queued!.seriesInstanceUid)?.status).toBe('queued');
    expect(by.get(S.ignored!.seriesInstanceUid)).toMatchObject({ status: 'ignored', reason: 'modality MR not in [CT]' });
    expect(by.get(S.notScored!.seriesInstanceUid)).toMatchObject({
      status: 'not-scored',
      statusText: 'not scored',
      reason: 'too few axial slices: 2 < 3',
    });
    const sent = by.get(S.sent!.seriesInstanceUid)!;
    expect(sent).toMatchObject({ status: 'sent', callingAeTitle: 'PACS', sliceCount: 6, score: 0.81, category: 'likely' });
    expect(sent.timings).toMatchObject({ waitMs: 31_000, decodeMs: 800, inferMs: 2_400, resultsMs: 450, totalMs: 4_100, dispatchMs: 420 });
    const failed = by.get(S.sendFailed!.seriesInstanceUid)!;
    expect(failed.status).toBe('failed');
    expect(failed.reason).toContain('send to pacs failed: association rejected');
  });

  it('GET /api/series/:uid gives the record, dispatch states and attempts, and PHI when http.showPhi', async () => {
    const res = await get(`/api/series/${S.sent!.seriesInstanceUid}`);
    expect(res.status).toBe(200);
    const d = (await res.json()) as {
      result: { slices: unknown[] };
      dispatch: { status: string }[];
      attempts: { outcome: string; attempt: number }[];
      patient: { patientName: string; patientId: string };
    };
    expect(d.result.slices).toHaveLength(6);
    expect(d.dispatch).toEqual([expect.objectContaining({ destination: 'pacs', status: 'sent', attempts: 2 })]);
    expect(d.attempts.map((a) => [a.attempt, a.outcome])).toEqual([
      [2, 'sent'],
      [1, 'failed'],
    ]);
    expect(d.patient).toEqual({ patientName: 'DOE JANE', patientId: 'PID-4711' });
    expect((await get('/api/series/1.2.3.4.5')).status).toBe(404);
    expect((await get('/api/series/not-a-uid')).status).toBe(404);
  });

  it('GET /api/series/:uid/sr reads the SR file into a content tree and text', async () => {
    const res = await get(`/api/series/${S.sent!.seriesInstanceUid}/sr`);
    expect(res.status).toBe(200);
    const sr = (await res.json()) as { title: string; verificationFlag: string; text: string };
    expect(sr.title).toBe('Imaging Measurement Report');
    expect(sr.verificationFlag).toBe('UNVERIFIED');
    expect(sr.text).toContain('CONTAINS CODE Finding = COVID-19');
    expect(sr.text).toContain('CONTAINS NUM Series probability = 0.81');
    expect(sr.text).toContain('CONTAINS TEXT Comment = NOT FOR DIAGNOSTIC USE');
  });

  it('GET /api/series/:uid/images/:sop.png decodes the SC RGB pixels into a PNG', async () => {
    const hm = S.sent!.record!.outputs!.find((o) => o.kind === 'heatmap')!;
    const res = await get(`/api/series/${S.sent!.seriesInstanceUid}/images/${hm.sopInstanceUid}.png`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('image/png');
    const png = Buffer.from(await res.arrayBuffer());
    const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height, info.channels]).toEqual([64, 48, 3]);
    const px = (x: number, y: number): number[] => [...data.subarray((y * 64 + x) * 3, (y * 64 + x) * 3 + 3)];
    expect(px(0, 0)).toEqual([0, 0, 128]);
    expect(px(63, 0)).toEqual([255, 0, 128]);
    expect(px(0, 47)).toEqual([0, 255, 128]);
    // Only the series' own result images are served.
    const srSop = S.sent!.record!.outputs!.find((o) => o.kind === 'sr')!.sopInstanceUid;
    expect((await get(`/api/series/${S.sent!.seriesInstanceUid}/images/${srSop}.png`)).status).toBe(404);
  });

  it('GET /api/associations and /api/queues', async () => {
    const a = (await (await get('/api/associations')).json()) as { id: string; bytes: number }[];
    expect(a).toEqual([expect.objectContaining({ id: 'a-1', bytes: 123_456 })]);
    const q = (await (await get('/api/queues')).json()) as Record<string, Record<string, number>>;
    expect(Object.keys(q).sort()).toEqual([DISPATCH_QUEUE, INFERENCE_QUEUE]);
    expect(q[INFERENCE_QUEUE]).toHaveProperty('waiting');
  });

  it('GET /api/results/undispatched lists results not yet sent to every destination', async () => {
    const r = await get('/api/results/undispatched');
    expect(r.status).toBe(200);
    const list = (await r.json()) as {
      seriesInstanceUid: string;
      files: string[];
      reason: string;
      destinations: { name: string; status: string }[];
    }[];
    const uids = list.map((x) => x.seriesInstanceUid);
    expect(uids).toContain(S.sendFailed!.seriesInstanceUid);
    expect(uids).not.toContain(S.sent!.seriesInstanceUid);
    const failed = list.find((x) => x.seriesInstanceUid === S.sendFailed!.seriesInstanceUid)!;
    expect(failed.files.length).toBeGreaterThan(0);
    expect(failed).toMatchObject({ reason: 'not-sent', destinations: [{ name: 'pacs', status: 'failed' }] });
  });

  it('pages: the series list, a series page with chart data, heatmaps, SR, dispatch attempts and PHI, the associations page', async () => {
    const list = await (await get('/admin')).text();
    for (const s of Object.values(S)) expect(list).toContain(`data-series-uid="${s.seriesInstanceUid}"`);
    expect(list).toContain('waiting for the quiet period');
    const page = await (await get(`/admin/series/${S.sent!.seriesInstanceUid}`)).text();
    expect(page).toContain('id="chart-data"');
    expect(page).toContain('/admin/static/uPlot.iife.min.js');
    expect(page.match(/class="heatmap"/g)).toHaveLength(2);
    expect(page).toContain('Series probability');
    expect(page).toContain('DOE JANE');
    expect(page).toContain('id="attempts"');
    expect(page).toContain('NOT FOR DIAGNOSTIC USE');
    const js = await get('/admin/static/uPlot.iife.min.js');
    expect(js.status).toBe(200);
    expect((await js.text()).length).toBeGreaterThan(10_000);
    expect(await (await get('/admin/associations')).text()).toContain('120.6 KiB');
    expect((await get('/admin/queues')).status).toBe(200);
  });

  it('a series whose job a worker runs shows "scoring" with the job\'s progress', async () => {
    const s = await spoolSeries(config, 3);
    await trackSeries(redis, config, s, { status: 'queued' });
    const connection = { host: '127.0.0.1', port: 6379 };
    const queue = new Queue(INFERENCE_QUEUE, { connection, prefix: config.redis.keyPrefix });
    let release: () => void = () => undefined;
    const hold = new Promise<void>((r) => (release = r));
    const worker = new Worker(
      INFERENCE_QUEUE,
      async (job) => {
        if (job.id !== inferenceJobId(s.seriesInstanceUid, s.instancesHash)) return; // only this test's job
        await job.updateProgress({ done: 5, total: 20 });
        await hold;
      },
      { connection: { ...connection, maxRetriesPerRequest: null }, prefix: config.redis.keyPrefix },
    );
    try {
      await queue.add(
        'score',
        {
          studyInstanceUid: s.studyInstanceUid,
          seriesInstanceUid: s.seriesInstanceUid,
          seriesDir: s.seriesDir,
          instanceCount: 3,
          instancesHash: s.instancesHash,
          callingAeTitle: 'PACS',
          firstReceivedAt: new Date().toISOString(),
          lastReceivedAt: new Date().toISOString(),
          enqueuedBy: 'tracker',
        },
        { ...INFERENCE_JOB_OPTIONS, jobId: inferenceJobId(s.seriesInstanceUid, s.instancesHash) },
      );
      const summary = await waitFor(
        async () => {
          const d = (await (await get(`/api/series/${s.seriesInstanceUid}`)).json()) as Summary & { progress?: number };
          return d.status === 'scoring' && d.progress ? d : undefined;
        },
        10_000,
        'scoring with progress',
      );
      expect(summary.progress).toBe(25);
      const list = await (await get('/admin')).text();
      expect(list).toContain('scoring 25%');
    } finally {
      release();
      await worker.close();
      await queue.close();
    }
  });

  it('pages escape what they show (a hostile calling AE title)', async () => {
    const s = await spoolSeries(config, 3);
    await trackSeries(redis, config, s, { status: 'queued' });
    await redis.hset(new Keys(config.redis.keyPrefix).series(s.seriesInstanceUid), 'callingAeTitle', '<script>x</script>');
    const list = await (await get('/admin')).text();
    expect(list).not.toContain('<script>x</script>');
    expect(list).toContain('&lt;script&gt;x&lt;/script&gt;');
    await redis.del(new Keys(config.redis.keyPrefix).series(s.seriesInstanceUid));
    await redis.zrem(new Keys(config.redis.keyPrefix).seriesIndex(), s.seriesInstanceUid);
    await rm(s.seriesDir, { recursive: true, force: true });
  });

  it('/metrics: associations, instances, bytes, series outcomes, queue depths, stage histograms, dispatch counters, model info', async () => {
    const body = await (await get('/metrics')).text();
    expect(body).toContain('mlsam_associations_total{outcome="accepted-released",calling_ae="PACS"} 1');
    expect(body).toContain('mlsam_instances_received_total{calling_ae="PACS"} 6');
    expect(body).toContain('mlsam_bytes_received_total{calling_ae="PACS"} 123456');
    expect(body).toContain('mlsam_series_completed_total{model="mlsam-mobilenetv2",version="1.0.0"} 2');
    expect(body).toContain('mlsam_series_not_scored_total{reason="too_few_axial_slices"} 1');
    expect(body).toContain('mlsam_series_ignored_total{reason="modality"} 1');
    expect(body).toContain('mlsam_slices_scored_total{model="mlsam-mobilenetv2",version="1.0.0"} 11');
    expect(body).toMatch(/mlsam_slices_per_second \d+(\.\d+)?/);
    expect(body).toContain('mlsam_queue_jobs{queue="inference",state="waiting"} 0');
    expect(body).toContain('mlsam_stage_duration_seconds_bucket{stage="infer",le="2.5"} 2');
    expect(body).toContain('mlsam_stage_duration_seconds_bucket{stage="infer",le="1"} 0');
    expect(body).toContain('mlsam_stage_duration_seconds_count{stage="dispatch"} 3');
    expect(body).toContain('mlsam_dispatch_successes_total{destination="pacs"} 1');
    expect(body).toContain('mlsam_dispatch_failures_total{destination="pacs"} 2');
    expect(body).toContain('mlsam_dispatch_retries_total{destination="pacs"} 1');
    // model info is the shipped model the admin loads (the seeded records above carry 1.0.0)
    expect(body).toMatch(
      new RegExp(
        `mlsam_model_info\\{name="mlsam-mobilenetv2",version="${SHIPPED_VERSION.replace(/\./g, '\\.')}",sha256="[0-9a-f]{64}"\\} 1`,
      ),
    );
    // Scraping again counts nothing twice.
    const again = await (await get('/metrics')).text();
    expect(again).toContain('mlsam_series_completed_total{model="mlsam-mobilenetv2",version="1.0.0"} 2');
    expect(again).toContain('mlsam_dispatch_successes_total{destination="pacs"} 1');
  });

  it('actions: force completion settles a receiving series at once; re-score adds an admin job; re-send re-queues the dispatch', async () => {
    const post = (path: string): Promise<Response> => get(path, { method: 'POST' });
    const force = await post(`/api/series/${S.receiving!.seriesInstanceUid}/force`);
    expect(force.status).toBe(200);
    // One result per study (the default): the series' study is settled, one job for the study's content.
    const studyJobId = studyInferenceJobId(
      S.receiving!.studyInstanceUid,
      instancesHash([`${S.receiving!.seriesInstanceUid}:${S.receiving!.instancesHash}`]),
    );
    expect(await force.json()).toMatchObject({ ok: true, action: 'force', jobId: studyJobId });
    const queue = new Queue(INFERENCE_QUEUE, { connection: { host: '127.0.0.1', port: 6379 }, prefix: config.redis.keyPrefix });
    try {
      const forced = await queue.getJob(studyJobId);
      expect(forced?.data).toMatchObject({ enqueuedBy: 'admin', instanceCount: 3 });

      const rescore = (await (await post(`/api/series/${S.sent!.seriesInstanceUid}/rescore`)).json()) as { ok: boolean; jobId: string };
      expect(rescore.ok).toBe(true);
      expect(rescore.jobId).toMatch(new RegExp(`^${inferenceJobId(S.sent!.seriesInstanceUid, S.sent!.instancesHash)}-admin-\\d+$`));
      const job = await queue.getJob(rescore.jobId);
      expect(job?.data).toMatchObject({ enqueuedBy: 'admin', instancesHash: S.sent!.instancesHash, seriesDir: S.sent!.seriesDir });
      const after = (await (await get(`/api/series/${S.sent!.seriesInstanceUid}`)).json()) as Summary;
      expect(after.status).toBe('queued');
    } finally {
      await queue.close();
    }

    const resend = (await (await post(`/api/series/${S.sendFailed!.seriesInstanceUid}/resend`)).json()) as {
      ok: boolean;
      jobIds: string[];
    };
    expect(resend.ok).toBe(true);
    expect(resend.jobIds).toHaveLength(1);
    const dq = new Queue(DISPATCH_QUEUE, { connection: { host: '127.0.0.1', port: 6379 }, prefix: config.redis.keyPrefix });
    try {
      const j = await dq.getJob(resend.jobIds[0]!);
      expect(j?.data).toMatchObject({ destination: 'pacs', enqueuedBy: 'admin' });
      expect((j!.data as { files: string[] }).files).toHaveLength(3);
    } finally {
      await dq.close();
    }
    // Nothing to send: a clear refusal.
    const none = await post(`/api/series/${S.notScored!.seriesInstanceUid}/resend`);
    expect(none.status).toBe(409);
    expect(((await none.json()) as { message: string }).message).toContain('nothing to send');
    // The page's form posts redirect back with a message.
    const form = await post(`/admin/series/${S.queued!.seriesInstanceUid}/force`);
    expect(form.status).toBe(303);
    expect(form.headers.get('location')).toContain(`/admin/series/${S.queued!.seriesInstanceUid}?ok=1`);
  });
});
