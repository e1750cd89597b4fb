#!/usr/bin/env node
import { Command } from 'commander';
import { endQuietlyOnClosedOutput } from './closed-output.js';
import { registerCommands } from './commands.js';

endQuietlyOnClosedOutput();

const program = new Command();
program
  .name('mlsam')
  .description('mlsam-node: a PACS-integrated AI node scoring chest CT series with ML-SAM')
  .version('0.1.0')
  .showHelpAfterError();
registerCommands(program);
program.parseAsync(process.argv).catch((err: unknown) => {
  const e = err as Error;
  process.stderr.write(`mlsam: ${e.name === 'ConfigError' ? e.message : (e.stack ?? String(e))}\n`);
  process.exit(1);
});
