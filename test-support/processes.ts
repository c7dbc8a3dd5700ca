/**
 * Real processes for integration tests: free ports, temp dirs, spawn the built entry points,
 * wait for readiness, and stop every process by pid (SIGKILL is the point of the crash tests).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));
export const SERVER_MAIN = join(REPO_ROOT, 'control-server/dist/main.js');
export const AGENT_MAIN = join(REPO_ROOT, 'agent/dist/main.js');

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

/** A temp dir that is removed by `cleanup()` only when the test passed; kept (and named) otherwise. */
export function tempDir(prefix: string): { path: string; cleanup: (passed: boolean) => void } {
  const path = mkdtempSync(join(tmpdir(), `${prefix}-`));
  return {
    path,
    cleanup: (passed) => {
      if (passed) rmSync(path, { recursive: true, force: true });
      else console.error(`test failed: its files are kept in ${path}`);
    },
  };
}

export interface RunningProcess {
  child: ChildProcess;
  pid: number;
  /** Everything the process wrote to stdout and stderr so far. */
  output: () => string;
  /** Resolves with the exit code (or signal name) once the process has exited. */
  exited: Promise<number | string>;
  kill: (signal?: NodeJS.Signals) => Promise<number | string>;
}

const running = new Set<RunningProcess>();

export function startProcess(script: string, args: string[], env: Record<string, string>): RunningProcess {
  const child = spawn(process.execPath, [script, ...args], {
    env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout?.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const exited = new Promise<number | string>((resolve) =>
    child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')),
  );
  if (child.pid === undefined) throw new Error(`could not start ${script}`);
  const proc: RunningProcess = {
    child,
    pid: child.pid,
    output: () => out,
    exited,
    kill: async (signal = 'SIGKILL') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const result = await exited;
      running.delete(proc);
      return result;
    },
  };
  void exited.then(() => running.delete(proc));
  running.add(proc);
  return proc;
}

/** SIGKILLs every process started through this module that is still running. Call in afterEach/afterAll. */
export async function killAll(): Promise<void> {
  await Promise.all([...running].map((p) => p.kill('SIGKILL')));
}

export async function waitFor<T>(
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  { timeoutMs = 10_000, intervalMs = 20, what = 'condition' } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export interface RunningServer extends RunningProcess {
  url: string;
  port: number;
}

/** Starts `node control-server/dist/main.js` and waits until /health answers 200. */
export async function startServer(env: Record<string, string> & { DB_PATH: string }, port?: number): Promise<RunningServer> {
  const chosen = port ?? (await freePort());
  const proc = startProcess(SERVER_MAIN, [], { HOST: '127.0.0.1', PORT: String(chosen), ...env });
  const url = `http://127.0.0.1:${chosen}`;
  await waitFor(
    async () => {
      if (proc.child.exitCode !== null) throw new Error(`server exited early:\n${proc.output()}`);
      return fetch(`${url}/health`).then((r) => r.ok, () => false);
    },
    { what: `server on ${url}` },
  );
  return Object.assign(proc, { url, port: chosen });
}

/**
 * Starts `node agent/dist/main.js` against a server. Tests point agents at targets on 127.0.0.1,
 * which the agent refuses by default: HTTP_BLOCK_PRIVATE=false unless the test says otherwise
 * (`HTTP_BLOCK_PRIVATE: ''` restores the default).
 */
export function startAgent(env: Record<string, string> & { SERVER_URL: string; IDEMPOTENCY_DB_PATH: string }, args: string[] = []): RunningProcess {
  return startProcess(AGENT_MAIN, args, { HTTP_BLOCK_PRIVATE: 'false', ...env });
}

/**
 * Resolves with the first match of `pattern` in what the process has written so far or writes
 * next (woken by each chunk of output, not by a timer); fails if the process ends first.
 */
export async function waitForOutput(
  proc: RunningProcess,
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
    // These listeners run after startProcess's own, so output() already holds the new chunk.
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
