import type { Command } from 'commander';

export function registerListen(program: Command): void {
  program
    .command('listen')
    .description('(not implemented yet)')
    .action(() => {
      throw new Error('listen: not implemented yet');
    });
}
