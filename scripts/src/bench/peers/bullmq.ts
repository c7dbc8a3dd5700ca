/** The BullMQ peer: Debian's redis-server (redis.ts) and BullMQ's Queue on the bench side. */
import { createRequire } from 'node:module';
import { cpuSeconds } from '../harness/proc-stats.js';
import type { PeerBackend } from './measure.js';
import { startRedis } from './redis.js';

export async function startBullmq(dir: string): Promise<PeerBackend & { versions: string }> {
  const { Queue } = await import('bullmq');
  const redis = await startRedis(dir);
  const connection = { host: '127.0.0.1', port: redis.port };
  return {
    versions: `BullMQ ${packageVersion('bullmq')}, Redis ${redis.version}`,
    serverCpuSeconds: () => cpuSeconds(redis.pid),
    workerScript: 'bullmq-worker',
    workerArgs: (queue) => [`--port=${redis.port}`, `--queue=${queue}`],
    openQueue: async (name) => {
      const queue = new Queue(name, { connection });
      await queue.waitUntilReady();
      return {
        add: async (data) => {
          await queue.add('delay', data);
        },
        addMany: async (data) => {
          await queue.addBulk(data.map((d) => ({ name: 'delay', data: d })));
        },
        close: () => queue.close(),
      };
    },
    stop: () => redis.stop(),
  };
}

export function packageVersion(name: string): string {
  const require = createRequire(import.meta.url);
  return (require(`${name}/package.json`) as { version: string }).version;
}
