/** src/worker/dispatch: result objects → C-STORE to each configured destination, retried with backoff. */
export {
  DISPATCH_BACKOFF,
  DISPATCH_JOB_NAME,
  Dispatcher,
  dispatchBackoffMs,
  dispatchJobOptions,
  type DispatcherOptions,
  type EnqueueOptions,
  type EnqueueOutcome,
  type EnqueueResult,
  type UndispatchedResult,
} from './dispatcher.js';
export { DispatchWorker, type DispatchJobResult, type DispatchProgress, type DispatchWorkerOptions } from './worker.js';
export { DestinationEchoScheduler, echoDestination, echoDestinations, type EchoDeps } from './echo.js';
