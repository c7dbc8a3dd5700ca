/**
 * Child processes of a drill, remembered by pid and stopped by pid: by the drill when it is done,
 * and by `stopAll()` on an error or a signal to the drill itself, so a run never leaves a server
 * or an agent behind. Output is kept as a short tail and handed line by line to a listener.
 */
import { spawn, type ChildProcess } from 'node:child_process';

export interface Child {
  name: string;
  pid: number;
  child: ChildProcess;
  /** The last 32 KiB of stdout and stderr. */
  output: () => string;
  /** Resolves with the exit code, or the signal's name, once the process is gone. */
  exited: Promise<number | string>;
  isRunning: () => boolean;
  /** SIGKILL; resolves once the process is gone. */
  kill: () => Promise<number | string>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
  stop: (graceMs: number) => Promise<number | string>;
}

const TAIL_BYTES = 32 * 1024;
const children = new Set<Child>();

export function spawnNode(
  name: string,
  script: string,
  args: string[],
  env: Record<string, string>,
  onLine: (line: string) => void = () => {},
): Child {
  const child = spawn(process.execPath, [script, ...args], {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (child.pid === undefined) throw new Error(`could not start ${name} (${script})`);
  const pid = child.pid;
  let tail = '';
  for (const stream of [child.stdout, child.stderr]) {
    let partial = '';
    stream?.on('data', (chunk: Buffer) => {
      const text = chunk.toString();
      tail = (tail + text).slice(-TAIL_BYTES);
      const lines = (partial + text).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) onLine(line);
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
  const proc: Child = {
    name,
    pid,
    child,
    output: () => tail,
    exited,
    isRunning,
    kill: async () => {
      signal('SIGKILL');
      return exited;
    },
    stop: async (graceMs) => {
      signal('SIGTERM');
      const timer = setTimeout(() => signal('SIGKILL'), graceMs);
      const result = await exited;
      clearTimeout(timer);
      return result;
    },
  };
  children.add(proc);
  void exited.then(() => children.delete(proc));
  return proc;
}

/** SIGKILLs every child of this drill that is still running, by pid. */
export async function stopAll(): Promise<void> {
  await Promise.all([...children].map((c) => c.kill()));
}

/** Last resort on `process.on('exit')`, which allows only synchronous work. */
function killAllSync(): void {
  for (const c of children) {
    try {
      process.kill(c.pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
}

let installed = false;
/**
 * Ctrl-C, SIGTERM or SIGHUP to the drill stops every child first; `onSignal` may say where the
 * run's files are kept. Any exit, even by an uncaught error, SIGKILLs what is left.
 */
export function installExitHandlers(onSignal: (signal: string) => void): void {
  if (installed) return;
  installed = true;
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      console.error(`\nchaos: ${sig}: stopping ${children.size} child process(es)`);
      onSignal(sig);
      void stopAll().finally(() => process.exit(130));
    });
  }
  process.on('exit', killAllSync);
}
