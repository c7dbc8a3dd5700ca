/**
 * The judge of a drill: from what was collected (submits, the server's database and event log,
 * the witness, the agents' outboxes at each death and at the end) it decides which guarantee of
 * SPEC §6 each command kept or broke. Pure: no processes, no files, so tests can feed it a
 * synthetic run.
 *
 * What makes a duplicate execution legitimate: at-least-once for unfinished work (guarantee 6).
 * The witness counts requests per command; each attempt that a crash cut off (a command
 * `started` in the outbox of an agent right after it died), or whose outcome a crash kept from
 * the server for longer than the lease (`finished`, not reported, and the lease expired before
 * the agent was back, so another agent may run it again), allows one more execution of that
 * command, and nothing else does. Counting cut-off attempts rather than kills matters: with
 * CONCURRENCY > 1 one kill cuts off several commands.
 */
import type { CommandRecord, Evidence, EventRecord, OutboxRow } from './evidence.js';
import type { Witness } from './target.js';

export type CheckName =
  | 'lost'
  | 'unknown-command'
  | 'submit-rejected'
  | 'submit-unanswered'
  | 'not-terminal'
  | 'gave-up'
  | 'leaked-attempt'
  | 'concurrent-execution'
  | 'duplicate-execution'
  | 'duplicates-exceed-cut-offs'
  | 'rerun-after-finish'
  | 'phantom-result'
  | 'lost-report'
  | 'lease-lost'
  | 'event-log'
  | 'concurrency-limit'
  | 'event-ids'
  | 'sse-order'
  | 'sse-lost'
  | 'unexpected-exit';

export interface Violation {
  check: CheckName;
  /** The guarantee of SPEC §6 it breaks; null for what the drill itself needs to hold. */
  guarantee: number | null;
  key: string | null;
  commandId: string | null;
  why: string;
}

export interface Stats {
  submitted: number;
  /** 201 answers. */
  created: number;
  /** 200 Idempotent-Replayed: a retry of a submit whose first answer was lost. */
  replayed: number;
  rejected: number;
  unanswered: number;
  /** Submit requests beyond the first, sent through server downtime. */
  submitRetries: number;
  stored: number;
  completed: number;
  failed: number;
  failedBy: Record<string, number>;
  /** Acknowledged (201 or replay) but missing from the server. */
  lost: number;
  notTerminal: number;
  httpCommands: number;
  witnessedExecutions: number;
  /** Commands the witness saw executed more than once, and the executions beyond the first. */
  executedTwice: number;
  extraExecutions: number;
  /** HTTP requests whose client went away before the answer (seen by the target). */
  requestsCutOff: number;
  serverKills: number;
  serverExits: number;
  agentKillsByDrill: number;
  agentKillsBySelf: number;
  agentExits: number;
  /** Agent deaths with at least one command `started` in the outbox. */
  killsMidExecution: number;
  /** Attempts cut off mid-execution, and finished outcomes a death kept from the server… */
  attemptsCutOff: number;
  reportsCutOff: number;
  /** …of which the lease expired before the agent was back to report them. */
  reportsCutOffPastLease: number;
  leaseLosses: number;
  /** Lease losses not judged: a server downtime near them was too long to renew through. */
  leaseLossesExcused: number;
  /** Longest server downtime, SIGKILL to healthy (of one replica). */
  maxServerDownMs: number;
  /** Replica kills that took every replica down at once (counted once each). */
  allReplicasDown: number;
  /** Longest time no replica answered. */
  maxOutageMs: number;
  events: number;
  /** Events the SSE follower received, and the times it resumed on another connection. */
  sseReceived: number;
  sseResumes: number;
}

export interface Verdict {
  stats: Stats;
  violations: Violation[];
}

const TERMINAL = new Set(['COMPLETED', 'FAILED']);
/** The server's default event-log keep count (control-server's DEFAULT_EVENT_RETENTION). */
const DEFAULT_KEPT_EVENTS = 100_000;
/** Errors a crash leaves on an attempt; with attempts left the server must run it again. */
const CRASH_ERRORS = new Set(['lease expired', 'interrupted']);

