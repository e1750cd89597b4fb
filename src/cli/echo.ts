import type { Command } from 'commander';

export function registerEcho(program: Command): void {
  program
    .command('echo')
    .description('(not implemented yet)')
    .action(() => {
      throw new Error('echo: not implemented yet');
    });
}
