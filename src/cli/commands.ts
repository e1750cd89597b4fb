import type { Command } from 'commander';
import { registerAdmin } from './admin.js';
import { registerEcho } from './echo.js';
import { registerListen } from './listen.js';
import { registerScore } from './score.js';
import { registerSend } from './send.js';
import { registerServe } from './serve.js';
import { registerWork } from './work.js';
import { registerValidation } from './validation.js';
import { registerUsers } from './users.js';

/** Every `mlsam` sub-command, one module each. */
export function registerCommands(program: Command): void {
  registerServe(program);
  registerListen(program);
  registerWork(program);
  registerEcho(program);
  registerSend(program);
  registerScore(program);
  registerAdmin(program);
  registerValidation(program);
  registerUsers(program);
}
