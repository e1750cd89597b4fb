import type { Command } from 'commander';
import { loadConfig } from '../config/load.js';
import { resolveModelPath } from '../model/model-path.js';
import { createLogger } from '../log.js';
import { bandsLegend, scoreWithBand } from '../model/category-band.js';
import { THICK_SLICE_NOTE_MM } from '../model/opacity.js';
import { patternWording } from '../model/pattern-rule.js';
import { ZONE_NAMES } from '../model/zones.js';
import type { ScoreProgress, ScoreResult } from '../scoring/score.js';

interface ScoreFlags {
  json?: boolean;
  batchSize?: string;
  model?: string;
  threads?: string;
  keyAttention?: boolean;
  quiet?: boolean;
}

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

/**
 * The log level of `mlsam score`: the report on stdout is what a person reads, so on a terminal the
 * logs (stderr) keep to warnings unless MLSAM_LOG__LEVEL asks for more; --quiet keeps to errors.
 */
export function scoreLogLevel(configured: string, o: { quiet: boolean; terminal: boolean; levelFromEnv: boolean }): string {
  const atLeast = (min: string): string => (LEVELS.indexOf(configured) >= LEVELS.indexOf(min) ? configured : min);
  if (o.quiet) return atLeast('error');
  if (o.terminal && !o.levelFromEnv) return atLeast('warn');
  return configured;
}

function positiveInt(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`score: --${name} must be a positive integer, got ${v}`);
  return n;
}

const fmt = (p: number): string => p.toFixed(4);
/** "1 slice", "148 slices". */
const plural = (n: number, one: string, many = `${one}s`): string => `${n} ${n === 1 ? one : many}`;

/** How the series score was made, and what "k of N eligible slices" means. */
function howScored(s: ScoreResult['series'][number]): string[] {
  if (s.fusion !== 'cnn+opacity') {
    return [`  how: the CNN alone (no Hounsfield units to measure the lungs), mean of the top ${plural(s.k, 'slice')} of ${s.slices}`];
  }
  const out = [
    `  how: CNN ${fmt(s.cnnScore)} fused with the lungs' opacity burden; the score uses the ${plural(s.k, 'slice')} with the highest probability among the ${s.eligibleSlices} eligible`,
  ];
  const others = s.slices - s.eligibleSlices;
  const rule =
    s.minLungFraction !== undefined ? `at least ${Math.round(100 * s.minLungFraction)} % of the series' largest lung area` : 'enough lung';
  out.push(
    `  eligible: ${s.eligibleSlices} of ${plural(s.slices, 'slice')} show enough lung to count (${rule})` +
      (others > 0
        ? `; the other ${others} (lung apex and bases, above or below the lungs) never drive the score and are never key slices`
        : ''),
  );
  return out;
}

