/**
 * Configuration errors a person can act on: each problem names the key, where its value came from
 * (the `MLSAM_*` variable the user set, or the MLSAM_CONFIG file), and for an unknown key the nearest
 * known one ("did you mean aeTitle (MLSAM_DICOM__AE_TITLE)?").
 */
import type { z } from 'zod';

type Path = ReadonlyArray<PropertyKey>;

/** `MLSAM_SERIES__QUIET_PERIOD_SECONDS` for ['series', 'quietPeriodSeconds']. */
export function envNameFor(path: Path): string {
  const snake = (k: PropertyKey): string =>
    String(k)
      .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
      .toUpperCase();
  return `MLSAM_${path.map(snake).join('__')}`;
}

/** Edit distance counting a swap of two neighbouring letters as one edit (optimal string alignment), case-insensitive. */
export function editDistance(a: string, b: string): number {
  const s = a.toLowerCase();
  const t = b.toLowerCase();
  const d: number[][] = Array.from({ length: s.length + 1 }, (_, i) =>
    Array.from({ length: t.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  const at = (i: number, j: number): number => (d[i] as number[])[j] as number;
  for (let i = 1; i <= s.length; i++) {
    for (let j = 1; j <= t.length; j++) {
      let v = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + (s[i - 1] === t[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && s[i - 1] === t[j - 2] && s[i - 2] === t[j - 1]) v = Math.min(v, at(i - 2, j - 2) + 1);
      (d[i] as number[])[j] = v;
    }
  }
  return at(s.length, t.length);
}

/**
 * The known key nearest to `key` when it looks like a slip: a few letters off (at most a third of
 * the known key's, at least one), or the start of a known key ("quietPeriod" → quietPeriodSeconds).
 */
export function nearestKey(key: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    const d = editDistance(key, k);
    if (d < bestD) [best, bestD] = [k, d];
  }
  if (best !== undefined && bestD <= Math.max(1, Math.floor(best.length / 3))) return best;
  if (key.length >= 4) return known.find((k) => k.toLowerCase().startsWith(key.toLowerCase()));
  return undefined;
}

interface DefLike {
  type: string;
  innerType?: z.ZodType;
  in?: z.ZodType;
  element?: z.ZodType;
  shape?: Record<string, z.ZodType>;
  options?: z.ZodType[];
}
const def = (s: z.ZodType): DefLike => (s as unknown as { _zod: { def: DefLike } })._zod.def;

function unwrap(s: z.ZodType): z.ZodType {
  for (let i = 0; i < 10; i++) {
    const d = def(s);
    const inner = d.innerType ?? (d.type === 'pipe' ? d.in : undefined);
    if (!inner) return s;
    s = inner;
  }
  return s;
}

/** The keys an object schema allows at `path` (array indices step into the element schema). */
export function keysAt(schema: z.ZodType, path: Path): string[] {
  let s: z.ZodType | undefined = schema;
  for (const seg of path) {
    if (!s) return [];
    const d = def(unwrap(s));
    s = typeof seg === 'number' ? d.element : d.shape?.[String(seg)];
  }
  if (!s) return [];
  const d = def(unwrap(s));
  if (d.shape) return Object.keys(d.shape);
  // A union of objects (e.g. "*" or an object): the keys of its object members.
  return (d.options ?? []).flatMap((o) => Object.keys(def(unwrap(o)).shape ?? {}));
}

/** Where the configuration's values came from, to name in errors. */
export interface ConfigSources {
  /** Config path ("dicom.port") → the environment variable that set it. */
  env: Map<string, string>;
  /** The MLSAM_CONFIG file and its parsed content. */
  file?: { path: string; json: unknown };
}

const key = (path: Path): string => path.map(String).join('.');

function inJson(json: unknown, path: Path): boolean {
  let node = json;
  for (const seg of path) {
    if (typeof node !== 'object' || node === null || !(String(seg) in node)) return false;
    node = (node as Record<string, unknown>)[String(seg)];
  }
  return true;
}

/** "MLSAM_DICOM__PORT" or "MLSAM_DESTINATIONS" (a prefix set the whole value), else the file, else undefined. */
export function sourceOf(path: Path, sources: ConfigSources): string | undefined {
  for (let n = path.length; n > 0; n--) {
    const name = sources.env.get(key(path.slice(0, n)));
    if (name) return `set by ${name}`;
  }
  if (sources.file && path.length > 0 && inJson(sources.file.json, path)) return `in ${sources.file.path}`;
  return undefined;
}

/** One line per zod issue: key, source, message, and for unknown keys the nearest known key. */
export function explainIssues(issues: readonly z.core.$ZodIssue[], schema: z.ZodType, sources: ConfigSources): string[] {
  const lines: string[] = [];
  for (const i of issues) {
    // A value that fits none of a union's shapes (a destination of either type): explain the shape it
    // came nearest to (fewest problems), not just "Invalid input".
    if (i.code === 'invalid_union' && Array.isArray(i.errors) && i.errors.length > 0) {
      const nearest = [...i.errors].sort((a, b) => a.length - b.length)[0] ?? [];
      if (nearest.length > 0) {
        lines.push(
          ...explainIssues(
            nearest.map((e) => ({ ...e, path: [...i.path, ...e.path] }) as z.core.$ZodIssue),
            schema,
            sources,
          ),
        );
        continue;
      }
    }
    if (i.code === 'unrecognized_keys') {
      const known = keysAt(schema, i.path);
      for (const k of i.keys) {
        const path = [...i.path, k];
        const from = sourceOf(path, sources);
        const near = nearestKey(k, known);
        const viaEnv = sources.env.has(key(path));
        const suggestion = near
          ? `; did you mean ${near}${viaEnv ? ` (${envNameFor([...i.path, near])})` : ''}?`
          : known.length
            ? `; known keys here: ${known.join(', ')}`
            : '';
        lines.push(`  ${key(path)}${from ? ` (${from})` : ''}: unknown key${suggestion}`);
      }
      continue;
    }
    const from = sourceOf(i.path, sources);
    lines.push(`  ${key(i.path) || '(root)'}${from ? ` (${from})` : ''}: ${i.message}`);
  }
  return lines;
}
