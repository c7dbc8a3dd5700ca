/**
 * Report-and-claim with real processes: the agent's freed slots are claimed in the answer to its
 * batched report (one exchange, not a report and a poll), a server that does not know `claim`
 * gets polls as before, and the agent's log carries a periodic summary instead of a line per
 * command (those are `debug`, with the command id and attempt as fields).
 */
import type { Command } from '@agent-executor/common';
import { describe, expect, it } from 'vitest';
import { waitFor, type RunningServer } from '../../test-support/processes.js';
import { forward, startProxy, type Proxy } from './proxy.js';
import { api, executionsIn, isSettled, useStack, waitForCommand } from './stack.js';

const stack = useStack();

async function submitBatch(server: RunningServer, commands: unknown[]): Promise<Command[]> {
  const res = await fetch(`${server.url}/commands/batch`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ commands }),
  });
  if (res.status !== 201) throw new Error(`POST /commands/batch answered ${res.status}: ${await res.text()}`);
  return ((await res.json()) as { commands: Command[] }).commands;
}

/** How many requests the server answered on `route` (its request-duration histogram's count). */
async function requestsOn(server: RunningServer, method: string, route: string): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith('agent_executor_http_request_duration_seconds_count{')) continue;
    if (line.includes(`method="${method}"`) && line.includes(`route="${route}"`)) total += Number(line.split(' ').pop());
  }
  return total;
}

/**
 * The agent's log reaches the test through a pipe, behind the server's answers (this process also
 * proxies in one test): wait until each start is read before counting them.
 */
async function everyStartLogged(worker: Parameters<typeof executionsIn>[0], commands: Command[]): Promise<void> {
  await waitFor(async () => commands.every(({ id }) => executionsIn(worker, id) > 0), { what: 'a start line for each command' });
}

/** The agent's first poll waits on the server (its waiting-polls gauge says 1). */
async function firstPollWaits(server: RunningServer): Promise<void> {
  await waitFor(async () => /^agent_executor_waiting_polls 1$/m.test(await (await fetch(`${server.url}/metrics`)).text()), { what: 'the first poll' });
}

/** Polls the server answered, on either route. */
async function pollsOn(server: RunningServer): Promise<number> {
  return (await requestsOn(server, 'GET', '/commands/next-batch')) + (await requestsOn(server, 'GET', '/commands/next'));
}

/** Reports the server answered, batched or single. */
async function reportsOn(server: RunningServer): Promise<number> {
  return (await requestsOn(server, 'PUT', '/commands/results')) + (await requestsOn(server, 'PUT', '/commands/:id/result'));
}

const delays = (n: number) => Array.from({ length: n }, () => ({ type: 'DELAY', payload: { ms: 0 } }));

/**
 * One agent at CONCURRENCY 8 behind a proxy that answers `delayMs` late (a busy server): once its
 * first poll waits, `submit` submits; every command completes, each run once. Counts the polls and
 * reports the server answered.
 */
async function runBehindSlowAnswers(
  delayMs: number,
  submit: (server: RunningServer) => Promise<Command[]>,
): Promise<{ submitted: Command[]; polls: number; reports: number }> {
  const { server, agent } = stack();
  const srv = await server();
  const slow = await delayingProxy(srv, delayMs);
  try {
    const worker = agent({ ...srv, url: slow.url }, 'a', { CONCURRENCY: '8' });
    await firstPollWaits(srv);
    const submitted = await submit(srv);
    const client = api(srv);
    for (const { id } of submitted) expect(await waitForCommand(client, id, isSettled)).toMatchObject({ status: 'COMPLETED', attempts: 1 });
    await everyStartLogged(worker, submitted);
    for (const { id } of submitted) expect(executionsIn(worker, id), id).toBe(1);
    return { submitted, polls: await pollsOn(srv), reports: await reportsOn(srv) };
  } finally {
    await slow.close();
  }
}

