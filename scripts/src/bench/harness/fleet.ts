/**
 * A fleet of agents for a scenario: real agent processes (`node agent/dist/main.js`), or protocol
 * agents (workers/protocol-agent.ts) that speak the agent protocol with no agent-side costs.
 */
import type { Started } from './processes.js';
import type { Options } from './scenario.js';
import { startAgentProcess, waitForWaitingPolls, type BenchServer } from './server.js';
import { startWorker } from './workers.js';

export const AGENT_KINDS = ['process', 'protocol'] as const;
export type AgentKind = (typeof AGENT_KINDS)[number];

export interface FleetOptions {
  kind: AgentKind;
  /** SERVER_URL of every agent, or of the i-th (replicas: agents spread over them). */
  serverUrl: string | ((agent: number) => string);
  /** Where real agents keep their idempotency databases. */
  dir: string;
  agents: number;
  concurrency: number;
  /** Seconds; 0 = plain polling every `pollInterval` ms. */
  longPollWait: number;
  pollInterval: number;
  /** Protocol agents only: one command per request, or next-batch + batched reports. */
  protocolMode?: 'single' | 'batch';
  claimMax?: number;
  /** Real agents only: profile each agent (node --cpu-prof) into this directory. */
  cpuProfDir?: string;
  /** Real agents only: the agent's main script, when not agent/dist/main.js (another build). */
  agentMain?: string;
}

export interface Fleet {
  procs: Started[];
  /** How many polls the idle fleet keeps waiting on the server, at least. */
  idlePolls: number;
  stop: () => Promise<void>;
}

export async function startFleet(o: FleetOptions): Promise<Fleet> {
  const procs: Started[] = [];
  try {
    for (let i = 0; i < o.agents; i++) {
      const id = `bench-${o.kind}-${i + 1}`;
      const serverUrl = typeof o.serverUrl === 'string' ? o.serverUrl : o.serverUrl(i);
      if (o.kind === 'process') {
        procs.push(
          startAgentProcess({
            serverUrl,
            dir: o.dir,
            id,
            concurrency: o.concurrency,
            longPollWait: o.longPollWait,
            pollInterval: o.pollInterval,
            ...(o.cpuProfDir ? { cpuProfDir: o.cpuProfDir } : {}),
            ...(o.agentMain ? { main: o.agentMain } : {}),
          }),
        );
      } else {
        const worker = startWorker('protocol-agent', [
          `--url=${serverUrl}`,
          `--id=${id}`,
          `--loops=${o.concurrency}`,
          `--mode=${o.protocolMode ?? 'single'}`,
          `--max=${o.claimMax ?? 64}`,
          `--wait=${o.longPollWait}`,
          `--poll-interval=${o.pollInterval}`,
        ]);
        procs.push(worker.proc);
        await worker.next('ready', 20_000);
      }
    }
  } catch (err) {
    await Promise.all(procs.map((p) => p.kill()));
    throw err;
  }
  return {
    procs,
    idlePolls: o.kind === 'protocol' ? o.agents * o.concurrency : o.agents,
    // Agents are load here, not the subject: SIGKILL them (a real agent would drain for DRAIN_MS),
    // unless they are profiled: a profile is written on a clean exit only (SIGTERM; idle agents
    // drain at once).
    stop: async () => {
      await Promise.all(procs.map((p) => (o.cpuProfDir ? p.stop(15_000) : p.kill())));
    },
  };
}

/**
 * The load most scenarios put on one server: real agents as the `agents` and `concurrency` options
 * say, long-polling 25 s, started and waiting for work.
 */
export async function startWaitingAgents(o: Options, server: BenchServer, dir: string): Promise<Fleet> {
  const fleet = await startFleet({
    kind: 'process',
    serverUrl: server.url,
    dir,
    agents: o.num('agents'),
    concurrency: o.num('concurrency'),
    longPollWait: 25,
    pollInterval: 2000,
  });
  try {
    await waitForWaitingPolls(server.api, fleet.idlePolls, fleet.procs);
  } catch (err) {
    await fleet.stop();
    throw err;
  }
  return fleet;
}
