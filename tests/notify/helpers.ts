import { execFile } from 'node:child_process';
import type { Config } from '../../src/config/schema.js';
import type { ResultRecord } from '../../src/contracts/result-record.js';
import { extentScore } from '../../src/model/zones.js';
import { Keys } from '../../src/stores/keys.js';
import { ResultStore } from '../../src/stores/result-store.js';
import type { Harness } from '../worker/dispatch/helpers.js';

/** The record as the inference worker leaves it in Redis (notifications read it from there). */
export async function storeRecord(h: Harness, config: Config, record: ResultRecord): Promise<void> {
  const ok = await new ResultStore(await h.ready(), new Keys(config.redis.keyPrefix)).write(record, 'take');
  if (!ok) throw new Error('record not written');
}

/** A measured opacity block for test records. */
export function opacityOf(percentOpacity: number, percentHighOpacity: number): NonNullable<ResultRecord['opacity']> {
  const lungMl = 4200;
  const m = {
    lungMl,
    opacityMl: (lungMl * percentOpacity) / 100,
    highOpacityMl: (lungMl * percentHighOpacity) / 100,
    percentOpacity,
    percentHighOpacity,
  };
  return { method: 'hu-threshold', opacityHu: [-750, -300], highOpacityHu: [-300, 50], total: m, left: m, right: m };
}

/**
 * Lung zones for test records: the six zones' % opacity given right upper → left lower, each zone
 * 700 mL of lung, the zone bins (src/model/zones.ts extentScore) and their sum, the zone score.
 */
export function zonesOf(percents: [number, number, number, number, number, number]): NonNullable<ResultRecord['zones']> {
  const bin = (p: number): number => extentScore(p);
  const zone = (p: number, i: number) => ({
    lungMl: 700,
    opacityMl: (700 * p) / 100,
    highOpacityMl: (700 * p) / 400,
    percentOpacity: p,
    percentHighOpacity: p / 4,
    score: bin(p),
    firstSlice: i * 10,
    lastSlice: i * 10 + 9,
    slices: 10,
  });
  const [ru, rm, rl, lu, lm, ll] = percents.map(zone) as [ReturnType<typeof zone>, ...ReturnType<typeof zone>[]];
  return {
    rule: 'lung-thirds-v1',
    right: { upper: ru, middle: rm!, lower: rl! },
    left: { upper: lu!, middle: lm!, lower: ll! },
    score: percents.reduce((s, p) => s + bin(p), 0),
  };
}

/**
 * An HL7 v2 message parsed by an independent parser (Debian python3-hl7): per segment, its fields
 * as repetitions → components → subcomponents, every value unescaped.
 */
export function parseWithPythonHl7(message: string): Promise<Record<string, string[][][][][]>> {
  const script = `
import sys, json, hl7
m = hl7.parse(sys.stdin.read().replace('\\n', '\\r'))
def comps(r):
    return [[m.unescape(str(x)) for x in c] if isinstance(c, hl7.Component) else [m.unescape(str(c))] for c in r]
def reps(f):
    kids = list(f)
    if any(isinstance(k, hl7.Repetition) for k in kids):
        return [comps(k) if isinstance(k, hl7.Repetition) else [[m.unescape(str(k))]] for k in kids]
    return [[[m.unescape(str(f))]]]
out = {}
for seg in m:
    name = str(seg[0])
    fields = [[[[str(seg[i])]]] if name == 'MSH' and i in (1, 2) else reps(seg[i]) for i in range(1, len(seg))]
    out.setdefault(name, []).append(fields)
print(json.dumps(out))
`;
  return new Promise((resolve, reject) => {
    const child = execFile('/usr/bin/python3', ['-c', script], { timeout: 20_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`python3-hl7: ${stderr || err.message}`));
      else resolve(JSON.parse(stdout) as Record<string, string[][][][][]>);
    });
    child.stdin!.end(message);
  });
}

/** Field n (1-based as in HL7; MSH-1 is the field separator) of the k-th segment `name`: first repetition, component c, subcomponent s. */
export function field(parsed: Record<string, string[][][][][]>, name: string, n: number, c = 1, s = 1, k = 0): string {
  const seg = parsed[name]?.[k];
  if (!seg) return '';
  return seg[n - 1]?.[0]?.[c - 1]?.[s - 1] ?? '';
}