describe('report-and-claim', () => {
  it('a flood at CONCURRENCY 8: the freed slots are claimed in the answers to the reports, not by polls', async () => {
    const { server, agent } = stack();
    const srv = await server();
    const worker = agent(srv, 'a', { CONCURRENCY: '8' });
    // Its first poll waits on the server: the whole batch is submitted while it does.
    await firstPollWaits(srv);
    const submitted = await submitBatch(srv, delays(200));
    const client = api(srv);
    for (const { id } of submitted) expect(await waitForCommand(client, id, isSettled)).toMatchObject({ status: 'COMPLETED', attempts: 1 });
    await everyStartLogged(worker, submitted);
    for (const { id } of submitted) expect(executionsIn(worker, id), id).toBe(1);

    const polls = await pollsOn(srv);
    const reports = await requestsOn(srv, 'PUT', '/commands/results');
    const single = await requestsOn(srv, 'PUT', '/commands/:id/result');
    console.log(`200 commands at CONCURRENCY 8: ${polls} polls, ${reports} batched reports, ${single} single reports`);
    // A report and a poll per round of 8 would be ~25 of each: the claims ride with the reports.
    expect(reports).toBeGreaterThanOrEqual(200 / 8);
    expect(polls * 4).toBeLessThanOrEqual(reports);
    expect(single).toBe(0);
  });

  it('CONCURRENCY 1: each freed slot waits for its outcome to be kept, then claims with its report — no poll, no lone report', async () => {
    const { server, agent } = stack();
    const srv = await server();
    const worker = agent(srv, 'a', { CONCURRENCY: '1' });
    await firstPollWaits(srv);
    const submitted = await submitBatch(srv, delays(30));
    const client = api(srv);
    for (const { id } of submitted) expect(await waitForCommand(client, id, isSettled)).toMatchObject({ status: 'COMPLETED', attempts: 1 });
    await everyStartLogged(worker, submitted);
    const polls = await pollsOn(srv);
    const single = await requestsOn(srv, 'PUT', '/commands/:id/result');
    console.log(`30 commands at CONCURRENCY 1: ${polls} polls, ${single} single reports`);
    // The slot is free before the outcome is written: a claim made then found no report to ride
    // with, so every command cost a poll and a report of its own.
    expect(single).toBe(0);
    expect(polls).toBeLessThanOrEqual(3);
  });

  it('answers slower than the commands: slots freed while a poll is out claim along with their reports, not by polls of their own', async () => {
    // Every answer 15 ms late, as from a busy server, and commands of 0–11 ms: slots free one by
    // one while an exchange is out, their outcomes ready to report.
    const { submitted, polls, reports } = await runBehindSlowAnswers(15, (srv) =>
      submitBatch(srv, Array.from({ length: 200 }, (_, i) => ({ type: 'DELAY', payload: { ms: (i * 7) % 12 } }))),
    );
    console.log(`200 commands of 0–11 ms at CONCURRENCY 8 behind 15 ms answers: ${polls} polls, ${reports} reports`);
    // With the loop held by each poll, freed slots polled on their own beside lone reports: 48
    // polls, on a quiet or a loaded machine (now 23–29). Reports vary with the load (batches).
    expect(polls * 5).toBeLessThanOrEqual(submitted.length);
  });

  it('a first poll that finds only part of the work: the slots do not stay split into a group that polls and one that reports', async () => {
    // Answers 10 ms late (a busy server): exchanges take longer than the commands. The first poll
    // wakes on 3 commands and takes them; the flood comes right after.
    const { polls, reports } = await runBehindSlowAnswers(10, async (srv) => [
      ...(await submitBatch(srv, delays(3))),
      ...(await submitBatch(srv, delays(240))),
    ]);
    console.log(`3 then 240 commands at CONCURRENCY 8 behind 10 ms answers: ${polls} polls, ${reports} reports`);
    // Before, the 3 and the 5 beside them cycled apart for good: the 5 claimed with their
    // report, the 3 freed after that claim had left and polled (measured 23–24 polls, 44–47
    // reports; now 2 and 31). Now a claim asks, when its report leaves, for every slot free by
    // then, and the two groups become one within a few rounds.
    expect(polls).toBeLessThanOrEqual(6);
    expect(reports).toBeLessThanOrEqual(240 / 8 + 10);
  });

  it('a server that refuses `claim` and knows no `brief` (older than both) gets the reports again without the claim, answered in full, then polls', async () => {
    const { server, agent } = stack();
    const srv = await server();
    const older = await withoutClaims(srv);
    try {
      const worker = agent({ ...srv, url: older.url }, 'a', { CONCURRENCY: '4' });
      const client = api(srv);
      const submitted = await submitBatch(srv, delays(40));
      for (const { id } of submitted) expect(await waitForCommand(client, id, isSettled)).toMatchObject({ status: 'COMPLETED', attempts: 1 });
      await everyStartLogged(worker, submitted);
      for (const { id } of submitted) expect(executionsIn(worker, id), id).toBe(1);
      // Refused once; from then on the reports go without it (still batched) and claims by poll.
      expect(older.refused()).toBe(1);
      // The agent asked for brief answers, got whole commands (as from a server before `brief`)
      // and took them as well: every outcome is marked reported, none is left for the next start.
      expect(older.briefAsked()).toBeGreaterThan(0);
      expect(worker.output()).not.toMatch(/rejected|unexpected report answer/);
      // An answer item the agent could not read would have been sent again on the single route.
      expect(await requestsOn(srv, 'PUT', '/commands/:id/result')).toBe(0);
      expect(await requestsOn(srv, 'PUT', '/commands/results')).toBeGreaterThan(0);
      expect(worker.output().match(/does not take a claim along with reports/g)).toHaveLength(1);
    } finally {
      await older.close();
    }
  });

  it('LOG_LEVEL=info: no line per command, a summary with the counts; debug: per-command lines with commandId and attempt', async () => {
    const { server, agent } = stack();
    const srv = await server();
    const client = api(srv);
    const quiet = agent(srv, 'quiet', { LOG_LEVEL: 'info', CONCURRENCY: '4' });
    const first = await submitBatch(srv, delays(6));
    for (const { id } of first) await waitForCommand(client, id, isSettled);
    expect(await quiet.kill('SIGTERM')).toBe(0);
    for (const { id } of first) expect(quiet.output()).not.toContain(id);
    // The summary is logged every 10 s and once more at the stop.
    const summaries = quiet.output().split('\n').filter((line) => line.includes('"last":'));
    expect(summaries.length).toBeGreaterThanOrEqual(1);
    const total = JSON.parse(summaries.at(-1) as string) as { level: number; total: Record<string, number>; msg: string };
    expect(total.level).toBe(30);
    expect(total.total).toMatchObject({ claimed: 6, completed: 6, failed: 0 });
    expect(total.msg).toMatch(/^last \d+ s: claimed \d+, completed \d+, failed 0$/);

    const chatty = agent(srv, 'chatty', { LOG_LEVEL: 'debug' });
    const [second] = await submitBatch(srv, delays(1));
    await waitForCommand(client, second!.id, isSettled);
    await waitFor(async () => chatty.output().includes(`${second!.id} COMPLETED`), { what: 'the COMPLETED line' });
    const lines = chatty
      .output()
      .split('\n')
      .filter((line) => line.includes(`DELAY ${second!.id} `))
      .map((line) => JSON.parse(line) as { level: number; commandId: string; attempt: number; msg: string });
    expect(lines.map((l) => l.msg)).toEqual([
      `DELAY ${second!.id} started (attempt 1 of 3)`,
      expect.stringMatching(new RegExp(`^DELAY ${second!.id} COMPLETED in \\d+ ms$`)),
    ]);
    for (const line of lines) expect(line).toMatchObject({ level: 20, commandId: second!.id, attempt: 1 });
  });
});

