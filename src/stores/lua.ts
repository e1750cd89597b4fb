/**
 * Redis Lua scripts live as files (`lua/<name>.lua` beside the module that runs them, as BullMQ
 * keeps its commands), read once when that module loads. `npm run build` copies them into dist/.
 */
import { readFileSync } from 'node:fs';

/** The script `lua/<name>.lua` next to the module at `moduleUrl` (its import.meta.url). */
export function loadLua(moduleUrl: string, name: string): string {
  return readFileSync(new URL(`lua/${name}.lua`, moduleUrl), 'utf8');
}
