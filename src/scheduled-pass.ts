import { schedule, validate, type ScheduledTask } from 'node-cron';

export interface ScheduledPassOptions<T> {
  /** Config key of the cron expression, named in the error when it is invalid. */
  cronKey: string;
  cron: string;
  /** node-cron task name. */
  name: string;
  /** One pass. */
  run: () => Promise<T>;
  /** What a failed pass returns (after the caller logged it); runOnce() never rejects. */
  onError: (err: Error) => T;
}

/**
 * A job run on a node-cron schedule and on demand, one pass at a time in this process: a call
 * during a pass gets that pass. Used by the spool reconciler, the spool retention sweep and the
 * destination C-ECHO.
 */
export class ScheduledPass<T> {
  private task: ScheduledTask | undefined;
  private running: Promise<T> | undefined;

  constructor(private readonly opts: ScheduledPassOptions<T>) {
    if (!validate(opts.cron)) throw new Error(`${opts.cronKey}: invalid cron expression "${opts.cron}"`);
  }

  /** Starts the schedule (idempotent). */
  start(): void {
    this.task ??= schedule(this.opts.cron, () => this.runOnce(), { name: this.opts.name, noOverlap: true });
  }

  runOnce(): Promise<T> {
    if (this.running) return this.running;
    this.running = this.opts
      .run()
      .catch((err: unknown) => this.opts.onError(err as Error))
      .finally(() => {
        this.running = undefined;
      });
    return this.running;
  }

  /** Stops the schedule and waits for a pass in progress. */
  async stop(): Promise<void> {
    await this.task?.stop();
    await this.task?.destroy();
    this.task = undefined;
    await this.running?.catch(() => undefined);
  }
}