/**
 * A proxy in front of `real` that answers as a server from before report-and-claim and brief
 * answers would: a report carrying `claim` is a 400; `?brief=true` is dropped on the way (an older
 * server ignores the query), so the answers carry whole commands.
 */
async function withoutClaims(real: RunningServer): Promise<Proxy & { refused: () => number; briefAsked: () => number }> {
  let refused = 0;
  let briefAsked = 0;
  const proxy = await startProxy((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const [path, query] = (req.url ?? '/').split('?');
      const results = req.method === 'PUT' && path === '/commands/results';
      if (results && query === 'brief=true') briefAsked++;
      if (results && body.includes('"claim"')) {
        refused++;
        const message = 'Unrecognized key: "claim"';
        res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ statusCode: 400, error: 'Bad Request', message }));
        return;
      }
      forward(real.url, req, res, { ...(results ? { path } : {}), body });
    });
  });
  return { ...proxy, refused: () => refused, briefAsked: () => briefAsked };
}

/** A proxy in front of `real` that holds every answer `ms` before passing it on. */
function delayingProxy(real: RunningServer, ms: number): Promise<Proxy> {
  return startProxy((req, res) =>
    forward(real.url, req, res, {
      onAnswer: (answer) => {
        const chunks: Buffer[] = [];
        answer.on('data', (chunk: Buffer) => chunks.push(chunk));
        answer.on('end', () => setTimeout(() => res.writeHead(answer.statusCode ?? 502, answer.headers).end(Buffer.concat(chunks)), ms));
      },
    }),
  );
}
