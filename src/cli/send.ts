import type { Command } from 'commander';
import { collectFiles, sendFiles } from '../dicom/scu/client.js';
import { addScuFlags, peerFromFlags, type ScuFlags } from './scu-options.js';

export function registerSend(program: Command): void {
  addScuFlags(
    program
      .command('send')
      .description('C-STORE files and folders (recursively) to a DICOM peer in one association; exits non-zero on any failure')
      .argument('<paths...>', 'DICOM files or folders'),
  ).action(async (paths: string[], flags: ScuFlags) => {
    const peer = peerFromFlags(flags);
    const files = await collectFiles(paths);
    if (files.length === 0) throw new Error('send: no files found');
    const r = await sendFiles(peer, files);
    for (const f of r.failed) process.stderr.write(`failed: ${f.file}: ${f.reason}\n`);
    process.stdout.write(
      `sent ${r.sent}, failed ${r.failed.length} of ${files.length} to ${peer.calledAeTitle}@${peer.host}:${peer.port} in ${(r.ms / 1000).toFixed(2)} s\n`,
    );
    if (r.failed.length > 0 || r.sent === 0) process.exitCode = 1;
  });
}
