import type { Command } from 'commander';
import { dimseStatusText } from '../dicom/words.js';
import { addScuFlags, peerFromFlags, type ScuFlags } from './scu-options.js';

export function registerEcho(program: Command): void {
  addScuFlags(program.command('echo').description("C-ECHO a DICOM peer (default: this node's listener); exits non-zero on failure")).action(
    async (flags: ScuFlags) => {
      const peer = peerFromFlags(flags);
      const { echo } = await import('../dicom/scu/client.js');
      const r = await echo(peer);
      const target = `${peer.calledAeTitle}@${peer.host}:${peer.port}`;
      if (r.ok) {
        process.stdout.write(`C-ECHO ${target}: success (${r.ms} ms)\n`);
      } else {
        process.stderr.write(`C-ECHO ${target}: failed: ${r.error ?? `status ${dimseStatusText(r.status ?? 0xffff)}`}\n`);
        process.exitCode = 1;
      }
    },
  );
}
