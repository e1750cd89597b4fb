// Copies the files under src/ that tsc does not emit but the code reads at run time (the
// dashboard's browser scripts, src/admin/static/*.js; the Redis Lua scripts, *.lua) to the same
// place under dist/. Run by `npm run build` after tsc.
import { cpSync, readdirSync, statSync } from 'node:fs';
import { dirname, extname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'src');
const dist = join(root, 'dist');
const ASSETS = new Set(['.js', '.lua']);

function walk(dir) {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? walk(p) : ASSETS.has(extname(p)) ? [p] : [];
  });
}

for (const f of walk(src)) cpSync(f, join(dist, relative(src, f)));