/** The plain-text report `mlsam score` prints without --json. Slices are numbered 1… in scan order, as on the dashboard. */
export function formatReport(r: ScoreResult): string {
  const out: string[] = [];
  out.push(`model ${r.model.name} ${r.model.version}${r.model.provisional ? ' (PROVISIONAL)' : ''} — NOT FOR DIAGNOSTIC USE`);
  for (const s of r.series) {
    out.push('');
    const id = s.seriesInstanceUid ?? `image ${s.keySlices[0]?.file ?? ''}`;
    const band = { threshold: s.threshold, indeterminateMargin: s.indeterminateMargin };
    out.push(`series ${id}: ${plural(s.slices, 'slice')}`);
    out.push(`  score ${scoreWithBand(s.score, s.category, band, { scoreDigits: 4 })}  [${bandsLegend(band)}; threshold ${s.threshold}]`);
    out.push(...howScored(s));
    if (s.opacity) {
      const o = s.opacity;
      const line = (name: string, m: typeof o.total) =>
        `    ${name.padEnd(6)} lung ${m.lungMl.toFixed(0).padStart(5)} mL  opacity ${m.percentOpacity.toFixed(2).padStart(6)} % (${m.opacityMl.toFixed(1)} mL)  high opacity ${m.percentHighOpacity.toFixed(2).padStart(6)} % (${m.highOpacityMl.toFixed(1)} mL)`;
      const slices = o.sliceThicknessMm !== undefined ? `${o.sliceThicknessMm} mm slices` : 'slice thickness not given';
      out.push(
        `  opacity (${o.method}, ${o.opacityHu[0]}…${o.opacityHu[1]} HU; high ${o.highOpacityHu[0]}…${o.highOpacityHu[1]} HU; ` +
          `${slices}, ground-glass opening ${o.groundGlassOpenMm} mm):`,
      );
      out.push(line('total', o.total), line('right', o.right), line('left', o.left));
      if (o.sliceThicknessMm !== undefined && o.sliceThicknessMm > THICK_SLICE_NOTE_MM) {
        out.push('    thick slices: partial volume makes the opacity less exact than on thin slices');
      }
    }
    if (s.pattern) {
      const p = s.pattern;
      const f = p.features;
      const pc = (x: number): string => `${Math.round(100 * x)} %`;
      out.push(
        `  pattern (automated description, not a diagnosis; rule ${p.rule}): ${patternWording(p.category)}${p.criteria.length ? ` — ${p.criteria.join('; ')}` : ''}`,
      );
      out.push(
        `    outer third ${pc(f.peripheralShare)} (lung ${pc(f.lungPeripheralShare)}), dorsal ${pc(f.dorsalShare)} (lung ${pc(f.lungDorsalShare)}), ` +
          `lower zone ${pc(f.zoneShare.lower)} (lung ${pc(f.lungZoneShare.lower)}), ground glass ${pc(f.groundGlassShare)}, ` +
          `${f.foci} foci ≥ 1 cm + ${f.smallFoci} smaller, roundness ${f.roundness === null ? 'n/a' : f.roundness.toFixed(2)}`,
      );
    }
    const mine = r.slices.filter(
      (sl) => sl.seriesInstanceUid === s.seriesInstanceUid && (s.seriesInstanceUid !== null || sl.file === s.keySlices[0]?.file),
    );
    const instanceOf = new Map(mine.map((sl) => [sl.index, sl.instanceNumber]));
    const sliceLabel = (index: number): string => {
      const inst = instanceOf.get(index);
      return `slice ${String(index + 1).padStart(3)}${inst !== undefined && inst !== null ? `  instance ${String(inst).padStart(4)}` : ''}`;
    };
    if (s.zones) {
      const z = s.zones;
      out.push(
        `  zones (thirds of each lung's craniocaudal extent; zone score ${z.score}/30, Pan et al. extent bins per zone, not the lobar CT severity score):`,
      );
      for (const side of ['right', 'left'] as const) {
        for (const name of ZONE_NAMES) {
          const m = z[side][name];
          out.push(
            `    ${`${side} ${name}`.padEnd(12)} lung ${m.lungMl.toFixed(0).padStart(5)} mL  opacity ${m.percentOpacity.toFixed(2).padStart(6)} %  high opacity ${m.percentHighOpacity.toFixed(2).padStart(6)} %  score ${m.score}`,
          );
        }
      }
    }
    out.push(`  key slices (slice number in scan order, from 1; DICOM instance number):`);
    for (const k of s.keySlices) {
      const op = k.opacityPercent !== undefined ? `  opacity ${k.opacityPercent.toFixed(1)} %` : '';
      out.push(
        `    ${sliceLabel(k.index)}  ${fmt(k.probability)} (CNN ${fmt(k.cnnProbability)})${op}  ${k.sopInstanceUid ?? '-'}  ${k.file}`,
      );
    }
    out.push("  slices in scan order: slice, instance, probability, CNN, opacity % of the slice's lung");
    for (const sl of mine) {
      const op = sl.opacityPercent !== undefined ? `  ${sl.opacityPercent.toFixed(1).padStart(5)} %` : '';
      const el = sl.eligible === false ? '  (not eligible: little lung)' : '';
      const inst = sl.instanceNumber !== undefined && sl.instanceNumber !== null ? String(sl.instanceNumber) : '-';
      out.push(
        `    ${String(sl.index + 1).padStart(4)}  ${inst.padStart(5)}  ${fmt(sl.probability)}  ${fmt(sl.cnnProbability)}${op}${el}  ${sl.sopInstanceUid ?? '-'}  ${sl.file}`,
      );
    }
    if (s.dropped.length) {
      out.push(`  not scored (${s.dropped.length}):`);
      for (const d of s.dropped) out.push(`    ${d.file}: ${d.reason}`);
    }
  }
  for (const n of r.notScored) {
    out.push('');
    out.push(`series ${n.seriesInstanceUid ?? n.file ?? '?'}: NOT SCORED: ${n.reason}`);
    for (const d of n.dropped) out.push(`    ${d.file}: ${d.reason}`);
  }
  if (r.skipped.length) {
    out.push('');
    out.push(`skipped files (${r.skipped.length}):`);
    for (const s of r.skipped) out.push(`  ${s.file}: ${s.reason}`);
  }
  out.push('');
  out.push(`${plural(r.timing.slicesScored, 'slice')} in ${r.timing.seconds.toFixed(1)} s (${r.timing.slicesPerSecond} slices/s)`);
  return `${out.join('\n')}\n`;
}

