import type { Command } from 'commander';

export function registerSend(program: Command): void {
  program
    .command('send')
    .description('(not implemented yet)')
    .action(() => {
      throw new Error('send: not implemented yet');
    });
}
