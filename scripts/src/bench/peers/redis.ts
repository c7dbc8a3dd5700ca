/**
 * Debian's `redis-server` for the BullMQ peer, on a free port, persisting as a production BullMQ
 * would: the AOF on, fsync'd every second (`appendfsync everysec`, the durability class of our
 * SQLITE_SYNCHRONOUS=NORMAL), no RDB snapshots. Stopped by its pid.
 */
import { spawn, spawnSync } from 'node:child_process';
import { freePort, waitUntil } from '../harness/processes.js';

export interface Redis {
  port: number;
  pid: number;
  version: string;
  stop: () => Promise<void>;
}

/** The `redis-server --version` line, or undefined when there is none on PATH. */
export function redisVersion(): string | undefined {
  const probe = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) return undefined;
  return /v=(\S+)/.exec(probe.stdout)?.[1] ?? probe.stdout.trim();
}

export async function startRedis(dir: string): Promise<Redis> {
  const version = redisVersion();
  if (version === undefined) throw new Error('redis-server is not on PATH');
  const port = await freePort();
  // A server option, not a bench option: the values say what is measured.
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--appendonly', 'yes', '--appendfsync', 'everysec'];
  const child = spawn('redis-server', [...args, '--dir', dir, '--save', '', '--daemonize', 'no'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error('could not start redis-server');
  let output = '';
  let exited = false;
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-16_384);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  void gone.then(() => (exited = true));
  // Killed by pid with the bench however it ends (an error, Ctrl-C): it is no child of processes.ts.
  const killOnExit = () => {
    if (!exited) process.kill(pid, 'SIGKILL');
  };
  process.on('exit', killOnExit);
  const stop = async () => {
    process.off('exit', killOnExit);
    if (!exited) process.kill(pid, 'SIGTERM');
    await gone;
  };
  try {
    await waitUntil(
      () => {
        if (exited) throw new Error(`redis-server exited:\n${output}`);
        return output.includes('Ready to accept connections');
      },
      { timeoutMs: 15_000, what: 'redis-server to accept connections' },
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return { port, pid, version, stop };
}