export function judge(e: Evidence): Verdict {
  const violations: Violation[] = [];
  const flag = (check: CheckName, guarantee: number | null, c: { key?: string | null; id?: string | null }, why: string) =>
    violations.push({ check, guarantee, key: c.key ?? null, commandId: c.id ?? null, why });

  const byId = new Map(e.commands.map((c) => [c.id, c]));
  const byKey = new Map<string, CommandRecord>();
  for (const c of e.commands) if (c.key !== null) byKey.set(c.key, c);
  const planned = new Set(e.submits.map((s) => s.key));

  // Guarantee 1: a 201 (or the replay of one whose answer was lost) means the command is stored.
  for (const s of e.submits) {
    if (s.answer === 'created' || s.answer === 'replayed') {
      const stored = s.id === null ? undefined : byId.get(s.id);
      if (!stored) flag('lost', 1, { key: s.key, id: s.id }, `submit answered ${s.answer === 'created' ? '201' : '200 (replayed)'} with id ${s.id}, but the server's database has no such command`);
      else if (stored.key !== s.key) flag('lost', 1, { key: s.key, id: s.id }, `id ${s.id} was answered for key ${s.key} but is stored under key ${stored.key}`);
    } else if (s.answer === 'rejected') {
      flag('submit-rejected', null, { key: s.key }, `submit rejected: ${s.detail}`);
    } else {
      flag('submit-unanswered', null, { key: s.key, id: byKey.get(s.key)?.id }, `no answer after ${s.tries} tries (${s.detail ?? 'no detail'})`);
    }
  }
  // Idempotency: retries must never have made a second command.
  for (const c of e.commands) {
    if (c.key === null || !planned.has(c.key)) flag('unknown-command', 1, { key: c.key, id: c.id }, 'stored, but no submit of this drill has its Idempotency-Key: a retried submit made a second command');
  }

  // Guarantee 5: with agents running, every command ends.
  if (e.run.gaveUp !== null) flag('gave-up', 5, {}, e.run.gaveUp);
  for (const c of e.commands) {
    if (!TERMINAL.has(c.status)) flag('not-terminal', 5, { key: c.key, id: c.id }, `still ${c.status} (attempt ${c.attempts} of ${c.maxAttempts}) when the drill ended`);
    else if (c.status === 'FAILED' && c.error !== null && CRASH_ERRORS.has(c.error) && c.attempts < c.maxAttempts) {
      flag('leaked-attempt', 6, { key: c.key, id: c.id }, `FAILED '${c.error}' after ${c.attempts} of ${c.maxAttempts} attempts: a crash-cut attempt with attempts left must be retried`);
    }
  }

  // Per command: executions (witness) against crash cut-offs (outboxes at each death). A finished
  // outcome a death kept from the server excuses a re-run only when the lease ran out before the
  // agent was back to report it (an `expire` in the log after the death); otherwise the agent
  // should have reported it from its log, and a re-run means it did not.
  const cutOffs = new Map<string, { started: number; unreported: number }>();
  for (const d of e.agentDeaths) {
    for (const r of d.started) bump(cutOffs, r.commandId).started++;
    for (const r of d.unreported) {
      if ((e.events.get(r.commandId) ?? []).some((ev) => ev.transition === 'expire' && ev.at >= d.at)) bump(cutOffs, r.commandId).unreported++;
    }
  }
  const lossesFor = new Map<string, string[]>();
  for (const l of e.leaseLosses) lossesFor.set(l.commandId, [...(lossesFor.get(l.commandId) ?? []), `${l.agent}: ${l.why}`]);
  let witnessedExecutions = 0;
  let executedTwice = 0;
  let extraExecutions = 0;
  let requestsCutOff = 0;
  for (const c of e.commands) {
    if (c.type !== 'HTTP_GET_JSON' || c.key === null) continue;
    const w: Witness = e.witness.get(c.key) ?? { executions: 0, maxConcurrent: 0, cutOff: 0 };
    witnessedExecutions += w.executions;
    requestsCutOff += w.cutOff;
    if (w.maxConcurrent > 1) {
      flag('concurrent-execution', 2, { key: c.key, id: c.id }, `the target saw ${w.maxConcurrent} requests for it in flight at once: two agents ran it together`);
    }
    if (c.status === 'COMPLETED' && w.executions === 0) {
      flag('phantom-result', 4, { key: c.key, id: c.id }, 'COMPLETED, but the target never received its request');
    } else if (c.status === 'COMPLETED' && c.resultKey !== c.key) {
      flag('phantom-result', 4, { key: c.key, id: c.id }, `COMPLETED with the result of ${String(c.resultKey)}, not its own`);
    }
    if (w.executions <= 1) continue;
    executedTwice++;
    const extra = w.executions - 1;
    extraExecutions += extra;
    const cut = cutOffs.get(c.id) ?? { started: 0, unreported: 0 };
    const allowed = cut.started + cut.unreported;
    if (extra > allowed) {
      const losses = lossesFor.get(c.id);
      const context = !e.run.agentsKillable
        ? 'only the server was killed, and a server crash must not make a command run again (guarantee 4)'
        : `only ${cut.started} attempt(s) of it were cut off mid-execution and ${cut.unreported} finished outcome(s) kept from the server by agent deaths past its lease`;
      flag('duplicate-execution', e.run.agentsKillable ? 6 : 4, { key: c.key, id: c.id }, `executed ${w.executions} times, but ${context}${losses ? `; lease lost: ${losses.join('; ')}` : ''}`);
    }
  }
  const attemptsCutOff = e.agentDeaths.reduce((n, d) => n + d.started.length, 0);
  const reportsCutOff = e.agentDeaths.reduce((n, d) => n + d.unreported.length, 0);
  const reportsCutOffPastLease = [...cutOffs.values()].reduce((n, c) => n + c.unreported, 0);
  if (extraExecutions > attemptsCutOff + reportsCutOffPastLease) {
    flag('duplicates-exceed-cut-offs', 6, {}, `${extraExecutions} executions beyond the first, but agent deaths cut off only ${attemptsCutOff} attempt(s) mid-execution and kept ${reportsCutOffPastLease} finished outcome(s) from the server past their lease`);
  }

  // Guarantee 3: an agent never runs again what it finished. A COMPLETED outcome in the outbox at
  // a death must be replayed, never executed again, by that agent's later lives.
  const finalRows = new Map<string, Map<string, OutboxRow>>();
  for (const [agent, rows] of e.outboxes) finalRows.set(agent, new Map(rows.map((r) => [r.commandId, r])));
  for (const d of e.agentDeaths) {
    for (const r of d.unreported) {
      const later = finalRows.get(d.agent)?.get(r.commandId);
      if (r.status === 'COMPLETED' && later && later.executions > r.executions) {
        flag('rerun-after-finish', 3, { key: byId.get(r.commandId)?.key, id: r.commandId }, `${d.agent} had it finished COMPLETED when it died (life ${d.life}), and executed it again afterwards (${r.executions} → ${later.executions} executions)`);
      }
    }
  }

  // Guarantee 4: a report the server took is never lost.
  for (const [agent, rows] of e.outboxes) {
    for (const r of rows) {
      const c = byId.get(r.commandId);
      if (r.state === 'reported' && r.status === 'COMPLETED' && c && c.status !== 'COMPLETED') {
        flag('lost-report', 4, { key: c.key, id: c.id }, `${agent}'s COMPLETED report was taken (outbox says reported), but the server has it ${c.status}${c.error ? ` '${c.error}'` : ''}`);
      }
    }
  }

  // Guarantee 4: RUNNING work stays leased across a server restart. An agent may renew until one
  // LEASE_MS after sending its last successful renewal, and renews every third of a lease; so a
  // server back within two thirds of a lease (less a margin for the request itself), and not
  // killed again before the agents could renew, leaves every agent time to renew. A lease lost
  // then is an agent giving its work up too early: the attempt is cut off and runs again (for a
  // DELAY the witness cannot see that, the agent's log can). A loss near a longer downtime is allowed.
  for (const l of e.leaseLosses) {
    if (!restartsLeftTimeToRenew(e, l.at)) continue;
    flag('lease-lost', 4, { key: byId.get(l.commandId)?.key, id: l.commandId }, `${l.agent} gave its lease up (${l.why}), although the server restarts before it left time to renew (LEASE_MS ${e.run.leaseMs}${nearbyDowntimes(e, l.at)})`);
  }

  // The event log is written with each change: it must tell each command's story to its end.
  for (const c of e.commands) {
    const history = e.events.get(c.id) ?? [];
    const last = history.at(-1);
    if (history[0]?.transition !== 'submit') flag('event-log', null, { key: c.key, id: c.id }, `its event log does not start with its submit (${history.length} events)`);
    else if (!last || last.status !== c.status) flag('event-log', null, { key: c.key, id: c.id }, `its last logged event says ${last?.status}, the command is ${c.status}`);
  }

  // SPEC §9: replaying the whole log in order, no key ever had more than its limit RUNNING.
  const overLimit = keysOverLimit(e.events);
  for (const o of overLimit) {
    flag('concurrency-limit', null, { key: byId.get(o.commandId)?.key, id: o.commandId }, `key ${o.key} had ${o.running} commands RUNNING at event #${o.seq}, over its limit ${o.limit}`);
  }

  // SSE ids: every event id once, none skipped (ids are handed out in commit order, SPEC §8).
  for (const gap of idGaps(e.eventIds)) flag('event-ids', null, {}, gap);
  // SSE: what one client saw, across every replica it was moved to, is the whole log, in order.
  if (e.sse) {
    const disorder = outOfOrder(e.sse.received);
    if (disorder) flag('sse-order', null, {}, disorder);
    // The log keeps 100 000 events for 24 h by default (EVENT_RETENTION): within a drill nothing
    // is due for pruning, so an event the client saw must still be in the log.
    if (e.eventIds.length < DEFAULT_KEPT_EVENTS) {
      const logged = new Set(e.eventIds);
      const gone = e.sse.received.filter((id) => !logged.has(id));
      if (gone.length > 0) flag('event-ids', null, {}, `${gone.length} event(s) the SSE client received are no longer in the log (first: ${gone.slice(0, 10).join(', ')}), which holds ${e.eventIds.length} events from id ${e.eventIds[0] ?? '-'}`);
    }
    const seen = new Set(e.sse.received);
    const missed = e.eventIds.filter((id) => !seen.has(id));
    if (missed.length > 0 || e.sse.resets > 0) {
      flag('sse-lost', null, {}, `the SSE client missed ${missed.length} of ${e.eventIds.length} events (first: ${missed.slice(0, 10).join(', ')})${e.sse.resets > 0 ? `; ${e.sse.resets} reset(s)` : ''} over ${e.sse.resumes.length} connection(s)`);
    }
  }

  for (const d of e.agentDeaths.filter((x) => x.by === 'exit')) flag('unexpected-exit', null, {}, `${d.agent} (life ${d.life}) ended by itself: ${d.how}`);
  for (const d of e.serverDeaths.filter((x) => x.by === 'exit')) flag('unexpected-exit', null, {}, `the server ended by itself: ${d.how}`);

  const failedBy: Record<string, number> = {};
  for (const c of e.commands) if (c.status === 'FAILED') failedBy[c.error ?? 'failed'] = (failedBy[c.error ?? 'failed'] ?? 0) + 1;
  const count = (f: (x: (typeof e.commands)[number]) => boolean) => e.commands.filter(f).length;
  return {
    violations,
    stats: {
      submitted: e.submits.length,
      created: e.submits.filter((s) => s.answer === 'created').length,
      replayed: e.submits.filter((s) => s.answer === 'replayed').length,
      rejected: e.submits.filter((s) => s.answer === 'rejected').length,
      unanswered: e.submits.filter((s) => s.answer === 'unanswered').length,
      submitRetries: e.submits.reduce((n, s) => n + Math.max(0, s.tries - 1), 0),
      stored: e.commands.length,
      completed: count((c) => c.status === 'COMPLETED'),
      failed: count((c) => c.status === 'FAILED'),
      failedBy,
      lost: violations.filter((v) => v.check === 'lost').length,
      notTerminal: count((c) => !TERMINAL.has(c.status)),
      httpCommands: count((c) => c.type === 'HTTP_GET_JSON'),
      witnessedExecutions,
      executedTwice,
      extraExecutions,
      requestsCutOff,
      serverKills: e.serverDeaths.filter((d) => d.by === 'drill').length,
      serverExits: e.serverDeaths.filter((d) => d.by === 'exit').length,
      agentKillsByDrill: e.agentDeaths.filter((d) => d.by === 'drill').length,
      agentKillsBySelf: e.agentDeaths.filter((d) => d.by === 'self').length,
      agentExits: e.agentDeaths.filter((d) => d.by === 'exit').length,
      killsMidExecution: e.agentDeaths.filter((d) => d.started.length > 0).length,
      attemptsCutOff,
      reportsCutOff,
      reportsCutOffPastLease,
      leaseLosses: e.leaseLosses.length,
      leaseLossesExcused: e.leaseLosses.filter((l) => !restartsLeftTimeToRenew(e, l.at)).length,
      maxServerDownMs: longestDowntime(e),
      allReplicasDown: e.run.replicas > 1 ? outages(e).length : 0,
      maxOutageMs: Math.max(0, ...outages(e).map((o) => o.downMs)),
      events: e.eventIds.length,
      sseReceived: e.sse?.received.length ?? 0,
      sseResumes: Math.max(0, (e.sse?.resumes.length ?? 0) - 1),
    },
  };
}

