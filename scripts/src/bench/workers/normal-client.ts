/**
 * sse-slow's normal client in a process of its own (harness/normal-client.ts), so its latencies
 * are the server's and not the bench's event loop's. Starts on `{type:'start'}`, stops on
 * `{type:'stop'}` and answers `{type:'stopped', latencies, posted, timeouts, errors, loopDelay}`;
 * `loopDelay` is this process's own event-loop delay (p99 and max, ms) over the run, to show the
 * measurement itself added nothing worth counting.
 *
 * node normal-client.js --url URL --timeout-ms T --gap-ms G
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { NormalClient } from '../harness/normal-client.js';
import { toBench, workerFailed } from '../harness/workers.js';

const { values } = parseArgs({
  options: { url: { type: 'string' }, 'timeout-ms': { type: 'string', default: '5000' }, 'gap-ms': { type: 'string', default: '20' } },
});
const url = values.url ?? workerFailed(new Error('--url is required'));
const client = new NormalClient(url, Number(values['timeout-ms']), Number(values['gap-ms']));
const loop = monitorEventLoopDelay({ resolution: 5 });

process.on('message', (message: { type: string }) => {
  if (message.type === 'start') {
    loop.enable();
    client.start();
    toBench({ type: 'started' });
  } else if (message.type === 'stop') {
    loop.disable();
    client.stop().then(
      () =>
        toBench({
          type: 'stopped',
          latencies: client.latencies,
          byMethod: client.byMethod,
          posted: client.posted,
          timeouts: client.timeouts,
          errors: client.errors.slice(0, 20),
          loopDelay: { p99: loop.percentile(99) / 1e6, max: loop.max / 1e6 },
        }),
      workerFailed,
    );
  }
});
process.on('disconnect', () => process.exit(0));
toBench({ type: 'ready' });
