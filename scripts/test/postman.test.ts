/**
 * The Postman collection at the repo root, run by newman against a real, freshly started server
 * (`node control-server/dist/main.js` on a free port with a temp database), once with auth off and
 * once with API_TOKEN/AGENT_TOKEN set. Every assertion must pass, and at least as many must run as
 * the collection defines, so a collection whose tests silently stop running cannot pass.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import newman, { type NewmanRunSummary } from 'newman';
import { afterEach, describe, expect, it } from 'vitest';
import { killAll, REPO_ROOT, startAgent, startServer, tempDir, waitFor } from '../../test-support/processes.js';

const COLLECTION_PATH = join(REPO_ROOT, 'postman_collection.json');

interface Item {
  name: string;
  item?: Item[];
  request?: unknown;
  event?: Array<{ listen: string; script: { exec: string[] } }>;
}

/** Requests in the collection and the pm.test(...) calls their test scripts define. */
function countDefined(collection: { item: Item[] }): { requests: number; assertions: number } {
  let requests = 0;
  let assertions = 0;
  const walk = (items: Item[]) => {
    for (const item of items) {
      if (item.item) walk(item.item);
      if (item.request) requests += 1;
      for (const event of item.event ?? []) {
        if (event.listen !== 'test') continue;
        assertions += event.script.exec.join('\n').match(/\bpm\.test\(/g)?.length ?? 0;
      }
    }
  };
  walk(collection.item);
  return { requests, assertions };
}

function runNewman(collection: object, envVar: Array<{ key: string; value: string }>): Promise<NewmanRunSummary> {
  return new Promise((resolve, reject) => {
    newman.run(
      // No reporters: the summary is checked below. Every request has a deadline, so a route that
      // never answers (an SSE stream that does not end, say) fails the run instead of hanging it.
      { collection, envVar, reporters: [], timeoutRequest: 10_000, timeoutScript: 5_000 },
      (err, summary) => (err ? reject(err) : resolve(summary)),
    );
  });
}

function describeFailures(summary: NewmanRunSummary): string {
  return summary.run.failures
    .map((f) => `${f.source?.name ?? '?'}: ${f.error.name}: ${f.error.message}`)
    .join('\n');
}

let dir: ReturnType<typeof tempDir> | undefined;
afterEach(async ({ task }) => {
  await killAll();
  dir?.cleanup(task.result?.state === 'pass');
  dir = undefined;
});

describe('postman_collection.json run by newman', () => {
  const collection = JSON.parse(readFileSync(COLLECTION_PATH, 'utf8')) as { item: Item[] };
  const defined = countDefined(collection);

  it('defines tests for every request', () => {
    expect(defined.requests).toBeGreaterThanOrEqual(40);
    expect(defined.assertions).toBeGreaterThanOrEqual(defined.requests);
  });

  const cases: Array<{
    name: string;
    serverEnv: Record<string, string>;
    tokens: Array<{ key: string; value: string }>;
    /** A real agent polls the server meanwhile, as after `npm start` (SPEC §9: it serves `default` only). */
    withAgent?: boolean;
  }> = [
    { name: 'auth off', serverEnv: {}, tokens: [] },
    { name: 'auth off, a real agent connected', serverEnv: {}, tokens: [], withAgent: true },
    {
      name: 'auth on (API_TOKEN and AGENT_TOKEN)',
      serverEnv: { API_TOKEN: 'postman-api-token-0123456789', AGENT_TOKEN: 'postman-agent-token-0123456789' },
      tokens: [
        { key: 'apiToken', value: 'postman-api-token-0123456789' },
        { key: 'agentToken', value: 'postman-agent-token-0123456789' },
      ],
    },
  ];

  it.each(cases)('passes every assertion against a fresh server, $name', async ({ serverEnv, tokens, withAgent }) => {
    dir = tempDir('postman');
    const server = await startServer({ DB_PATH: join(dir.path, 'commands.db'), ...serverEnv });
    if (withAgent) {
      startAgent({ SERVER_URL: server.url, IDEMPOTENCY_DB_PATH: join(dir.path, 'agent.db'), HTTP_BLOCK_PRIVATE: 'false' });
      // Polling: the server's registry has seen it.
      await waitFor(async () => ((await (await fetch(`${server.url}/agents`)).json()) as unknown[]).length > 0, {
        what: 'the agent polling',
        timeoutMs: 20_000,
      });
    }

    const summary = await runNewman(collection, [{ key: 'baseUrl', value: server.url }, ...tokens]);

    const { stats } = summary.run;
    expect(describeFailures(summary)).toBe('');
    expect(stats.requests.total).toBe(defined.requests);
    expect(stats.requests.failed).toBe(0);
    expect(stats.testScripts.failed).toBe(0);
    expect(stats.assertions.failed).toBe(0);
    expect(stats.assertions.total).toBeGreaterThanOrEqual(defined.assertions);
  }, 60_000);
});
