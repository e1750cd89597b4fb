import type { Command } from 'commander';
import { addScuFlags, peerFromFlags, type ScuFlags } from './scu-options.js';

/** Progress lines on stderr at most this often (short runs print none). */
const PROGRESS_EVERY_MS = 5000;

export function registerSend(program: Command): void {
  addScuFlags(
    program
      .command('send')
      .description(
        'C-STORE files and folders (recursively) to a DICOM peer, each dataset sent byte for byte in its own transfer syntax; exits non-zero on any failure',
      )
      .argument('<paths...>', 'DICOM files or folders'),
  ).action(async (paths: string[], flags: ScuFlags) => {
    const peer = peerFromFlags(flags);
    const { collectFiles, sendFiles } = await import('../dicom/scu/client.js');
    const files = await collectFiles(paths);
    if (files.length === 0) throw new Error('send: no files found');
    const t0 = Date.now();
    let lastReport = t0;
    const r = await sendFiles(peer, files, {
      onProgress: (done, total) => {
        const now = Date.now();
        if (now - lastReport < PROGRESS_EVERY_MS || done === total) return;
        lastReport = now;
        process.stderr.write(`send: ${done}/${total} files, ${((done * 1000) / (now - t0)).toFixed(1)} files/s\n`);
      },
    });
    for (const f of r.failed) process.stderr.write(`failed: ${f.file}: ${f.reason}\n`);
    const extra = [
      ...(r.warnings ? [`${r.warnings} with warning status`] : []),
      ...(r.converted ? [`${r.converted} re-encoded to Implicit VR Little Endian (values unchanged)`] : []),
    ];
    const secs = r.ms / 1000;
    process.stdout.write(
      `sent ${r.sent}, failed ${r.failed.length} of ${files.length} to ${peer.calledAeTitle}@${peer.host}:${peer.port} in ${secs.toFixed(2)} s` +
        ` (${secs > 0 ? (r.sent / secs).toFixed(1) : '-'} files/s${extra.length ? `; ${extra.join(', ')}` : ''})\n`,
    );
    if (r.failed.length > 0 || r.sent === 0) process.exitCode = 1;
  });
}
