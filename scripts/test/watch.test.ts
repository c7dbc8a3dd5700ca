/**
 * The watch CLI (scripts/dist/watch.js) as a child process against a real server process; the
 * test plays the agent over HTTP. Includes a server SIGKILL and restart in the middle of a watch.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import type { Command } from '@agent-executor/common';
import { HttpApi, runDelayToCompletion } from '../../test-support/http-api.js';
import {
  killAll,
  REPO_ROOT,
  startProcess,
  startServer,
  tempDir,
  type RunningProcess,
} from '../../test-support/processes.js';
import { formatChange, formatWaitingFor } from '../src/watch-format.js';

const WATCH_MAIN = join(REPO_ROOT, 'scripts/dist/watch.js');
const TOKEN = 'watch-test-token-0123456789';

let dir: ReturnType<typeof tempDir>;

beforeEach(() => {
  dir = tempDir('watch-test');
});

afterEach(async ({ task }) => {
  await killAll();
  dir.cleanup(task.result?.state !== 'fail');
});

async function server(port?: number) {
  const started = await startServer({ DB_PATH: join(dir.path, 'commands.db'), API_TOKEN: TOKEN }, port);
  return Object.assign(started, { api: new HttpApi(started.url, TOKEN) });
}

function watchCli(args: string[], env: Record<string, string> = {}): RunningProcess {
  return startProcess(WATCH_MAIN, args, env);
}

/** The change lines the CLI printed (they start with the time of the change). */
function changeLines(proc: RunningProcess): string[] {
  return proc
    .output()
    .split('\n')
    .filter((line) => /^\d{4}-\d\d-\d\dT/.test(line));
}

/** Resolves once the CLI's output satisfies `probe`, woken by each chunk it writes. */
function untilOutput(proc: RunningProcess, probe: (lines: string[]) => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const check = () => {
      if (!probe(changeLines(proc))) return;
      stop();
      resolve();
    };
    const timer = setTimeout(() => {
      stop();
      reject(new Error(`timed out waiting for ${what}; the CLI printed:\n${proc.output()}`));
    }, timeoutMs);
    const ended = () => {
      check();
      stop();
      reject(new Error(`the CLI exited before ${what}:\n${proc.output()}`));
    };
    const stop = () => {
      clearTimeout(timer);
      proc.child.stdout?.off('data', check);
      proc.child.stderr?.off('data', check);
      proc.child.off('exit', ended);
    };
    // Registered after startProcess's own listeners, so output() already holds the new chunk.
    proc.child.stdout?.on('data', check);
    proc.child.stderr?.on('data', check);
    proc.child.once('exit', ended);
    check();
  });
}

const hasStatus = (status: string) => (lines: string[]) => lines.some((l) => l.includes(`  ${status.padEnd(9)}  `));

