/**
 * The chaos drill's judge on synthetic runs: a clean run passes, and each broken guarantee is
 * reported against the command that broke it. (The drill itself, with real processes, is
 * chaos.test.ts; this proves its checks can fail.)
 */
import { describe, expect, it } from 'vitest';
import { judge, storyOf } from '../src/chaos/checks.js';
import type { AgentDeath, CommandRecord, EventRecord, Evidence, OutboxRow, ServerDeath } from '../src/chaos/evidence.js';

const T0 = 1_800_000_000_000;

function command(n: number, over: Partial<CommandRecord> = {}): CommandRecord {
  const http = n % 3 !== 2;
  return {
    id: `id-${n}`,
    key: `k-${n}`,
    type: http ? 'HTTP_GET_JSON' : 'DELAY',
    status: 'COMPLETED',
    error: null,
    attempts: 1,
    maxAttempts: 3,
    agentId: 'agent-1',
    resultKey: http ? `k-${n}` : null,
    ...over,
  };
}

function history(c: CommandRecord): EventRecord[] {
  const n = Number(c.id.slice(3));
  const at = T0 + 1000 * n;
  // Commands run one after another: command n has event ids 3n+1…3n+3.
  return [
    { seq: 3 * n + 1, transition: 'submit', status: 'PENDING', agentId: null, attempts: 0, error: null, at },
    { seq: 3 * n + 2, transition: 'claim', status: 'RUNNING', agentId: 'agent-1', attempts: 1, error: null, at: at + 10 },
    { seq: 3 * n + 3, transition: 'report', status: c.status, agentId: 'agent-1', attempts: c.attempts, error: c.error, at: at + 20 },
  ];
}

function row(commandId: string, state: OutboxRow['state'], over: Partial<OutboxRow> = {}): OutboxRow {
  const finished = state !== 'started';
  return { commandId, leaseId: 'L', state, status: finished ? 'COMPLETED' : null, error: null, executions: 1, note: null, ...over };
}

function death(over: Partial<AgentDeath> = {}): AgentDeath {
  return { agent: 'agent-1', life: 1, randomFailures: false, by: 'drill', how: 'SIGKILL', at: T0 + 5_000, started: [], unreported: [], ...over };
}

/** A clean run of six commands; `change` breaks it. */
function run(change: (e: Evidence) => void = () => {}): Evidence {
  const commands = Array.from({ length: 6 }, (_, n) => command(n));
  const e: Evidence = {
    run: { replicas: 1, agentsKillable: true, leaseMs: 6000, gaveUp: null },
    submits: commands.map((c) => ({ key: c.key as string, type: c.type, answer: 'created', id: c.id, tries: 1, detail: null })),
    commands,
    events: new Map(commands.map((c) => [c.id, history(c)])),
    witness: new Map(commands.filter((c) => c.type === 'HTTP_GET_JSON').map((c) => [c.key as string, { executions: 1, maxConcurrent: 1, cutOff: 0 }])),
    agentDeaths: [],
    serverDeaths: [],
    outboxes: new Map(),
    leaseLosses: [],
    eventIds: Array.from({ length: 18 }, (_, i) => i + 1),
    sse: { received: Array.from({ length: 18 }, (_, i) => i + 1), resumes: [{ at: T0, replica: 0, lastEventId: 0 }], resets: 0 },
  };
  change(e);
  // The agent's outbox agrees with the server, unless the test said otherwise.
  if (e.outboxes.size === 0) {
    const rows = e.commands.map((c) =>
      c.status === 'COMPLETED' || c.status === 'FAILED' ? row(c.id, 'reported', { status: c.status, error: c.error }) : row(c.id, 'started'),
    );
    e.outboxes.set('agent-1', rows);
  }
  return e;
}

const checks = (e: Evidence) => judge(e).violations.map((v) => `${v.check}:${v.guarantee ?? '-'}:${v.key ?? ''}`);

