/**
 * A closed stdout or stderr (`mlsam score --json … | head -c 2000`, a pager quit early, `jq`
 * that stops reading) ends the command quietly, as Unix tools do: no EPIPE stack trace. Node
 * ignores SIGPIPE and reports the closed pipe as an 'error' event on the stream instead; without a
 * listener that is an uncaught exception. We exit with the command's own status (0 unless it had
 * already set one), so `… | head` under `set -o pipefail` does not fail on our side.
 */
export function endQuietlyOnClosedOutput(streams: NodeJS.WriteStream[] = [process.stdout, process.stderr]): void {
  for (const s of streams) {
    s.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE' || err.code === 'ERR_STREAM_DESTROYED') {
        process.exit(typeof process.exitCode === 'number' ? process.exitCode : 0);
      }
      throw err;
    });
  }
}
