/**
 * The control server's HTTP API, called over a real socket: a client that submits and an agent
 * driven step by step by the test (claim, heartbeat with progress, report).
 */
import type { ClaimedCommand, Command, Progress } from '@agent-executor/common';

export class HttpApi {
  constructor(
    readonly url: string,
    private readonly token?: string,
  ) {}

  async submit(body: unknown): Promise<Command> {
    return this.call<Command>('POST', '/commands', body, 201);
  }

  async get(id: string): Promise<Command> {
    return this.call<Command>('GET', `/commands/${id}`, undefined, 200);
  }

  /** Plays an agent's poll: leases the oldest available command (fails when there is none). */
  async claim(agentId = 'test-agent'): Promise<ClaimedCommand> {
    return this.call<ClaimedCommand>('GET', `/commands/next?agentId=${agentId}`, undefined, 200);
  }

  async heartbeat(claimed: ClaimedCommand, progress?: Progress): Promise<void> {
    const body = { agentId: claimed.agentId, leaseId: claimed.leaseId, ...(progress ? { progress } : {}) };
    await this.call('POST', `/commands/${claimed.id}/heartbeat`, body, 200);
  }

  async report(
    claimed: ClaimedCommand,
    outcome: { status?: 'COMPLETED' | 'FAILED'; result?: unknown; error?: string; retryable?: boolean },
  ): Promise<Command> {
    const body = { agentId: claimed.agentId, leaseId: claimed.leaseId, ...outcome };
    return (await this.call<{ command: Command }>('PUT', `/commands/${claimed.id}/result`, body, 200)).command;
  }

  async cancel(id: string): Promise<Command> {
    return this.call<Command>('POST', `/commands/${id}/cancel`, undefined, 200);
  }

  private async call<T>(method: string, path: string, body: unknown, expected: number): Promise<T> {
    const headers: Record<string, string> = {};
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (this.token !== undefined) headers.authorization = `Bearer ${this.token}`;
    const res = await fetch(`${this.url}${path}`, {
      method,
      headers,
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    if (res.status !== expected) throw new Error(`${method} ${path}: expected ${expected}, got ${res.status} ${text}`);
    return (text === '' ? undefined : JSON.parse(text)) as T;
  }
}

/** Submits a DELAY command and takes it through RUNNING, progress and COMPLETED, as an agent would. */
export async function runDelayToCompletion(api: HttpApi, id: string, agentId = 'test-agent'): Promise<Command> {
  const claimed = await api.claim(agentId);
  if (claimed.id !== id) throw new Error(`claimed ${claimed.id}, expected ${id}`);
  await api.heartbeat(claimed, { percent: 50, message: 'halfway' });
  return api.report(claimed, { status: 'COMPLETED', result: { ok: true, tookMs: 5 } });
}
