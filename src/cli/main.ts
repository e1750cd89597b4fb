#!/usr/bin/env node
import { Command } from 'commander';
import { endQuietlyOnClosedOutput } from './closed-output.js';
import { registerCommands } from './commands.js';
import { errorLine } from './error-line.js';

endQuietlyOnClosedOutput();

const program = new Command();
program
  .name('mlsam')
  .description('mlsam-node: a PACS-integrated AI node scoring chest CT series with ML-SAM')
  .version('0.1.0')
  .showHelpAfterError();
registerCommands(program);
program.parseAsync(process.argv).catch((err: unknown) => {
  process.stderr.write(`mlsam: ${errorLine(err)}\n`);
  process.exit(1);
});
