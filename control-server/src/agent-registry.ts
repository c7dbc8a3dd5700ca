import type { AgentView, QueueView } from '@agent-executor/common';
import type { AgentRecord, CommandStore } from './store/store.js';

export interface AgentRegistryOptions {
  /** Not seen for this long: `gone`. */
  goneAfterMs: number;
  /** How stale a stored lastSeenAt may get before the periodic flush writes it. */
  flushMs?: number;
  now?: () => number;
  onError: (err: unknown) => void;
}

/** What a poll tells of its agent. */
export interface AgentInfo {
  queues: string[];
  types: string[];
  hostname?: string | undefined;
  version?: string | undefined;
  concurrency?: number | undefined;
}

const SHOWN_FOR_MS = 60 * 60 * 1000;

/**
 * The agents seen polling or heartbeating (SPEC §9), in memory and in the store's `agents` table.
 * A poll costs no write unless what the agent advertises changed: lastSeenAt is kept in memory
 * and flushed every `flushMs` (5 s), so the table is never more than a flush behind; with a store
 * other replicas write (`store.shared`), each flush also reads back what they stored (their agents
 * and drain flags).
 */
export class AgentRegistry {
  private readonly agents = new Map<string, AgentRecord>();
  private readonly dirty = new Set<string>();
  private readonly now: () => number;
  private readonly flushMs: number;
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  /** A write of changed adverts is queued for the next turn of the event loop. */
  private writeQueued = false;

  constructor(
    private readonly store: CommandStore,
    private readonly options: AgentRegistryOptions,
  ) {
    this.now = options.now ?? Date.now;
    this.flushMs = options.flushMs ?? 5_000;
  }

  start(): void {
    this.timer = setInterval(() => void this.flush().catch(this.options.onError), this.flushMs);
    this.timer.unref();
    void this.reload().catch(this.options.onError);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.flush().catch(this.options.onError);
  }

  /**
   * A poll of `id`: its route and details. A change is written in the next turn (one write for
   * every change of that turn), a mere sighting with the next flush.
   */
  polled(id: string, info: AgentInfo): void {
    const known = this.agents.get(id);
    const record: AgentRecord = {
      id,
      hostname: info.hostname ?? null,
      version: info.version ?? null,
      queues: info.queues,
      types: info.types,
      concurrency: info.concurrency ?? null,
      lastSeenAt: this.now(),
      draining: known?.draining ?? false,
    };
    this.agents.set(id, record);
    this.dirty.add(id);
    if (!known || !sameAdvert(known, record)) this.writeSoon();
  }

  /** A heartbeat of `id`: it is alive (an agent not yet known is learnt from its next poll). */
  heartbeat(id: string): void {
    const known = this.agents.get(id);
    if (!known) return;
    known.lastSeenAt = this.now();
    this.dirty.add(id);
  }

  isDraining(id: string): boolean {
    return this.agents.get(id)?.draining === true;
  }

  /** Marks `id` draining; false when no such agent was ever seen. */
  async drain(id: string): Promise<boolean> {
    await this.flush();
    if (!(await this.store.drainAgent(id))) return false;
    const known = this.agents.get(id);
    if (known) known.draining = true;
    return true;
  }

  /** Live agents not draining that serve `queue` and `type`. */
  servers(queue: string, type: string): number {
    let n = 0;
    for (const agent of this.agents.values()) {
      if (this.state(agent) === 'active' && agent.queues.includes(queue) && agent.types.includes(type)) n++;
    }
    return n;
  }

  async list(): Promise<AgentView[]> {
    await this.flush();
    const running = await this.store.runningByAgent();
    return [...this.agents.values()]
      .filter((agent) => agent.lastSeenAt >= this.now() - SHOWN_FOR_MS)
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
      .map((agent) => ({
        id: agent.id,
        hostname: agent.hostname,
        version: agent.version,
        queues: agent.queues,
        types: agent.types,
        concurrency: agent.concurrency,
        inFlight: running.get(agent.id) ?? 0,
        lastSeenAt: new Date(agent.lastSeenAt).toISOString(),
        state: this.state(agent),
      }));
  }

  async queues(): Promise<QueueView[]> {
    await this.flush();
    const now = this.now();
    const views = new Map<string, QueueView>();
    for (const counts of await this.store.queueCounts()) {
      views.set(counts.queue, {
        queue: counts.queue,
        pending: counts.pending,
        running: counts.running,
        oldestPendingAgeMs: counts.oldestPendingAt === null ? null : Math.max(0, now - counts.oldestPendingAt),
        agents: [],
      });
    }
    for (const agent of this.agents.values()) {
      if (this.state(agent) === 'gone') continue;
      for (const queue of agent.queues) {
        const view = views.get(queue) ?? { queue, pending: 0, running: 0, oldestPendingAgeMs: null, agents: [] };
        view.agents.push(agent.id);
        views.set(queue, view);
      }
    }
    return [...views.values()].sort((a, b) => (a.queue < b.queue ? -1 : 1));
  }

  private state(agent: AgentRecord): AgentView['state'] {
    if (agent.lastSeenAt < this.now() - this.options.goneAfterMs) return 'gone';
    return agent.draining ? 'draining' : 'active';
  }

  /**
   * Writes what changed since the last flush, then reads back what other replicas wrote (only
   * when there can be any: reading 10 000 agents back every 5 s was a tenth of an idle SQLite
   * server's CPU, for rows it had written itself).
   */
  async flush(): Promise<void> {
    await this.sync(this.store.shared);
  }

  /**
   * Writes the changed adverts without reading the table back: the read costs the whole fleet,
   * and a fleet that starts (every poll a new agent) would read it once per agent. The periodic
   * flush reads it (when other replicas write it).
   */
  private writeSoon(): void {
    if (this.writeQueued) return;
    this.writeQueued = true;
    setImmediate(() => {
      this.writeQueued = false;
      this.sync(false).catch(this.options.onError);
    });
  }

  private async sync(reload: boolean): Promise<void> {
    while (this.flushing) await this.flushing;
    this.flushing = (async () => {
      const records = [...this.dirty].map((id) => this.agents.get(id)).filter((r): r is AgentRecord => r !== undefined);
      this.dirty.clear();
      await this.store.saveAgents(records);
      if (reload) await this.reload();
      else this.forget();
    })().finally(() => (this.flushing = undefined));
    await this.flushing;
  }

  /** Forgets the agents not seen for SHOWN_FOR_MS whose sighting is written; answers that bound. */
  private forget(): number {
    const shownSince = this.now() - SHOWN_FOR_MS;
    for (const [id, agent] of this.agents) if (agent.lastSeenAt < shownSince && !this.dirty.has(id)) this.agents.delete(id);
    return shownSince;
  }

  private async reload(): Promise<void> {
    const shownSince = this.forget();
    for (const stored of await this.store.loadAgents(shownSince)) {
      const known = this.agents.get(stored.id);
      if (!known) this.agents.set(stored.id, stored);
      else {
        known.draining ||= stored.draining;
        if (stored.lastSeenAt > known.lastSeenAt) Object.assign(known, { ...stored, draining: known.draining });
      }
    }
  }
}

function sameAdvert(a: AgentRecord, b: AgentRecord): boolean {
  return (
    a.hostname === b.hostname &&
    a.version === b.version &&
    a.concurrency === b.concurrency &&
    a.queues.join(',') === b.queues.join(',') &&
    a.types.join(',') === b.types.join(',')
  );
}