/** Room for the renewal request itself and the agent's retry pace. */
const RENEWAL_MARGIN_MS = 500;

function longestDowntime(e: Evidence): number {
  return Math.max(0, ...e.serverDeaths.map((d) => d.downMs));
}

/**
 * The times no replica answered: with one server its downtimes; with replicas, an agent fails over
 * to a live one, so only the spans where every replica was down at once keep it from renewing.
 */
export function outages(e: Evidence): Array<{ at: number; downMs: number }> {
  const spans = (r: number) => e.serverDeaths.filter((d) => d.replica === r).map((d) => [d.at, d.at + d.downMs] as const);
  let down = spans(0);
  for (let r = 1; r < e.run.replicas; r++) {
    const other = spans(r);
    const both: Array<readonly [number, number]> = [];
    for (const [a0, a1] of down) {
      for (const [b0, b1] of other) {
        const from = Math.max(a0, b0);
        const to = Math.min(a1, b1);
        if (from <= to) both.push([from, to]);
      }
    }
    down = both;
  }
  return down.sort((a, b) => a[0] - b[0]).map(([from, to]) => ({ at: from, downMs: to - from }));
}

/** Outages that could have kept an agent from renewing a lease it lost at `at`. */
function deathsBefore(e: Evidence, at: number) {
  const lease = e.run.leaseMs;
  return outages(e).filter((d) => d.at <= at && d.at + d.downMs >= at - 2 * lease);
}

