/**
 * Real processes for the agent's integration tests: a control server on a temp database, agents
 * on their own temp databases, and waits on the state the server reports. Register
 * `useStack()` once per file: it kills every process and removes the temp dir after each test
 * (keeping and naming the dir when the test failed).
 */
import { join } from 'node:path';
import type { Command } from '@agent-executor/common';
import { afterEach, beforeEach } from 'vitest';
import { HttpApi } from '../../test-support/http-api.js';
import {
  killAll,
  startAgent,
  startServer,
  tempDir,
  waitFor,
  type RunningProcess,
  type RunningServer,
} from '../../test-support/processes.js';

export interface Stack {
  dir: string;
  /** Starts a server on this test's database (the same port again when given). */
  server: (env?: Record<string, string>, port?: number) => Promise<RunningServer>;
  /** Starts an agent against `server` with its own database `name`.db (the same name = the same agent's file). */
  agent: (server: RunningServer, name: string, env?: Record<string, string>, args?: string[]) => RunningProcess;
  dbPath: (name: string) => string;
}

export function useStack(): () => Stack {
  let current: Stack | undefined;
  let dir: ReturnType<typeof tempDir> | undefined;

  beforeEach(() => {
    dir = tempDir('agent-it');
    const path = dir.path;
    const dbPath = (name: string) => join(path, `${name}.db`);
    current = {
      dir: path,
      dbPath,
      server: (env = {}, port) => startServer({ DB_PATH: dbPath('server'), ...env }, port),
      agent: (server, name, env = {}, args = []) =>
        startAgent({ SERVER_URL: server.url, IDEMPOTENCY_DB_PATH: dbPath(name), LOG_LEVEL: 'debug', ...env }, args),
    };
  });

  afterEach(async ({ task }) => {
    await killAll();
    dir?.cleanup(task.result?.state !== 'fail');
  });

  return () => {
    if (!current) throw new Error('useStack(): only inside a test');
    return current;
  };
}

export function api(server: RunningServer): HttpApi {
  return new HttpApi(server.url);
}

/** Polls GET /commands/:id until `done` holds; fails with the last state seen. */
export async function waitForCommand(
  client: HttpApi,
  id: string,
  done: (command: Command) => boolean,
  { what = 'the command', timeoutMs = 15_000 } = {},
): Promise<Command> {
  let last: Command | undefined;
  try {
    return await waitFor(
      async () => {
        last = await client.get(id).catch(() => undefined);
        return last !== undefined && done(last) ? last : undefined;
      },
      { timeoutMs, what },
    );
  } catch (err) {
    throw new Error(`${(err as Error).message}; last seen: ${JSON.stringify(last)}`);
  }
}

export const isSettled = (c: Command) => c.status === 'COMPLETED' || c.status === 'FAILED';

/** How many times the agent's output says it started executing `id`. */
export function executionsIn(agent: RunningProcess, id: string): number {
  return agent.output().split('\n').filter((line) => line.includes(`${id} started`)).length;
}
