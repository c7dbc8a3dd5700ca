/**
 * A BullMQ worker process: `--port` (Redis), `--queue`, `--concurrency`. The handler does nothing
 * (our DELAY 0); a job counts as completed on BullMQ's `completed` event, after Redis recorded it.
 */
import type { Job } from 'bullmq';
import type { PeerJobData } from './protocol.js';
import { requiredArg, runPeerWorker, workerArgs } from './worker-main.js';

runPeerWorker(async (hooks) => {
  const args = workerArgs();
  const { Worker } = await import('bullmq');
  const worker = new Worker<PeerJobData>(
    requiredArg(args, 'queue'),
    async (job: Job<PeerJobData>) => {
      hooks.jobStarted(job.data);
    },
    {
      connection: { host: '127.0.0.1', port: Number(requiredArg(args, 'port')) },
      concurrency: Number(requiredArg(args, 'concurrency')),
    },
  );
  worker.on('completed', hooks.jobCompleted);
  worker.on('failed', (_job, err) => hooks.jobFailed(err));
  await worker.waitUntilReady();
  return { close: () => worker.close() };
});
