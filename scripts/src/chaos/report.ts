/**
 * The drill's report: a summary an operator reads at a glance, then every violation with the
 * command it concerns, the witness's counts, the agent deaths that touched it and its history
 * from the server's event log. The same content is written as JSON with --json.
 */
import { storyOf, type CommandStory, type Violation } from './checks.js';
import type { DrillResult } from './drill.js';

/** Commands shown with their full story; the rest of the violations are listed in one line each. */
const STORIES_SHOWN = 20;
const LISTED = 200;

export function passed(r: DrillResult): boolean {
  return r.verdict.violations.length === 0;
}

export function summary(r: DrillResult): string {
  const { stats: s } = r.verdict;
  const o = r.options;
  const failedBy = Object.entries(s.failedBy).map(([error, n]) => `${error}: ${n}`).join(', ');
  const row = (label: string, value: string | number, note = '') => `  ${label.padEnd(24)}${String(value).padStart(7)}${note ? `   ${note}` : ''}`;
  const lines = [
    `chaos drill, seed ${o.seed}: ${o.database === 'postgres' ? `PostgreSQL, ${o.replicas} replica(s)` : 'SQLite, 1 server'}, ${o.commands} commands, ${o.agents} agents (CONCURRENCY ${o.concurrency}${o.randomFailures ? `, --random-failures in ${Math.round(o.randomFailureShare * 100)} % of lives` : ''}), LEASE_MS ${o.leaseMs}, ${(r.durationMs / 1000).toFixed(0)} s`,
    row('submitted', s.submitted, `${s.submitRetries} retries through server downtime`),
    row('201 Created', s.created, `+ ${s.replayed} answered 200 Idempotent-Replayed (first answer lost)${s.rejected + s.unanswered > 0 ? `; ${s.rejected} rejected, ${s.unanswered} unanswered` : ''}`),
    row('stored', s.stored),
    row('lost (201 but missing)', s.lost),
    row('completed', s.completed),
    row('failed', s.failed, failedBy),
    row('not terminal', s.notTerminal),
    row('HTTP_GET_JSON commands', s.httpCommands, `the target saw ${s.witnessedExecutions} executions`),
    row('executed twice or more', s.executedTwice, `${s.extraExecutions} execution(s) beyond the first (witness); at most one per cut-off attempt: ${s.attemptsCutOff + s.reportsCutOffPastLease}`),
    row(o.replicas > 1 ? 'replica kills' : 'server kills', s.serverKills, `longest downtime ${s.maxServerDownMs} ms${o.replicas > 1 ? `; every replica down at once ${s.allReplicasDown} time(s), longest ${s.maxOutageMs} ms` : ''}${s.serverExits ? `; ${s.serverExits} exits on their own` : ''}`),
    row('agent kills', s.agentKillsByDrill + s.agentKillsBySelf, `${s.agentKillsByDrill} by the drill, ${s.agentKillsBySelf} by --random-failures${s.agentExits ? `; ${s.agentExits} exits on their own` : ''}`),
    row('  hit mid-execution', s.killsMidExecution, `${s.attemptsCutOff} attempt(s) cut off (outbox 'started'), ${s.requestsCutOff} HTTP request(s) cut off at the target`),
    row('  outcomes unreported', s.reportsCutOff, `finished outcome(s) not yet reported (outbox 'finished'), ${s.reportsCutOffPastLease} of them past their lease`),
    row('events in the log', s.events, `ids without a gap; the SSE client received ${s.sseReceived}, resuming ${s.sseResumes} time(s) with Last-Event-ID`),
    row('leases lost by agents', s.leaseLosses, s.leaseLosses === 0 ? '' : `${s.leaseLossesExcused} after a server downtime too long to renew through, the rest are violations`),
    passed(r) ? 'PASS: every check held' : `FAIL: ${r.verdict.violations.length} violation(s); files kept in ${r.dir}`,
  ];
  return lines.join('\n');
}

export function details(r: DrillResult): string {
  const { violations } = r.verdict;
  if (violations.length === 0) return '';
  const lines: string[] = ['', 'violations:'];
  for (const v of violations.slice(0, LISTED)) lines.push(`  ${label(v)}: ${v.why}`);
  if (violations.length > LISTED) lines.push(`  … and ${violations.length - LISTED} more (all in the JSON report)`);
  const withCommand = violations.filter((v) => v.commandId !== null || v.key !== null).slice(0, STORIES_SHOWN);
  for (const v of withCommand) {
    const story = storyOf(r.evidence, v);
    if (story) lines.push('', ...tell(v, story));
  }
  return lines.join('\n');
}

function label(v: Violation): string {
  const who = v.key ?? v.commandId;
  return `[${v.check}${v.guarantee === null ? '' : `, guarantee ${v.guarantee}`}]${who === null ? '' : ` ${who}`}`;
}

function tell(v: Violation, s: CommandStory): string[] {
  const c = s.command;
  const out = [`${label(v)}`, `  why: ${v.why}`];
  if (c) out.push(`  command ${c.id} (${c.type}): ${c.status}${c.error ? ` '${c.error}'` : ''}, attempt ${c.attempts} of ${c.maxAttempts}, last agent ${c.agentId ?? '-'}`);
  if (s.witness) out.push(`  witness: ${s.witness.executions} execution(s), at most ${s.witness.maxConcurrent} at once, ${s.witness.cutOff} cut off`);
  for (const d of s.deaths) out.push(`  ${d.agent} died (life ${d.life}, by ${d.by}) with it ${d.state === 'started' ? 'started (cut off mid-execution)' : 'finished but not reported'}`);
  const t0 = s.history[0]?.at ?? 0;
  out.push(`  event log (${s.history.length} events):`);
  for (const e of s.history) {
    out.push(`    #${e.seq} +${e.at - t0} ms ${e.transition.padEnd(8)} → ${e.status.padEnd(9)} agent ${e.agentId ?? '-'} attempts ${e.attempts}${e.error ? ` error '${e.error}'` : ''}`);
  }
  return out;
}

/** The JSON report: options, figures, every violation with its story, and the deaths. */
export function toJson(r: DrillResult): unknown {
  return {
    passed: passed(r),
    seed: r.options.seed,
    options: r.options,
    dir: r.dir,
    durationMs: r.durationMs,
    stats: r.verdict.stats,
    violations: r.verdict.violations.map((v) => ({ ...v, story: storyOf(r.evidence, v) ?? null })),
    gaveUp: r.evidence.run.gaveUp,
    kills: r.plan.kills,
    serverDeaths: r.evidence.serverDeaths,
    agentDeaths: r.evidence.agentDeaths.map((d) => ({
      agent: d.agent,
      life: d.life,
      randomFailures: d.randomFailures,
      by: d.by,
      how: d.how,
      at: d.at,
      started: d.started.map((x) => x.commandId),
      unreported: d.unreported.map((x) => x.commandId),
    })),
    leaseLosses: r.evidence.leaseLosses,
  };
}