describe('chaos checks', () => {
  it('a clean run has no violation, and its figures add up', () => {
    const { violations, stats } = judge(run());
    expect(violations).toEqual([]);
    expect(stats).toMatchObject({ submitted: 6, created: 6, stored: 6, completed: 6, lost: 0, notTerminal: 0, httpCommands: 4, witnessedExecutions: 4, executedTwice: 0 });
  });

  it('a 201 whose command is missing is lost (guarantee 1)', () => {
    const e = run((e) => {
      e.commands.splice(1, 1);
      e.events.delete('id-1');
    });
    expect(checks(e)).toEqual(['lost:1:k-1']);
    expect(judge(e).stats.lost).toBe(1);
  });

  it('a command no submit made (a retried submit stored twice) is flagged', () => {
    const e = run((e) => {
      const twin = command(9, { key: null });
      e.commands.push(twin);
      e.events.set(twin.id, history(twin));
    });
    expect(checks(e)).toEqual(['unknown-command:1:']);
  });

  it('a command not terminal at the end breaks guarantee 5, and so does giving up', () => {
    const e = run((e) => {
      Object.assign(e.commands[2] as CommandRecord, { status: 'RUNNING' });
      (e.events.get('id-2') as EventRecord[]).pop();
      e.run.gaveUp = 'deadline of 60 s reached';
    });
    expect(checks(e)).toEqual(['gave-up:5:', 'not-terminal:5:k-2']);
  });

  it("FAILED 'lease expired' or 'interrupted' with attempts left is a leak; with attempts spent it is not", () => {
    const e = run((e) => {
      for (const [n, error, attempts] of [[0, 'lease expired', 1], [1, 'interrupted', 2], [3, 'interrupted', 3]] as const) {
        const c = Object.assign(e.commands[n] as CommandRecord, { status: 'FAILED', error, attempts, resultKey: null });
        e.events.set(c.id, history(c));
      }
    });
    expect(checks(e)).toEqual(['leaked-attempt:6:k-0', 'leaked-attempt:6:k-1']);
  });

  it('duplicates are allowed one per attempt a crash cut off, and flagged beyond', () => {
    const e = run((e) => {
      e.witness.set('k-0', { executions: 2, maxConcurrent: 1, cutOff: 1 });
      e.witness.set('k-1', { executions: 3, maxConcurrent: 1, cutOff: 0 });
      e.agentDeaths.push(death({ started: [row('id-0', 'started')] }), death({ life: 2, started: [row('id-1', 'started')] }));
    });
    // k-0: 1 extra, 1 cut off. k-1: 2 extra, 1 cut off; and 3 extra > 2 cut-offs overall.
    expect(checks(e)).toEqual(['duplicate-execution:6:k-1', 'duplicates-exceed-cut-offs:6:']);
    const v = judge(e).violations[0];
    expect(v?.why).toMatch(/executed 3 times, but only 1 attempt\(s\) of it were cut off mid-execution and 0 finished outcome/);
    expect(storyOf(e, v as never)).toMatchObject({ witness: { executions: 3 }, deaths: [{ agent: 'agent-1', life: 2, state: 'started' }] });
    expect(storyOf(e, v as never)?.history.map((h) => h.transition)).toEqual(['submit', 'claim', 'report']);
  });

  it('an outcome a death kept from the server excuses a re-run only if the lease expired before the agent was back', () => {
    const kept = (expired: boolean) =>
      run((e) => {
        e.witness.set('k-1', { executions: 2, maxConcurrent: 1, cutOff: 0 });
        e.agentDeaths.push(death({ unreported: [row('id-1', 'finished')] }));
        if (expired) {
          const at = T0 + 6_000;
          (e.events.get('id-1') as EventRecord[]).splice(2, 0, { seq: 3, transition: 'expire', status: 'PENDING', agentId: 'agent-1', attempts: 1, error: 'lease expired', at });
        }
      });
    expect(checks(kept(true))).toEqual([]);
    // Back in time, the agent should have reported its finished outcome; someone ran it again.
    expect(checks(kept(false))).toEqual(['duplicate-execution:6:k-1', 'duplicates-exceed-cut-offs:6:']);
  });

  it('one kill that cut off several commands allows a duplicate of each (CONCURRENCY > 1)', () => {
    const e = run((e) => {
      e.witness.set('k-0', { executions: 2, maxConcurrent: 1, cutOff: 1 });
      e.witness.set('k-1', { executions: 2, maxConcurrent: 1, cutOff: 1 });
      e.agentDeaths.push(death({ started: [row('id-0', 'started'), row('id-1', 'started')] }));
    });
    expect(checks(e)).toEqual([]);
    expect(judge(e).stats).toMatchObject({ executedTwice: 2, extraExecutions: 2, killsMidExecution: 1, attemptsCutOff: 2 });
  });

  it('with only the server killed, any second execution breaks guarantee 4', () => {
    const e = run((e) => {
      e.run.agentsKillable = false;
      e.witness.set('k-3', { executions: 2, maxConcurrent: 1, cutOff: 0 });
    });
    expect(checks(e)).toEqual(['duplicate-execution:4:k-3', 'duplicates-exceed-cut-offs:6:']);
    expect(judge(e).violations[0]?.why).toMatch(/only the server was killed/);
  });

  it('two requests in flight at once for one command break guarantee 2', () => {
    const e = run((e) => {
      e.witness.set('k-4', { executions: 2, maxConcurrent: 2, cutOff: 0 });
      e.agentDeaths.push(death({ started: [row('id-4', 'started')] }));
    });
    expect(checks(e)).toEqual(['concurrent-execution:2:k-4']);
  });

  it('a COMPLETED result the target never served, or served to another command, is a phantom', () => {
    const e = run((e) => {
      e.witness.delete('k-0');
      Object.assign(e.commands[1] as CommandRecord, { resultKey: 'k-4' });
    });
    expect(checks(e)).toEqual(['phantom-result:4:k-0', 'phantom-result:4:k-1']);
  });

  it('an agent that runs again what it had finished COMPLETED breaks guarantee 3', () => {
    const e = run((e) => {
      e.agentDeaths.push(death({ unreported: [row('id-5', 'finished', { executions: 1 })] }));
      e.outboxes.set('agent-1', [row('id-5', 'reported', { executions: 2 })]);
    });
    expect(checks(e)).toContain('rerun-after-finish:3:k-5');
  });

  it('a report the server took must not be lost', () => {
    const e = run((e) => {
      const c = Object.assign(e.commands[5] as CommandRecord, { status: 'FAILED', error: 'timeout' });
      e.events.set(c.id, history(c));
      e.outboxes.set('agent-1', [row(c.id, 'reported', { status: 'COMPLETED' })]);
    });
    expect(checks(e)).toEqual(['lost-report:4:k-5']);
  });

  it('a lease given up after a short server restart is a violation; after a long one it is excused', () => {
    const restart = (at: number, downMs: number): ServerDeath => ({ n: 1, replica: 0, by: 'drill', how: 'SIGKILL', at, downMs });
    const loss = { agent: 'agent-1', commandId: 'id-2', why: 'not renewed within 6000 ms', at: T0 + 10_000 };
    const short = run((e) => {
      e.serverDeaths.push(restart(T0 + 8_000, 1_000));
      e.leaseLosses.push(loss);
    });
    expect(checks(short)).toEqual(['lease-lost:4:k-2']);
    const long = run((e) => {
      e.serverDeaths.push(restart(T0 + 4_000, 5_000));
      e.leaseLosses.push(loss);
    });
    expect(checks(long)).toEqual([]);
    expect(judge(long).stats).toMatchObject({ leaseLosses: 1, leaseLossesExcused: 1 });
  });

  it('with replicas, a long downtime of one replica excuses no lease loss (agents fail over); all down at once does', () => {
    const death = (replica: number, at: number, downMs: number): ServerDeath => ({ n: 1, replica, by: 'drill', how: 'SIGKILL', at, downMs });
    const loss = { agent: 'agent-1', commandId: 'id-2', why: 'not renewed within 6000 ms', at: T0 + 10_000 };
    const one = run((e) => {
      e.run.replicas = 2;
      e.serverDeaths.push(death(0, T0 + 4_000, 5_000));
      e.leaseLosses.push(loss);
    });
    expect(checks(one)).toEqual(['lease-lost:4:k-2']);
    // Replica 2 is down from +5 s to +9.5 s: both were down from +5 s to +9 s.
    const both = run((e) => {
      e.run.replicas = 2;
      e.serverDeaths.push(death(0, T0 + 4_000, 5_000), death(1, T0 + 5_000, 4_500));
      e.leaseLosses.push(loss);
    });
    expect(checks(both)).toEqual([]);
    expect(judge(both).stats).toMatchObject({ leaseLossesExcused: 1, allReplicasDown: 1, maxOutageMs: 4_000, maxServerDownMs: 5_000 });
  });

  it('event ids: a hole or a repeat in the log is a violation', () => {
    expect(checks(run((e) => e.eventIds.splice(4, 2)))).toEqual(['event-ids:-:', 'event-ids:-:']); // the hole, and the two events the SSE client had
    expect(judge(run((e) => e.eventIds.splice(4, 2))).violations[0]?.why).toContain('event ids 5…6 are missing');
    expect(checks(run((e) => e.eventIds.splice(4, 0, 4)))).toEqual(['event-ids:-:']);
  });

  it('an event the SSE client received that the log no longer holds (pruned too early) is a violation', () => {
    const e = run((e) => e.eventIds.splice(0, 2));
    expect(checks(e)).toEqual(['event-ids:-:']);
    expect(judge(e).violations[0]?.why).toContain('2 event(s) the SSE client received are no longer in the log (first: 1, 2), which holds 16 events from id 3');
  });

  it('SSE: an event received out of order, or never, is a violation', () => {
    const swapped = run((e) => e.sse!.received.splice(3, 2, 5, 4));
    expect(checks(swapped)).toEqual(['sse-order:-:']);
    expect(judge(swapped).violations[0]?.why).toContain('received event 4 after event 5');
    const lost = run((e) => e.sse!.received.splice(10, 1));
    expect(checks(lost)).toEqual(['sse-lost:-:']);
    expect(judge(lost).violations[0]?.why).toContain('missed 1 of 18 events (first: 11)');
    expect(checks(run((e) => (e.sse!.resets = 1)))).toEqual(['sse-lost:-:']);
    // A resume that repeats an event it already had is out of order too.
    expect(checks(run((e) => e.sse!.received.splice(9, 0, 9)))).toEqual(['sse-order:-:']);
  });

  it('the event log must tell each command to its end', () => {
    const e = run((e) => (e.events.get('id-3') as EventRecord[]).pop());
    expect(checks(e)).toEqual(['event-log:-:k-3']);
  });

  it('a concurrency key with more RUNNING than its limit at any point of the log is flagged (SPEC §9)', () => {
    // Two commands of key t (limit 1), claimed one after the other: fine while the first has
    // finished before the second starts, a violation when both run at once.
    const keyed = (id: string, seqs: [number, number, number]): EventRecord[] => [
      { seq: seqs[0], transition: 'submit', status: 'PENDING', agentId: null, attempts: 0, error: null, at: T0, concurrencyKey: 't', concurrencyLimit: 1 },
      { seq: seqs[1], transition: 'claim', status: 'RUNNING', agentId: 'agent-1', attempts: 1, error: null, at: T0, concurrencyKey: 't', concurrencyLimit: 1 },
      { seq: seqs[2], transition: 'report', status: 'COMPLETED', agentId: 'agent-1', attempts: 1, error: null, at: T0, concurrencyKey: 't', concurrencyLimit: 1 },
    ];
    const inTurn = run((e) => {
      e.events.set('id-0', keyed('id-0', [1, 3, 4]));
      e.events.set('id-1', keyed('id-1', [2, 5, 6]));
    });
    expect(checks(inTurn)).toEqual([]);
    const together = run((e) => {
      e.events.set('id-0', keyed('id-0', [1, 3, 5]));
      e.events.set('id-1', keyed('id-1', [2, 4, 6]));
    });
    expect(checks(together)).toEqual(['concurrency-limit:-:k-1']);
  });
});