/** Holes and repeats in the log's ids (ascending); the first few, each as a sentence. */
export function idGaps(ids: number[]): string[] {
  const out: string[] = [];
  for (let i = 1; i < ids.length && out.length < 10; i++) {
    const [a, b] = [ids[i - 1] as number, ids[i] as number];
    if (b === a) out.push(`event id ${b} is in the log twice`);
    else if (b !== a + 1) out.push(`event ids ${a + 1}…${b - 1} are missing from the log (between ${a} and ${b})`);
  }
  return out;
}

/** The first id that did not come after the one before it, as a sentence; null when ascending. */
export function outOfOrder(received: number[]): string | null {
  for (let i = 1; i < received.length; i++) {
    const [a, b] = [received[i - 1] as number, received[i] as number];
    if (b <= a) return `the SSE client received event ${b} after event ${a} (position ${i} of ${received.length})`;
  }
  return null;
}

function nearbyDowntimes(e: Evidence, at: number): string {
  const near = deathsBefore(e, at);
  return near.length === 0 ? '; no server outage before it' : `; server down ${near.map((d) => `${d.downMs} ms ${at - d.at} ms before`).join(', ')}`;
}

/**
 * Whether every server death near a lease loss at `at` left the agent time to renew: down at
 * most 2/3 of a lease less a margin, and up at least a third of a lease plus a margin before.
 */