export function registerScore(program: Command): void {
  program
    .command('score')
    .description('run the model on DICOM files (any accepted transfer syntax) and PNG/JPEG images; print per-slice and per-series scores')
    .argument('<paths...>', 'files or folders (walked recursively); each PNG/JPEG file is its own one-slice series')
    .option('--json', 'print one JSON object on stdout')
    .option('--batch-size <n>', 'slices per model run (memory is bounded by this)', '16')
    .option('--model <path>', 'ONNX model file (its .json metadata beside it); default: config model.path')
    .option('--threads <n>', 'onnxruntime intra-op threads (default: onnxruntime decides)')
    .option('--key-attention', "include each key slice's attention map (inside the lungs) and finding region in --json output")
    .option(
      '--quiet',
      'no progress line and no logs but errors on stderr (on a terminal logs keep to warnings anyway, unless MLSAM_LOG__LEVEL is set)',
    )
    .action(async (paths: string[], flags: ScoreFlags) => {
      const config = loadConfig();
      const terminal = process.stdout.isTTY === true || process.stderr.isTTY === true;
      const logger = createLogger(
        scoreLogLevel(config.log.level, {
          quiet: flags.quiet === true,
          terminal,
          levelFromEnv: process.env.MLSAM_LOG__LEVEL !== undefined,
        }),
      );
      const modelPath = resolveModelPath(flags.model ?? config.model.path);
      const batchSize = positiveInt('batch-size', flags.batchSize);
      const threads = positiveInt('threads', flags.threads);
      const tty = process.stderr.isTTY === true && flags.quiet !== true;
      const onProgress = tty
        ? (p: ScoreProgress) => {
            process.stderr.write(`\rseries ${p.seriesIndex + 1}/${p.seriesCount}: ${p.done}/${p.total} slices   `);
            if (p.done === p.total) process.stderr.write('\n');
          }
        : undefined;
      const { scoreFiles } = await import('../scoring/score.js');
      const result = await scoreFiles(paths, {
        modelPath,
        providers: config.model.providers,
        batchSize,
        threads,
        keyAttention: flags.keyAttention === true,
        logger,
        onProgress,
      });
      if (flags.json) process.stdout.write(`${JSON.stringify(result)}\n`);
      else process.stdout.write(formatReport(result));
      // 0: at least one series scored; 2: nothing could be scored.
      if (result.series.length === 0) process.exitCode = 2;
    });
}
