import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { Agent } from 'undici';

/** One server of SERVER_URL with its own keep-alive pool. */
export interface Server {
  readonly index: number;
  readonly url: string;
  readonly dispatcher: Agent;
}

/**
 * The servers an agent may talk to (SERVER_URL: one URL, or several replicas on one shared store,
 * SPEC §8) and the one it talks to now. Every call goes to the current server. A network error or
 * a 5xx there makes the next one in the list current (after the last, the first), with one warning
 * per switch. The agent sticks to a server that works: it does not spread calls over the list,
 * and it returns to a server only by failing over to it again.
 *
 * Which server is current at start is chosen from the agent's id, so a fleet given one list spreads
 * over the replicas (with a switch only on failure, "everyone starts at the first" would leave the
 * other replicas idle), and one agent starts at the same replica every time.
 *
 * A 4xx never switches: that server answered, and every replica shares one store, so another
 * one would say the same. A lease taken at one replica is valid at every other, so heartbeats
 * and reports follow the switch as polls do.
 */
export class Failover {
  private readonly servers: Server[];
  private current: number;

  constructor(urls: readonly string[], agentId: string, private readonly log: Logger) {
    if (urls.length === 0) throw new Error('Failover: no server URL');
    // One pool per server: a switch leaves the other pools' connections as they are.
    this.servers = urls.map((url, index) => ({ index, url, dispatcher: new Agent({ keepAliveTimeout: 10_000 }) }));
    this.current = firstServer(agentId, urls.length);
  }

  get size(): number {
    return this.servers.length;
  }

  /** The server calls go to now. */
  pick(): Server {
    return this.servers[this.current] as Server;
  }

  /**
   * `server` failed a call (a network error or a 5xx). If it is still the current one, the next
   * becomes current and that is logged; calls in flight on it when it failed report the same
   * failure, and those switch nothing more (nor log). Answers whether this call switched.
   */
  failed(server: Server, reason: string): boolean {
    if (this.servers.length === 1 || server.index !== this.current) return false;
    this.current = (server.index + 1) % this.servers.length;
    this.log.warn({ from: server.url, to: this.pick().url }, `server ${server.url} failed (${reason}); switching to ${this.pick().url}`);
    return true;
  }

  async close(): Promise<void> {
    await Promise.all(this.servers.map((s) => s.dispatcher.destroy()));
  }
}

/** Index of the server an agent starts with: a hash of its id, so a fleet spreads over the list. */
export function firstServer(agentId: string, count: number): number {
  return createHash('sha256').update(agentId).digest().readUInt32BE(0) % count;
}