export function restartsLeftTimeToRenew(e: Evidence, at: number): boolean {
  const lease = e.run.leaseMs;
  const all = outages(e);
  return deathsBefore(e, at).every((d) => {
    const previous = all[all.indexOf(d) - 1];
    const uptime = previous === undefined ? Number.POSITIVE_INFINITY : d.at - (previous.at + previous.downMs);
    return d.downMs <= (2 * lease) / 3 - RENEWAL_MARGIN_MS && uptime >= lease / 3 + RENEWAL_MARGIN_MS;
  });
}

function bump(map: Map<string, { started: number; unreported: number }>, id: string) {
  let entry = map.get(id);
  if (!entry) map.set(id, (entry = { started: 0, unreported: 0 }));
  return entry;
}

/** What the report shows for one command under suspicion. */
export interface CommandStory {
  command: CommandRecord | undefined;
  history: EventRecord[];
  witness: Witness | undefined;
  /** Agent deaths that had it started or unreported in their outbox. */
  deaths: Array<{ agent: string; life: number; by: string; state: 'started' | 'finished' }>;
}

export function storyOf(e: Evidence, v: Violation): CommandStory | undefined {
  if (v.commandId === null && v.key === null) return undefined;
  const command = e.commands.find((c) => (v.commandId !== null && c.id === v.commandId) || (v.key !== null && c.key === v.key));
  const id = command?.id ?? v.commandId;
  const key = command?.key ?? v.key;
  const deaths: CommandStory['deaths'] = [];
  for (const d of e.agentDeaths) {
    if (d.started.some((r) => r.commandId === id)) deaths.push({ agent: d.agent, life: d.life, by: d.by, state: 'started' });
    if (d.unreported.some((r) => r.commandId === id)) deaths.push({ agent: d.agent, life: d.life, by: d.by, state: 'finished' });
  }
  return {
    command,
    history: id === null ? [] : (e.events.get(id) ?? []),
    witness: key === null ? undefined : e.witness.get(key),
    deaths,
  };
}

