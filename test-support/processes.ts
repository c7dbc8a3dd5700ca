/**
 * Real processes for integration tests: free ports, temp dirs, the built entry points started
 * and waited for, and every process stopped by pid (SIGKILL is the point of the crash tests).
 * Spawning, health and output live in `@agent-executor/common/processes`, shared with the bench
 * and the chaos drill; this file adds what only tests want (temp dirs kept on failure, defaults).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, spawnNode, stopAll, waitForHealth, waitForOutput, waitUntil, type Started } from '@agent-executor/common/processes';

export { freePort, waitForOutput };
/** Polls `probe` until it gives a value (not undefined/false); throws after `timeoutMs`. */
export const waitFor = waitUntil;

export const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));
export const SERVER_MAIN = join(REPO_ROOT, 'control-server/dist/main.js');
export const AGENT_MAIN = join(REPO_ROOT, 'agent/dist/main.js');

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

export type RunningProcess = Started;

/** `node script args` with LOG_LEVEL=warn unless `env` says otherwise. */
export function startProcess(script: string, args: string[], env: Record<string, string>): RunningProcess {
  return spawnNode(basename(script), script, args, { env: { LOG_LEVEL: 'warn', ...env } });
}

/** SIGKILLs every process started through this module that is still running. Call in afterEach/afterAll. */
export const killAll = stopAll;

export interface RunningServer extends RunningProcess {
  url: string;
  port: number;
}

/** Starts `node control-server/dist/main.js` and waits until /health answers 200. */
export async function startServer(env: Record<string, string> & { DB_PATH: string }, port?: number): Promise<RunningServer> {
  const chosen = port ?? (await freePort());
  const proc = startProcess(SERVER_MAIN, [], { HOST: '127.0.0.1', PORT: String(chosen), ...env });
  const url = `http://127.0.0.1:${chosen}`;
  await waitForHealth(proc, url);
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
