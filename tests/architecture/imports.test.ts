/**
 * The import graph of src/, folder by folder (docs/architecture.md): data flows one way,
 * entry → stages → stores and contracts → dicom/model → config. Read from the code, so a new
 * import that runs against the arrows fails here with the file that made it.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = resolve(import.meta.dirname, '../../src');

/** Layers, top first: a folder may import its own layer's folders (without cycles) and any lower layer. */
const LAYERS: readonly (readonly string[])[] = [
  ['cli', 'node', 'bench', 'demo'],
  ['admin', 'cleaner', 'queue', 'worker', 'results', 'scoring', 'notify', 'validation', 'drift'],
  ['stores', 'contracts', 'db'],
  ['dicom', 'model'],
  ['config', 'types', '.'],
];

function tsFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? tsFiles(p) : p.endsWith('.ts') ? [p] : [];
  });
}

/** Top folder under src/ of a path ('.' for files directly in src/). */
function folderOf(p: string): string {
  const parts = relative(SRC, p).split('/');
  return parts.length > 1 ? parts[0]! : '.';
}

interface Edge {
  from: string;
  to: string;
  file: string;
  spec: string;
}

function edges(): Edge[] {
  const out: Edge[] = [];
  for (const f of tsFiles(SRC)) {
    const text = readFileSync(f, 'utf8');
    for (const m of text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)) {
      const spec = m[1]!;
      const from = folderOf(f);
      const to = folderOf(resolve(dirname(f), spec));
      if (from !== to) out.push({ from, to, file: relative(SRC, f), spec });
    }
  }
  return out;
}

const rank = (folder: string): number => {
  const i = LAYERS.findIndex((l) => l.includes(folder));
  if (i < 0) throw new Error(`src/${folder} is in no layer: add it to LAYERS and to docs/architecture.md`);
  return i;
};

describe('src/ import graph', () => {
  const all = edges();

  it('finds the imports (the parser sees the pipeline)', () => {
    expect(all.some((e) => e.from === 'worker' && e.to === 'results')).toBe(true);
    expect(all.some((e) => e.from === 'stores' && e.to === 'contracts')).toBe(true);
  });

  it('every folder is in a layer and no import runs upwards', () => {
    const upward = all.filter((e) => rank(e.to) < rank(e.from)).map((e) => `${e.file} imports ${e.spec}`);
    expect(upward).toEqual([]);
  });

  it('has no folder cycles', () => {
    const next = new Map<string, Set<string>>();
    for (const e of all) next.set(e.from, (next.get(e.from) ?? new Set()).add(e.to));
    const cycles: string[] = [];
    const visit = (n: string, path: string[]): void => {
      if (path.includes(n)) {
        cycles.push([...path.slice(path.indexOf(n)), n].join(' → '));
        return;
      }
      for (const m of next.get(n) ?? []) visit(m, [...path, n]);
    };
    for (const n of next.keys()) visit(n, []);
    expect(cycles).toEqual([]);
  });

  it('keeps the named boundaries of issue 29', () => {
    const bad = all.filter(
      (e) =>
        (e.from === 'admin' && e.to === 'worker') ||
        ((e.from === 'results' || e.from === 'scoring') && e.to === 'queue') ||
        (e.from === 'worker' && e.to === 'node') ||
        (e.from === 'node' && e.to === 'cli'),
    );
    expect(bad.map((e) => `${e.file} imports ${e.spec}`)).toEqual([]);
    const queueFiles = readdirSync(join(SRC, 'queue'));
    expect(queueFiles).not.toContain('result-record.ts');
  });

  it('ships no tool code: nothing outside src/demo, src/bench and src/dicom/testing imports them (tsconfig.json leaves them out of dist/)', () => {
    const TOOLS = ['demo', 'bench', 'dicom/testing'].map((d) => join(SRC, d));
    const inTools = (p: string): boolean => TOOLS.some((t) => p === t || p.startsWith(`${t}/`));
    const bad: string[] = [];
    for (const f of tsFiles(SRC)) {
      if (inTools(f)) continue;
      for (const m of readFileSync(f, 'utf8').matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)) {
        if (inTools(resolve(dirname(f), m[1]!))) bad.push(`${relative(SRC, f)} imports ${m[1]}`);
      }
    }
    expect(bad).toEqual([]);
  });
});
