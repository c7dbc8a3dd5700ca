import { CommandStatus } from '@agent-executor/common';

/**
 * The moves of one write between statuses, added to the counts by status in that write's own
 * transaction by both stores (SQLite's `command_counts`: at most four small updates per commit;
 * PostgreSQL's event counter row: one), so a batch of 1 000 submits is one update, not 1 000.
 * (Triggers did the same per row in SQLite: +8.7 µs per submit, half the cost of the insert.)
 */
export class StatusCounts {
  private readonly delta: Record<CommandStatus, number> = { PENDING: 0, RUNNING: 0, COMPLETED: 0, FAILED: 0 };

  /** A command moved from `from` to `to`; null: it did not exist before, or no longer exists. */
  move(from: CommandStatus | null, to: CommandStatus | null): void {
    if (from === to) return;
    if (from !== null) this.delta[from]--;
    if (to !== null) this.delta[to]++;
  }

  /** The statuses whose count changed, and by how much. */
  changes(): Array<[CommandStatus, number]> {
    return (Object.entries(this.delta) as Array<[CommandStatus, number]>).filter(([, n]) => n !== 0);
  }

  /** Every status's change, in the order of CommandStatus (PENDING, RUNNING, COMPLETED, FAILED). */
  inOrder(): number[] {
    return CommandStatus.options.map((status) => this.delta[status]);
  }

  /** Adds the moves of `other` (a write that succeeded) to these (its commit's). */
  add(other: StatusCounts): void {
    for (const [status, n] of other.changes()) this.delta[status] += n;
  }

  clear(): void {
    for (const status of Object.keys(this.delta) as CommandStatus[]) this.delta[status] = 0;
  }
}
