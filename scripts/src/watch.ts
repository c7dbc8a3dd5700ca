#!/usr/bin/env node
/**
 * Watches commands change, live, over Server-Sent Events: one line per change.
 *
 *   npm run watch -- [commandId] [--url URL] [--token TOKEN] [--status STATUS] [--since EVENT_ID]
 *
 * With a command id it follows that command (GET /commands/:id/events) and exits when it ends:
 * 0 when it COMPLETED, 1 when it FAILED. Without one it follows every change (GET /events) until
 * stopped. A dropped connection, a server restart included, is resumed from the last event id the
 * `eventsource` client saw (it sends Last-Event-ID), so no change is missed or shown twice, unless
 * the server's log was pruned past that id: the server then sends `reset`, and the CLI says on
 * stderr that changes were lost and carries on (following one command, with its current state).
 * Exit 2: bad arguments, refused (401), unknown command (404) or any other answer than a stream.
 */
import { parseArgs } from 'node:util';
import { EventSource } from 'eventsource';
import { CommandStatus, isTerminal, type Command } from '@agent-executor/common';
import { formatChange, formatWaitingFor } from './watch-format.js';

const USAGE = `usage: npm run watch -- [commandId] [--url URL] [--token TOKEN] [--status STATUS] [--since EVENT_ID]
  commandId       follow one command and exit when it ends (0 COMPLETED, 1 FAILED)
  --url URL       control server (default: the first URL of $SERVER_URL, or http://localhost:3000)
  --token TOKEN   client token when the server has API_TOKEN set (default: $API_TOKEN)
  --status S      show only changes to status S (PENDING, RUNNING, COMPLETED, FAILED)
  --since ID      first show the changes after event ID (#ID in the output), then live ones`;

interface Options {
  commandId: string | undefined;
  url: string;
  token: string | undefined;
  status: CommandStatus | undefined;
  since: string | undefined;
}

function parseOptions(argv: string[]): Options {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      url: { type: 'string' },
      token: { type: 'string' },
      status: { type: 'string' },
      since: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  if (positionals.length > 1) throw new Error(`one command id at most, got ${positionals.length}`);
  const status = values.status === undefined ? undefined : CommandStatus.safeParse(values.status.toUpperCase());
  if (status && !status.success) throw new Error(`--status: one of ${CommandStatus.options.join(', ')}`);
  if (values.since !== undefined && !/^\d{1,15}$/.test(values.since)) throw new Error('--since: an event id (#ID in the output)');
  return {
    commandId: positionals[0],
    // SERVER_URL may list an agent's replicas (comma-separated); any one of them serves the stream.
    url: (values.url ?? (process.env.SERVER_URL?.split(',')[0]?.trim() || undefined) ?? 'http://localhost:3000').replace(/\/+$/, ''),
    token: values.token ?? (process.env.API_TOKEN || undefined),
    status: status?.data,
    since: values.since,
  };
}

function streamUrl({ url, commandId, status, since }: Options): string {
  const query = new URLSearchParams();
  if (commandId === undefined && status !== undefined) query.set('status', status);
  // Only the first connection uses it: on a reconnect the Last-Event-ID header wins.
  if (since !== undefined) query.set('lastEventId', since);
  const path = commandId === undefined ? '/events' : `/commands/${encodeURIComponent(commandId)}/events`;
  return `${url}${path}${query.size > 0 ? `?${query}` : ''}`;
}

/** Prints why the followed command waits, if it still does; a failed lookup prints nothing. */
async function printWaitingFor({ url, commandId, token }: Options): Promise<void> {
  try {
    const res = await fetch(`${url}/commands/${encodeURIComponent(commandId ?? '')}`, {
      headers: token === undefined ? {} : { Authorization: `Bearer ${token}` },
    });
    if (!res.ok) return;
    const command = (await res.json()) as Command;
    if (command.status === 'PENDING' && command.waitingFor) console.log(`  ${formatWaitingFor(command.waitingFor)}`);
  } catch {
    // The stream reports connection trouble; this line is only a hint.
  }
}

/** Why the server refused the stream, in words an operator can act on. */
function refusal(code: number | undefined, options: Options): string {
  if (code === 401) return `the server wants a token: pass --token or set API_TOKEN`;
  if (code === 404) return `no command ${options.commandId} on ${options.url}`;
  if (code === 400) return 'the server refused the request (400)';
  return `the server answered ${code ?? 'without a status'} instead of a stream`;
}

function watch(options: Options): void {
  let lastStatus: CommandStatus | undefined;
  let down = false;
  let opened = false;
  const { token } = options;
  const url = streamUrl(options);
  const source = new EventSource(url, {
    fetch: (input, init) =>
      fetch(input, token === undefined ? init : { ...init, headers: { ...init.headers, Authorization: `Bearer ${token}` } }),
  });
  const finish = (code: number): never => {
    source.close();
    return process.exit(code);
  };

  const onChange = (kind: string) => (event: MessageEvent) => {
    const command = JSON.parse(event.data as string) as Command;
    lastStatus = command.status;
    if (options.status === undefined || command.status === options.status) {
      console.log(formatChange(event.lastEventId, kind, command));
    }
    // Following one command that waits: say why (SPEC §9), asked of the server once per change.
    if (options.commandId !== undefined && command.status === 'PENDING') void printWaitingFor(options);
    if (options.commandId !== undefined && kind === 'status' && isTerminal(command.status)) {
      finish(command.status === 'COMPLETED' ? 0 : 1);
    }
  };
  source.addEventListener('status', onChange('status'));
  source.addEventListener('progress', onChange('progress'));
  // The server's log no longer holds the changes after the id we resumed from (SPEC §4).
  source.addEventListener('reset', (event: MessageEvent) => {
    const { oldestEventId } = JSON.parse(event.data as string) as { oldestEventId: number };
    const next = options.commandId === undefined ? 'continuing with the changes it still holds' : 'showing the command as it is now';
    console.error(`watch: changes before #${oldestEventId} are no longer in the server's log and were not shown; ${next}`);
  });

  source.addEventListener('open', () => {
    if (!opened) console.error(`watch: following ${url}`);
    else if (down) console.error(`watch: reconnected to ${options.url}`);
    opened = true;
    down = false;
  });
  source.addEventListener('error', (event) => {
    const { code, message } = event as Event & { code?: number; message?: string };
    if (source.readyState === source.CLOSED) {
      // 204: the server says this command's stream has nothing more (we saw its end).
      if (code === 204 && lastStatus !== undefined && isTerminal(lastStatus)) finish(lastStatus === 'COMPLETED' ? 0 : 1);
      console.error(`watch: ${refusal(code, options)}`);
      finish(2);
    }
    if (!down) console.error(`watch: connection lost (${message ?? 'stream ended'}); reconnecting, resuming from the last event`);
    down = true;
  });
  process.once('SIGINT', () => finish(130));
  process.once('SIGTERM', () => finish(143));
}

let options: Options;
try {
  options = parseOptions(process.argv.slice(2));
} catch (err) {
  console.error(`watch: ${(err as Error).message}\n${USAGE}`);
  process.exit(2);
}
watch(options);
