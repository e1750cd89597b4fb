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
export { DISPATCH_LOG_CAP, DispatchStore } from './state.js';
export {
  DestinationEchoScheduler,
  destinationEchoSchema,
  echoDestination,
  echoDestinations,
  readDestinationEchoes,
  type DestinationEcho,
  type EchoDeps,
} from './echo.js';
export { DispatchRole, dispatchRole } from './role.js';