/**
 * Replays every logged event in seq order, keeping each command's status, and answers the first
 * moment each concurrency key had more RUNNING than its limit (the limit its events carry).
 */
export function keysOverLimit(events: Map<string, EventRecord[]>): Array<{ key: string; running: number; limit: number; seq: number; commandId: string }> {
  const all: Array<EventRecord & { commandId: string }> = [];
  for (const [commandId, list] of events) for (const ev of list) all.push({ ...ev, commandId });
  all.sort((a, b) => a.seq - b.seq);
  const running = new Map<string, Set<string>>();
  const flagged = new Map<string, { key: string; running: number; limit: number; seq: number; commandId: string }>();
  for (const ev of all) {
    if (!ev.concurrencyKey || ev.concurrencyLimit == null) continue;
    const set = running.get(ev.concurrencyKey) ?? new Set<string>();
    running.set(ev.concurrencyKey, set);
    if (ev.status === 'RUNNING') set.add(ev.commandId);
    else set.delete(ev.commandId);
    if (set.size > ev.concurrencyLimit && !flagged.has(ev.concurrencyKey)) {
      flagged.set(ev.concurrencyKey, { key: ev.concurrencyKey, running: set.size, limit: ev.concurrencyLimit, seq: ev.seq, commandId: ev.commandId });
    }
  }
  return [...flagged.values()];
}
