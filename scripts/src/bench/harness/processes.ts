/**
 * Child processes of a bench run. Every process started here is remembered by pid and stopped by
 * pid: by the scenario when it is done, and by `stopAll()` on an error or Ctrl-C, so a run never
 * leaves a server or an agent behind.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Started {
  name: string;
  pid: number;
  child: ChildProcess;
  /** The last 64 KiB of stdout and stderr, for error messages. */
  output: () => string;
  exited: Promise<number | string>;
  isRunning: () => boolean;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
  stop: (graceMs?: number) => Promise<number | string>;
  kill: () => Promise<number | string>;
}

const started = new Set<Started>();

export interface SpawnOptions {
  env?: Record<string, string>;
  nodeArgs?: string[];
  /** Opens an IPC channel (for bench workers). */
  ipc?: boolean;
}

export function spawnNode(name: string, script: string, args: string[], options: SpawnOptions = {}): Started {
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), script, ...args], {
    env: { PATH: process.env.PATH ?? '', ...options.env },
    stdio: options.ipc ? ['ignore', 'pipe', 'pipe', 'ipc'] : ['ignore', 'pipe', 'pipe'],
  });
  if (child.pid === undefined) throw new Error(`could not start ${name} (${script})`);
  const pid = child.pid;
  let out = '';
  const keep = (chunk: Buffer) => {
    out = (out + chunk.toString()).slice(-65_536);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<number | string>((resolve) =>
    child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')),
  );
  const isRunning = () => child.exitCode === null && child.signalCode === null;
  const signal = (sig: NodeJS.Signals) => {
    if (!isRunning()) return;
    try {
      process.kill(pid, sig);
    } catch {
      // Already gone between the check and the signal.
    }
  };
  const proc: Started = {
    name,
    pid,
    child,
    output: () => out,
    exited,
    isRunning,
    stop: async (graceMs = 10_000) => {
      signal('SIGTERM');
      const timer = setTimeout(() => signal('SIGKILL'), graceMs);
      const result = await exited;
      clearTimeout(timer);
      return result;
    },
    kill: async () => {
      signal('SIGKILL');
      return exited;
    },
  };
  started.add(proc);
  void exited.then(() => started.delete(proc));
  return proc;
}

/** SIGKILLs every process this run started that is still running. */
export async function stopAll(): Promise<void> {
  await Promise.all([...started].map((p) => p.kill()));
}

/** Synchronous last resort for `process.on('exit')`. */
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
/** Ctrl-C, SIGTERM or a crash of the bench stops every child first. */
export function installExitHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      console.error(`\n${sig}: stopping ${started.size} child process(es)`);
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

/** A temp dir under os.tmpdir(); `remove()` is safe to call twice. */
export function tempDir(prefix: string): { path: string; remove: () => void } {
  const path = mkdtempSync(join(tmpdir(), `ae-bench-${prefix}-`));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

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
