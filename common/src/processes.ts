/**
 * Child Node processes for the tests, the bench and the chaos drill (one helper, three users):
 * spawn on a free port, wait until /health answers, keep the output, and stop by pid — SIGKILL is
 * the point of the crash tests. Every process started here is remembered until it is gone, so
 * `stopAll()` (a test's afterEach, a bench's error path) and the exit handlers never leave a
 * server or an agent behind.
 *
 * Only `node:` modules: `@agent-executor/common/processes` is imported by built scripts/dist code
 * and by the tests' TypeScript alike.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';

export interface Started {
  name: string;
  pid: number;
  child: ChildProcess;
  /** What the process wrote to stdout and stderr (the last `tailBytes` of it). */
  output: () => string;
  /** Resolves with the exit code, or the signal's name, once the process and its output are done. */
  exited: Promise<number | string>;
  isRunning: () => boolean;
  /** Sends `signal` (SIGKILL by default); resolves once the process is gone. */
  kill: (signal?: NodeJS.Signals) => Promise<number | string>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
  stop: (graceMs?: number) => Promise<number | string>;
}

export interface SpawnOptions {
  env?: Record<string, string>;
  nodeArgs?: string[];
  /** Opens an IPC channel (bench workers). */
  ipc?: boolean;
  /** Called with each complete line of stdout and stderr. */
  onLine?: (line: string) => void;
  /** Keep only this much of the output (a long run); everything by default (a test matches on it). */
  tailBytes?: number;
}

const started = new Set<Started>();

/** `node [nodeArgs] script args`, with only PATH and `env` in its environment. */
export function spawnNode(name: string, script: string, args: string[], options: SpawnOptions = {}): Started {
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), script, ...args], {
    env: { PATH: process.env.PATH ?? '', ...options.env },
    stdio: options.ipc ? ['ignore', 'pipe', 'pipe', 'ipc'] : ['ignore', 'pipe', 'pipe'],
  });
  if (child.pid === undefined) throw new Error(`could not start ${name} (${script})`);
  const pid = child.pid;
  const tailBytes = options.tailBytes ?? Infinity;
  let out = '';
  for (const stream of [child.stdout, child.stderr]) {
    let partial = '';
    stream?.on('data', (chunk: Buffer) => {
      const text = chunk.toString();
      out += text;
      if (out.length > tailBytes) out = out.slice(-tailBytes);
      if (!options.onLine) return;
      const lines = (partial + text).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) options.onLine(line);
    });
  }
  // 'close', not 'exit': by then the last output (an agent's last words) has been read too.
  const exited = new Promise<number | string>((resolve) =>
    child.once('close', (code, signal) => resolve(code ?? signal ?? 'unknown')),
  );
  const isRunning = () => child.exitCode === null && child.signalCode === null;
  const signal = (sig: NodeJS.Signals) => {
    if (!isRunning()) return;
    try {
      process.kill(pid, sig);
    } catch {
      // Gone between the check and the signal.
    }
  };
  const proc: Started = {
    name,
    pid,
    child,
    output: () => out,
    exited,
    isRunning,
    kill: async (sig = 'SIGKILL') => {
      signal(sig);
      return exited;
    },
    stop: async (graceMs = 10_000) => {
      signal('SIGTERM');
      const timer = setTimeout(() => signal('SIGKILL'), graceMs);
      const result = await exited;
      clearTimeout(timer);
      return result;
    },
  };
  started.add(proc);
  void exited.then(() => started.delete(proc));
  return proc;
}

/** SIGKILLs every process started here that is still running, by pid. */
export async function stopAll(): Promise<void> {
  await Promise.all([...started].map((p) => p.kill('SIGKILL')));
}

/** Last resort on `process.on('exit')`, which allows only synchronous work. */
export function killAllSync(): void {
  for (const p of started) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
}

let handlersInstalled = false;
/**
 * Ctrl-C, SIGTERM or SIGHUP to this process stops every child first (`onSignal` may say where a
 * run's files are kept). Any exit, even by an uncaught error, SIGKILLs what is left.
 */
export function installExitHandlers(onSignal: (signal: string) => void = () => {}): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      console.error(`\n${sig}: stopping ${started.size} child process(es)`);
      onSignal(sig);
      void stopAll().finally(() => process.exit(130));
    });
  }
  process.on('exit', killAllSync);
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls `probe` until it returns a value other than undefined/false; throws after `timeoutMs`. */
export async function waitUntil<T>(
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  { timeoutMs = 10_000, intervalMs = 20, what = 'condition' } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/**
 * Resolves once `GET url/health` answers 2xx; fails at once if `proc` exits first (with its
 * output), and after `timeoutMs` otherwise.
 */
export async function waitForHealth(
  proc: Started,
  url: string,
  { timeoutMs = 10_000, intervalMs = 20 } = {},
): Promise<void> {
  await waitUntil(
    async () => {
      if (!proc.isRunning()) throw new Error(`${proc.name} exited while starting:\n${proc.output()}`);
      return fetch(`${url}/health`, { signal: AbortSignal.timeout(2000) }).then((r) => r.ok, () => false);
    },
    { timeoutMs, intervalMs, what: `${proc.name} healthy on ${url}` },
  );
}

/**
 * Resolves with the first match of `pattern` in what the process has written so far or writes
 * next (woken by each chunk of output, not by a timer); fails if the process ends first.
 */
export async function waitForOutput(
  proc: Pick<Started, 'child' | 'output' | 'pid'>,
  pattern: RegExp,
  { timeoutMs = 10_000 } = {},
): Promise<RegExpMatchArray> {
  const streams = [proc.child.stdout, proc.child.stderr].filter((s) => s !== null);
  return new Promise((resolve, reject) => {
    let done = false;
    const finish = (settle: () => void) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      for (const s of streams) s.off('data', check);
      proc.child.off('close', onClose);
      settle();
    };
    // These listeners run after spawnNode's own, so output() already holds the new chunk.
    const check = () => {
      const match = proc.output().match(pattern);
      if (match) finish(() => resolve(match));
    };
    const onClose = () => {
      check();
      finish(() => reject(new Error(`process ${proc.pid} ended before printing ${pattern}:\n${proc.output()}`)));
    };
    const timer = setTimeout(
      () => finish(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${pattern} from ${proc.pid}:\n${proc.output()}`))),
      timeoutMs,
    );
    for (const s of streams) s.on('data', check);
    proc.child.once('close', onClose);
    check();
    if (proc.child.stdout?.readableEnded && proc.child.stderr?.readableEnded) onClose();
  });
}
