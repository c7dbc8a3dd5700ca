import type { ServerResponse } from 'node:http';
import type { ClaimedCommand } from '@agent-executor/common';

interface Waiter {
  agentId: string;
  max: number;
  response: ServerResponse;
  settle: (commands: ClaimedCommand[]) => void;
}

export interface LongPollOptions {
  claim: (agentId: string, max: number) => Promise<ClaimedCommand[]>;
  /** Gives a claimed command back when the poll it was meant for has gone away meanwhile. */
  release: (command: ClaimedCommand) => Promise<void>;
}

/**
 * Polls waiting for work, first come first served. `dispatch()` is called when work may have
 * appeared; it claims on behalf of the oldest live waiter until no work is left, so one new
 * command wakes exactly one poll. There is no timer over the database: only events wake it.
 */
export class LongPoll {
  private readonly waiters: Waiter[] = [];
  private dispatching = false;
  private dispatchAgain = false;
  private closed = false;

  constructor(private readonly options: LongPollOptions) {}

  get size(): number {
    return this.waiters.length;
  }

  /**
   * Resolves with up to `max` claimed commands, or none when the wait ends, the client leaves or
   * the server shuts down.
   */
  wait(agentId: string, max: number, ms: number, response: ServerResponse): Promise<ClaimedCommand[]> {
    if (this.closed) return Promise.resolve([]);
    return new Promise((resolve) => {
      const settle = (commands: ClaimedCommand[]) => {
        clearTimeout(timer);
        response.off('close', onClose);
        this.remove(waiter);
        resolve(commands);
      };
      const waiter: Waiter = { agentId, max, response, settle };
      // A client that hangs up (an agent killed while it waits) leaves the queue at once.
      const onClose = () => settle([]);
      const timer = setTimeout(() => settle([]), ms);
      response.once('close', onClose);
      this.waiters.push(waiter);
      // Work may have arrived between the caller's own claim and this registration.
      void this.dispatch();
    });
  }

  async dispatch(): Promise<void> {
    if (this.dispatching) {
      this.dispatchAgain = true;
      return;
    }
    this.dispatching = true;
    try {
      do {
        this.dispatchAgain = false;
        await this.handOut();
      } while (this.dispatchAgain);
    } finally {
      this.dispatching = false;
    }
  }

  private async handOut(): Promise<void> {
    for (let waiter = this.waiters[0]; waiter; waiter = this.waiters[0]) {
      if (isGone(waiter.response)) {
        waiter.settle([]);
        continue;
      }
      const commands = await this.options.claim(waiter.agentId, waiter.max);
      if (commands.length === 0) return;
      if (isGone(waiter.response) || !this.waiters.includes(waiter)) {
        await Promise.all(commands.map((command) => this.options.release(command)));
        continue;
      }
      waiter.settle(commands);
    }
  }

  /** Answers every waiting poll with "no work" (204); later waits answer at once. */
  close(): void {
    this.closed = true;
    for (const waiter of [...this.waiters]) waiter.settle([]);
  }

  private remove(waiter: Waiter): void {
    const index = this.waiters.indexOf(waiter);
    if (index !== -1) this.waiters.splice(index, 1);
  }
}

function isGone(response: ServerResponse): boolean {
  return response.destroyed || response.socket === null || response.socket.destroyed;
}
