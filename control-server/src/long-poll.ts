import type { ServerResponse } from 'node:http';
import { setImmediate as setImmediatePromise } from 'node:timers/promises';
import type { ClaimedCommand } from '@agent-executor/common';
import { routeKey } from './store/claim-route.js';
import type { ClaimRequest, Route } from './store/store.js';

interface Waiter {
  agentId: string;
  max: number;
  route: Route;
  /** The route as one string: waiters with the same one compete for the same commands. */
  shape: string;
  response: ServerResponse;
  /** Answered (work, timeout, hang-up or shutdown) and out of the queue. */
  settled: boolean;
  settle: (commands: ClaimedCommand[]) => void;
}

export interface LongPollOptions {
  /** Claims for each request in order, in one transaction (see `CommandStore.claimEach`). */
  claim: (requests: ClaimRequest[]) => Promise<ClaimedCommand[][]>;
  /** Gives a claimed command back when the poll it was meant for has gone away meanwhile. */
  release: (command: ClaimedCommand) => Promise<void>;
  /** A claim or release failed (the database refused a write): the polls keep waiting. */
  onError: (err: unknown) => void;
}

/** Waiting polls served by one claim transaction, at most: they share its commit. */
const WAITERS_PER_CLAIM = 64;

/**
 * Polls waiting for work, first come first served. `dispatch()` is called when work may have
 * appeared; it claims on behalf of the oldest live waiters, in one transaction, until no work is
 * left, so one new command wakes exactly one poll. There is no timer over the database: only
 * events wake it.
 */
export class LongPoll {
  /**
   * In arrival order (a Set keeps it). Leaving is O(1): with 10 000 polls, an array's search and
   * splice on each renewal was 5 % of an idle fleet's server CPU.
   */
  private readonly waiters = new Set<Waiter>();
  private dispatching = false;
  private dispatchAgain = false;
  private closed = false;
  /** How many times work may have appeared (calls of `dispatch`); see `wait`'s `since`. */
  private signals = 0;
  /**
   * Routes (routeKey) that a claim begun since the last signal left wanting: nothing of theirs can
   * be claimed until work appears again, which signals (and clears this).
   */
  private readonly drained = new Set<string>();

  constructor(private readonly options: LongPollOptions) {}

  get size(): number {
    return this.waiters.size;
  }

  /** Read it before a claim that found nothing, and pass it to `wait` as `since`. */
  get mark(): number {
    return this.signals;
  }

  /**
   * A claim for `route` begun at `mark` found less than it asked for. If nothing has signalled
   * since, the route has nothing claimable until something does (see `isDrained`).
   */
  drainedAt(route: Route, mark: number): void {
    if (mark === this.signals) this.drained.add(routeKey(route));
  }

  /**
   * Whether a claim for `route` now would find nothing: one begun since the last signal came back
   * short, and work that appeared since signals — a commit here, another replica's notification, a
   * lease or backoff ending (the reaper). A poll of an idle fleet then waits without a claim of its
   * own: the agent that just reported (its claim along found nothing) polls again at once.
   */
  isDrained(route: Route): boolean {
    return this.drained.has(routeKey(route));
  }

  /**
   * Resolves with up to `max` claimed commands, or none when the wait ends, the client leaves or
   * the server shuts down. `since` is `mark` as read before the caller's own claim: when nothing
   * has signalled work since, that claim saw everything and the poll just waits; otherwise (or
   * without `since`) it claims again at once, for work that arrived in between.
   */
  wait(
    agentId: string,
    max: number,
    route: Route,
    ms: number,
    response: ServerResponse,
    since?: number,
  ): Promise<ClaimedCommand[]> {
    if (this.closed) return Promise.resolve([]);
    return new Promise((resolve) => {
      const settle = (commands: ClaimedCommand[]) => {
        waiter.settled = true;
        clearTimeout(timer);
        response.off('close', onClose);
        this.waiters.delete(waiter);
        resolve(commands);
      };
      const shape = routeKey(route);
      const waiter: Waiter = { agentId, max, route, shape, response, settled: false, settle };
      // A client that hangs up (an agent killed while it waits) leaves the queue at once.
      const onClose = () => settle([]);
      const timer = setTimeout(() => settle([]), ms);
      response.once('close', onClose);
      this.waiters.add(waiter);
      if (since === undefined || since !== this.signals) void this.dispatch();
    });
  }

  /** Work may have appeared: hand it to the waiting polls. Never rejects (see `onError`). */
  async dispatch(): Promise<void> {
    this.signals++;
    this.drained.clear();
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
    } catch (err) {
      this.options.onError(err);
    } finally {
      this.dispatching = false;
    }
  }

  private async handOut(): Promise<void> {
    // Routes (queues × types) that found less than a poll asked for in this pass: the polls that
    // wait behind with the same route would find nothing, but polls of other routes may.
    const exhausted = new Set<string>();
    for (;;) {
      const waiters = this.liveHead(exhausted);
      if (waiters.length === 0) return;
      const mark = this.signals;
      const answers = await this.options.claim(
        waiters.map(({ agentId, max, route }) => ({ agentId, max, queues: route.queues, types: route.types })),
      );
      // One turn of the event loop first, so hang-ups that arrived while the claim committed are
      // seen (a poll that left gets nothing and its commands go back) before anything is written.
      await setImmediatePromise();
      await Promise.all(answers.map((commands, i) => this.deliver(waiters[i]!, commands)));
      waiters.forEach((waiter, i) => {
        if ((answers[i]?.length ?? 0) >= waiter.max) return;
        exhausted.add(waiter.shape);
        this.drainedAt(waiter.route, mark);
      });
    }
  }

  /**
   * The oldest waiting polls whose clients are still there and whose route may still find work;
   * the gone ones are dropped on the way.
   */
  private liveHead(exhausted: ReadonlySet<string>): Waiter[] {
    const live: Waiter[] = [];
    for (const waiter of this.waiters) {
      if (live.length === WAITERS_PER_CLAIM) break;
      // Settling removes it from the set; the iteration goes on with the next one.
      if (isGone(waiter.response)) waiter.settle([]);
      else if (!exhausted.has(waiter.shape)) live.push(waiter);
    }
    return live;
  }

  private async deliver(waiter: Waiter, commands: ClaimedCommand[]): Promise<void> {
    if (commands.length === 0) return;
    // Settled meanwhile (its wait ended) or gone: the commands go back. A flag, not a search of
    // the queue, which can hold 10 000 polls.
    if (waiter.settled || isGone(waiter.response)) {
      await Promise.all(commands.map((command) => this.options.release(command)));
      return;
    }
    waiter.settle(commands);
    // The client may still leave before the answer is out (its hang-up was on its way): an answer
    // that never left goes back too, rather than wait for its leases to run out.
    const { response } = waiter;
    response.once('close', () => {
      if (response.writableFinished) return;
      Promise.all(commands.map((command) => this.options.release(command))).catch((err: unknown) => this.options.onError(err));
    });
  }

  /** Answers the waiting polls of `agentId` at once with no work (it is being drained). */
  release(agentId: string): void {
    for (const waiter of [...this.waiters]) if (waiter.agentId === agentId) waiter.settle([]);
  }

  /** Answers every waiting poll with "no work" (204); later waits answer at once. */
  close(): void {
    this.closed = true;
    for (const waiter of [...this.waiters]) waiter.settle([]);
  }
}

function isGone(response: ServerResponse): boolean {
  return response.destroyed || response.socket === null || response.socket.destroyed;
}
