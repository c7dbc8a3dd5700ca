/**
 * A graphile-worker process: `--connection` (PostgreSQL URL), `--concurrency`. The `delay` task
 * does nothing (our DELAY 0); a job counts as completed on `job:complete` without an error, once
 * its completion is written back. Library defaults otherwise (no local queue, no batched
 * completions), but only warnings are logged: its per-job `info` line would be work our agents
 * (LOG_LEVEL=warn in the bench) do not do.
 */
import type { PeerJobData } from './protocol.js';
import { requiredArg, runPeerWorker, workerArgs } from './worker-main.js';

runPeerWorker(async (hooks) => {
  const args = workerArgs();
  const { Logger, run } = await import('graphile-worker');
  const logger = new Logger(() => (level, message) => {
    if (level === 'error' || level === 'warning') console.error(`graphile-worker ${level}: ${message}`);
  });
  const runner = await run({
    connectionString: requiredArg(args, 'connection'),
    concurrency: Number(requiredArg(args, 'concurrency')),
    noHandleSignals: true,
    logger,
    taskList: {
      delay: async (payload) => {
        hooks.jobStarted(payload as PeerJobData);
      },
    },
  });
  runner.events.on('job:complete', ({ error }) => {
    if (error) hooks.jobFailed(error);
    else hooks.jobCompleted();
  });
  return { close: () => runner.stop() };
});