function expectLife(lines: string[], command: Command): void {
  const row = (status: string, rest: string) =>
    new RegExp(`^\\S+Z  #\\d+  ${command.id}  DELAY  ${status.padEnd(9)}  ${rest}$`);
  expect(lines).toHaveLength(4);
  expect(lines[0]).toMatch(row('PENDING', 'attempt 0/3'));
  expect(lines[1]).toMatch(row('RUNNING', 'attempt 1/3'));
  expect(lines[2]).toMatch(row('RUNNING', 'attempt 1/3  progress 50% halfway'));
  expect(lines[3]).toMatch(row('COMPLETED', 'attempt 1/3  result \\{"ok":true,"tookMs":5\\}'));
  const ids = lines.map((l) => Number(/#(\d+)/.exec(l)?.[1]));
  expect([...ids].sort((a, b) => a - b)).toEqual(ids);
  expect(new Set(ids).size).toBe(4);
}

describe('npm run watch -- <commandId>', () => {
  test('prints each change as one line and exits 0 when the command completes', async () => {
    const { api, url } = await server();
    const command = await api.submit({ type: 'DELAY', payload: { ms: 5 } });
    const cli = watchCli([command.id, '--url', url, '--token', TOKEN]);
    await untilOutput(cli, hasStatus('PENDING'), 'the current state');
    await runDelayToCompletion(api, command.id);
    expect(await cli.exited, cli.output()).toBe(0);
    expectLife(changeLines(cli), command);
  });

  test('exits 1 when the command FAILED; 2 without the token or for an unknown command', async () => {
    const { api, url } = await server();
    const command = await api.submit({ type: 'DELAY', payload: { ms: 5 }, maxAttempts: 1 });
    const noToken = watchCli([command.id, '--url', url]);
    const unknown = watchCli(['no-such-command', '--url', url, '--token', TOKEN]);
    // SERVER_URL as the agents take it, a list of replicas: the CLI uses the first.
    const cli = watchCli([command.id], { SERVER_URL: `${url},http://127.0.0.1:9`, API_TOKEN: TOKEN });
    await untilOutput(cli, hasStatus('PENDING'), 'the current state');
    const claimed = await api.claim();
    await api.report(claimed, { status: 'FAILED', error: 'boom: the disk is full', retryable: false });
    expect(await cli.exited, cli.output()).toBe(1);
    expect(changeLines(cli).at(-1)).toMatch(/ {2}FAILED {5}attempt 1\/1 {2}error boom: the disk is full$/);

    expect(await noToken.exited).toBe(2);
    expect(noToken.output()).toContain('--token');
    expect(await unknown.exited).toBe(2);
    expect(unknown.output()).toContain('no command no-such-command');
  });

  test('resumes after the server is SIGKILLed and restarted on the same database and port, and sees the end', async () => {
    const first = await server();
    const { api, url, port } = first;
    const command = await api.submit({ type: 'DELAY', payload: { ms: 5 } });
    const cli = watchCli([command.id, '--url', url, '--token', TOKEN]);
    await untilOutput(cli, hasStatus('PENDING'), 'the current state');
    const claimed = await api.claim();
    await untilOutput(cli, hasStatus('RUNNING'), 'RUNNING');

    await first.kill('SIGKILL');
    const second = await server(port);
    // Changes while the CLI is (most likely) still waiting to reconnect: it gets them from the log.
    await second.api.heartbeat(claimed, { percent: 50, message: 'halfway' });
    await second.api.report(claimed, { status: 'COMPLETED', result: { ok: true, tookMs: 5 } });

    expect(await cli.exited, cli.output()).toBe(0);
    expect(cli.output()).toContain('reconnecting');
    expectLife(changeLines(cli), command);
  });
});

describe('npm run watch (every command)', () => {
  test('follows /events past the end of a command; --status filters', async () => {
    const { api, url } = await server();
    const all = watchCli(['--url', url, '--token', TOKEN]);
    const completed = watchCli(['--url', url, '--token', TOKEN, '--status', 'completed']);
    // The streams start empty: submit once both are connected.
    await Promise.all([all, completed].map((cli) => untilOutput(cli, () => cli.output().includes('following'), 'the stream')));
    const a = await api.submit({ type: 'DELAY', payload: { ms: 5 } });
    await untilOutput(all, (lines) => lines.length >= 1, "a's PENDING");
    await runDelayToCompletion(api, a.id);
    const b = await api.submit({ type: 'DELAY', payload: { ms: 5 } });
    await runDelayToCompletion(api, b.id);

    await untilOutput(completed, (lines) => lines.length >= 2, 'two completions');
    expect(changeLines(completed).map((l) => l.split('  ').slice(2, 5))).toEqual([
      [a.id, 'DELAY', 'COMPLETED'],
      [b.id, 'DELAY', 'COMPLETED'],
    ]);
    await untilOutput(all, (lines) => lines.length >= 8, 'eight changes');
    expect(changeLines(all).map((l) => l.split('  ')[4]?.trim())).toEqual([
      'PENDING', 'RUNNING', 'RUNNING', 'COMPLETED', 'PENDING', 'RUNNING', 'RUNNING', 'COMPLETED',
    ]);
    // Still watching after both ended.
    expect(all.child.exitCode).toBeNull();
    expect(completed.child.exitCode).toBeNull();
  });
});

describe("resuming past the server's log (a reset event)", () => {
  /** Deletes the log's events older than `seq` through a second connection, as pruning would. */
  function pruneLogBefore(seq: number): void {
    const db = new Database(join(dir.path, 'commands.db'));
    try {
      db.prepare('DELETE FROM events WHERE seq < ?').run(seq);
    } finally {
      db.close();
    }
  }

  test('one command: says changes were lost, shows the command as it is now, then follows it to the end', async () => {
    const { api, url } = await server();
    const command = await api.submit({ type: 'DELAY', payload: { ms: 5 } }); // event 1
    const claimed = await api.claim(); // 2
    await api.heartbeat(claimed, { percent: 50, message: 'halfway' }); // 3
    pruneLogBefore(3);
    const cli = watchCli([command.id, '--url', url, '--token', TOKEN, '--since', '1']);
    await untilOutput(cli, hasStatus('RUNNING'), 'the current state');
    expect(cli.output()).toContain("watch: changes before #3 are no longer in the server's log and were not shown; showing the command as it is now");
    await api.report(claimed, { status: 'COMPLETED', result: { ok: true, tookMs: 5 } });
    expect(await cli.exited, cli.output()).toBe(0);
    expect(changeLines(cli).map((l) => l.split('  ').slice(1, 5).join(' ').replace(/ +/g, ' '))).toEqual([
      `#3 ${command.id} DELAY RUNNING`,
      `#4 ${command.id} DELAY COMPLETED`,
    ]);
  });

  test('every command: the notice, then the changes the log still holds, then live ones; --since at the edge: no notice', async () => {
    const { api, url } = await server();
    const a = await api.submit({ type: 'DELAY', payload: { ms: 5 } }); // 1
    const b = await api.submit({ type: 'DELAY', payload: { ms: 5 } }); // 2
    const c = await api.submit({ type: 'DELAY', payload: { ms: 5 } }); // 3
    pruneLogBefore(2);
    const gap = watchCli(['--url', url, '--token', TOKEN, '--since', '0']);
    const edge = watchCli(['--url', url, '--token', TOKEN, '--since', '1']);
    for (const cli of [gap, edge]) await untilOutput(cli, (lines) => lines.length >= 2, 'what the log holds');
    await api.cancel(a.id); // 4
    for (const cli of [gap, edge]) {
      await untilOutput(cli, (lines) => lines.length >= 3, 'the live cancel');
      expect(changeLines(cli).map((l) => l.split('  ').slice(1, 3).join(' '))).toEqual([`#2 ${b.id}`, `#3 ${c.id}`, `#4 ${a.id}`]);
    }
    expect(gap.output()).toContain("watch: changes before #2 are no longer in the server's log and were not shown; continuing");
    expect(edge.output()).not.toContain('no longer in');
  });

  test('--since must be an event id', async () => {
    const cli = watchCli(['--since', 'yesterday']);
    expect(await cli.exited).toBe(2);
    expect(cli.output()).toContain('--since');
  });
});

test('formatChange: one line with time, id, type, status, attempts and what the change is about', () => {
  const base: Command = {
    id: 'c1', type: 'HTTP_GET_JSON', payload: { url: 'http://x' }, status: 'PENDING', result: null, error: null,
    agentId: null, attempts: 1, maxAttempts: 3, timeoutMs: 30_000, leaseExpiresAt: null,
    availableAt: '2030-01-01T00:00:02.000Z', cancelRequested: false, progress: null,
    createdAt: '2030-01-01T00:00:00.000Z', updatedAt: '2030-01-01T00:00:01.000Z', startedAt: null, finishedAt: null,
    queue: 'default', priority: 0, runAt: null, concurrencyKey: null, concurrencyLimit: null,
  };
  expect(formatChange('7', 'status', { ...base, error: 'status 503' })).toBe(
    '2030-01-01T00:00:01.000Z  #7  c1  HTTP_GET_JSON  PENDING    attempt 1/3  retry at 2030-01-01T00:00:02.000Z  error status 503',
  );
  const body = { body: 'x'.repeat(200) };
  const done = formatChange('9', 'status', { ...base, status: 'COMPLETED', result: body });
  expect(done).toMatch(/ {2}COMPLETED {2}attempt 1\/3 {2}result \{"body":"x+…$/);
  expect(done.length).toBeLessThan(200);
  expect(formatChange('8', 'status', { ...base, status: 'RUNNING', cancelRequested: true, progress: { percent: 12.4 } })).toMatch(
    /RUNNING {4}attempt 1\/3 {2}progress 12% {2}cancel requested$/,
  );
  // Routing (SPEC §9): a queue other than default, a priority, a scheduled start, why it waits.
  const routed = { ...base, attempts: 0, queue: 'gpu', priority: 5, runAt: base.availableAt };
  expect(formatChange('10', 'status', routed)).toBe(
    '2030-01-01T00:00:01.000Z  #10  c1  HTTP_GET_JSON  PENDING    attempt 0/3  queue gpu  priority 5  starts at 2030-01-01T00:00:02.000Z',
  );
  expect(formatChange('11', 'status', { ...routed, waitingFor: { reason: 'concurrency', running: 2, limit: 2 } })).toMatch(
    /waiting for a slot of its concurrency key \(2\/2 running\)$/,
  );
  expect(formatWaitingFor({ reason: 'agent' })).toBe('waiting for an agent serving its queue and type');
  expect(formatWaitingFor({ reason: 'capacity' })).toBe('waiting for a free agent');
  expect(formatWaitingFor({ reason: 'schedule', until: '2030-01-01T00:00:02.000Z' })).toBe('waiting for its start time 2030-01-01T00:00:02.000Z');
});
