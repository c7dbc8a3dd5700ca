/** The control server and real agents, as separate processes on free ports with temp databases. */
import { join } from 'node:path';
import { Api, metric } from './http.js';
import { AGENT_MAIN, SERVER_MAIN } from './paths.js';
import { waitForHealth } from '@agent-executor/common/processes';
import { freePort, spawnNode, waitUntil, type Started } from './processes.js';

export interface ServerOptions {
  dbPath: string;
  env?: Record<string, string>;
  /** Write a V8 CPU profile of the server into this directory (on a clean stop). */
  cpuProfDir?: string;
  /** SQLITE_SYNCHRONOUS of the server: `full` (its default) or `normal`. */
  sqliteSync?: 'full' | 'normal';
}

export interface BenchServer {
  url: string;
  port: number;
  proc: Started;
  api: Api;
  /** SIGTERM (so a --cpu-prof profile is written), SIGKILL after 15 s. */
  stop: () => Promise<void>;
}

export async function startServer(options: ServerOptions): Promise<BenchServer> {
  const port = await freePort();
  const nodeArgs = options.cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${options.cpuProfDir}`] : [];
  const proc = spawnNode('control-server', SERVER_MAIN, [], {
    nodeArgs,
    env: {
      HOST: '127.0.0.1',
      PORT: String(port),
      DB_PATH: options.dbPath,
      LOG_LEVEL: 'warn',
      SQLITE_SYNCHRONOUS: (options.sqliteSync ?? 'full').toUpperCase(),
      ...options.env,
    },
  });
  const url = `http://127.0.0.1:${port}`;
  const api = new Api(url, 16);
  try {
    await waitForHealth(proc, url, { timeoutMs: 30_000, intervalMs: 50 });
  } catch (err) {
    await proc.kill();
    await api.close();
    throw err;
  }
  return {
    url,
    port,
    proc,
    api,
    stop: async () => {
      await api.close();
      await proc.stop(15_000);
    },
  };
}

export interface AgentProcessOptions {
  serverUrl: string;
  dir: string;
  id: string;
  concurrency: number;
  longPollWait: number;
  pollInterval: number;
  /** Write a V8 CPU profile of the agent into this directory (on a clean stop: SIGTERM). */
  cpuProfDir?: string;
  /** Another build of the agent to run (a before/after comparison); default agent/dist/main.js. */
  main?: string;
}

/** `node agent/dist/main.js`, the real agent. */
export function startAgentProcess(o: AgentProcessOptions): Started {
  return spawnNode(`agent ${o.id}`, o.main ?? AGENT_MAIN, [], {
    nodeArgs: o.cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${o.cpuProfDir}`] : [],
    env: {
      SERVER_URL: o.serverUrl,
      AGENT_ID: o.id,
      CONCURRENCY: String(o.concurrency),
      LONG_POLL_WAIT: String(o.longPollWait),
      POLL_INTERVAL: String(o.pollInterval),
      IDEMPOTENCY_DB_PATH: join(o.dir, `${o.id}.db`),
      // Bench targets (latency's counting target) live on 127.0.0.1, refused by default.
      HTTP_BLOCK_PRIVATE: 'false',
      LOG_LEVEL: 'warn',
    },
  });
}

/** Resolves once at least `n` polls wait on the server (agents are ready for work). */
export async function waitForWaitingPolls(api: Api, n: number, procs: Started[], timeoutMs = 20_000): Promise<void> {
  await waitUntil(
    async () => {
      for (const p of procs) {
        if (!p.isRunning()) throw new Error(`${p.name} exited:\n${p.output()}`);
      }
      return metric(await api.metrics(), 'agent_executor_waiting_polls') >= n;
    },
    { timeoutMs, intervalMs: 50, what: `${n} waiting polls` },
  );
}
