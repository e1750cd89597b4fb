/**
 * The pointing game on the shared real series (COVID-CT-MD, slice labels in slice_labels.csv): for every slice
 * labelled infected, does the peak of the CNN's attention (inside the lungs, as the key-slice pass computes it)
 * fall inside the measured opacity mask? Also within 5 mm of it, and the chance level: the share of the lung the
 * opacity covers on that slice (where a point drawn at random in the lung would land).
 *
 *   npm run build && node dist/bench/pointing-game.js [../shared/data/covid-ct-md] [--json]
 *
 * Prints a table per series and pooled. The model card quotes it.
 */
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { loadConfig } from '../config/load.js';
import { readDicomHeaderFile } from '../dicom/decode/index.js';
import { attentionPeak, maskAttention } from '../model/regions.js';
import { dilate } from '../model/morphology.js';
import { sliceSize } from '../model/preprocess.js';
import { resolveModelPath } from '../model/model-path.js';
import { ModelSession } from '../model/session.js';
import { prepareFull, type PrepareSpec } from '../scoring/slice-preparer.js';

interface SeriesResult {
  series: string;
  positives: number;
  /** Positive slices with any measured opacity (the game is played on these). */
  withOpacity: number;
  hits: number;
  hitsWithin5mm: number;
  /** Mean over the played slices of opacity area / lung area. */
  chance: number;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const json = args.includes('--json');
  const root = path.resolve(args.find((a) => !a.startsWith('--')) ?? path.join(process.cwd(), '..', 'shared', 'data', 'covid-ct-md'));
  const labels = readFileSync(path.join(root, 'slice_labels.csv'), 'utf8')
    .trim()
    .split('\n')
    .slice(1)
    .map((l) => l.split(','));
  const positive = new Map<string, Set<string>>();
  for (const [series, sop, , , label] of labels) {
    if (label !== '1' || !series || !sop) continue;
    const s = positive.get(series) ?? new Set<string>();
    s.add(sop);
    positive.set(series, s);
  }
  const session = await ModelSession.load(resolveModelPath(loadConfig().model.path), { providers: ['cpu'], batchSize: 1 });
  const meta = session.metadata;
  if (!meta.quantification) throw new Error('the model has no quantification');
  const spec: PrepareSpec = { preprocessing: meta.preprocessing, quantification: meta.quantification };
  const results: SeriesResult[] = [];
  for (const [series, sops] of [...positive].sort()) {
    const dir = path.join(root, series);
    const r: SeriesResult = { series, positives: 0, withOpacity: 0, hits: 0, hitsWithin5mm: 0, chance: 0 };
    for (const name of readdirSync(dir)
      .filter((n) => n.endsWith('.dcm'))
      .sort()) {
      const file = path.join(dir, name);
      const h = await readDicomHeaderFile(file);
      if (!h.sopInstanceUid || !sops.has(h.sopInstanceUid)) continue;
      r.positives++;
      const input = new Float32Array(sliceSize(spec.preprocessing));
      const p = await prepareFull(file, 'dicom', spec, input, 0);
      const a = p.analysis;
      if (!a) continue;
      const [out] = await session.scorePrepared(input, 1);
      if (!out) continue;
      let lungPx = 0;
      let opPx = 0;
      for (let i = 0; i < a.segmentation.lung.data.length; i++) {
        if (a.segmentation.lung.data[i]) lungPx++;
        if (a.masks.opacity.data[i]) opPx++;
      }
      if (opPx === 0) continue;
      const { width: W, height: H } = p.image;
      const att = maskAttention(
        { width: out.attentionWidth, height: out.attentionHeight, data: out.attention },
        p.crop.box,
        a.segmentation.lung,
        W,
        H,
      );
      const peak = attentionPeak(att);
      if (!peak) continue;
      r.withOpacity++;
      r.chance += opPx / lungPx;
      const m = a.masks.opacity;
      const gx = Math.min(m.width - 1, Math.floor((peak[0] * m.width) / W));
      const gy = Math.min(m.height - 1, Math.floor((peak[1] * m.height) / H));
      if (m.data[gy * m.width + gx]) r.hits++;
      const near = dilate(m, 5 / Math.sqrt(a.grid.pxMm[0] * a.grid.pxMm[1]));
      if (near.data[gy * m.width + gx]) r.hitsWithin5mm++;
    }
    if (r.withOpacity) r.chance /= r.withOpacity;
    results.push(r);
  }
  await session.release();
  const pooled = results.reduce<SeriesResult>(
    (t, r) => ({
      series: 'pooled',
      positives: t.positives + r.positives,
      withOpacity: t.withOpacity + r.withOpacity,
      hits: t.hits + r.hits,
      hitsWithin5mm: t.hitsWithin5mm + r.hitsWithin5mm,
      chance: t.chance + r.chance * r.withOpacity,
    }),
    { series: 'pooled', positives: 0, withOpacity: 0, hits: 0, hitsWithin5mm: 0, chance: 0 },
  );
  if (pooled.withOpacity) pooled.chance /= pooled.withOpacity;
  const all = [...results, pooled];
  if (json) {
    process.stdout.write(`${JSON.stringify({ model: `${meta.name} ${meta.version}`, results: all })}\n`);
    return;
  }
  const pct = (n: number, d: number) => (d ? `${((100 * n) / d).toFixed(0)} %` : '-');
  process.stdout.write(
    `${meta.name} ${meta.version}: attention peak (inside the lungs) of slices labelled infected vs the measured opacity mask\n`,
  );
  process.stdout.write(
    '| series | labelled infected | with opacity | peak inside opacity | within 5 mm | chance (opacity share of lung) |\n|---|---|---|---|---|---|\n',
  );
  for (const r of all) {
    process.stdout.write(
      `| ${r.series} | ${r.positives} | ${r.withOpacity} | ${r.hits} (${pct(r.hits, r.withOpacity)}) | ${r.hitsWithin5mm} (${pct(r.hitsWithin5mm, r.withOpacity)}) | ${(100 * r.chance).toFixed(1)} % |\n`,
    );
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
