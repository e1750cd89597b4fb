/**
 * What `mlsam` prints for an error that ends a command: one line for what a user can fix (a path
 * that does not exist or cannot be read, a bad flag, a configuration problem, a peer that refused),
 * the stack trace only for what looks like a bug in mlsam itself (TypeError, RangeError, …) or when
 * DEBUG names mlsam (DEBUG=mlsam).
 */
import { fsErrorWords } from '../fs-error-text.js';

export function errorLine(err: unknown, env: NodeJS.ProcessEnv = process.env): string {
  if (!(err instanceof Error)) return String(err);
  const e = err as NodeJS.ErrnoException;
  if (env.DEBUG?.split(',').includes('mlsam')) return e.stack ?? e.message;
  const fs = fsErrorWords(e);
  if (fs && e.path) return `${e.path}: ${fs}`;
  if (e.code && e.syscall) return e.message; // other system errors (ECONNREFUSED, ENOSPC, …): the message says it
  // Errors mlsam raises on purpose are plain Error (or ConfigError); anything else is a bug.
  if (e.constructor === Error || e.name === 'ConfigError') return e.message;
  return e.stack ?? e.message;
}
