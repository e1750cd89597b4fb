import { existsSync } from 'node:fs';
import path from 'node:path';
import { PROJECT_ROOT, resolvePath } from '../config/load.js';

/** A relative model path is taken from the working directory, else from the project root. */
export function resolveModelPath(p: string): string {
  const abs = resolvePath(p);
  if (existsSync(abs) || path.isAbsolute(p)) return abs;
  const fromRoot = path.join(PROJECT_ROOT, p);
  return existsSync(fromRoot) ? fromRoot : abs;
}
