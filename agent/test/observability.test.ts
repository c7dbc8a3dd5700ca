/**
 * What an operator follows a command by: the agent sends a fresh X-Request-Id with every call
 * (the server sees, logs and echoes it), its log lines about a command carry the command id and
 * attempt, and it serves Prometheus metrics on METRICS_PORT. A real agent process against a real
 * control server listening on a port; the server is built in this process so a hook can see
 * each request as it arrives.
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { buildApp, loadConfig, SqliteCommandStore, type App } from '../../control-server/src/app.js';
import { loadConfig as loadAgentConfig } from '../src/config.js';
import { freePort, killAll, startAgent, tempDir, waitFor } from '../../test-support/processes.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
/** What the agent calls: polls, reports, heartbeats (not the test's own submit and reads). */
const AGENT_ROUTE = /^(GET \/commands\/next|PUT \/commands\/results|PUT \/commands\/[^/]+\/result|POST \/commands\/[^/]+\/heartbeat)/;

let cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  await killAll();
  for (const step of cleanup.reverse()) await step();
  cleanup = [];
});

async function serverWithHook(dir: string, onRequest: (line: string, requestId: string | undefined) => number | undefined) {
  const config = loadConfig({ DB_PATH: join(dir, 'server.db'), LOG_LEVEL: 'silent', LEASE_MS: '3000' });
  const store = new SqliteCommandStore({ path: config.dbPath });
  const app: App = await buildApp(config, store);
  app.addHook('onRequest', async (request, reply) => {
    const header = request.headers['x-request-id'];
    const refuse = onRequest(`${request.method} ${request.url}`, typeof header === 'string' ? header : undefined);
    if (refuse !== undefined) return reply.code(refuse).send({ statusCode: refuse, error: 'Service Unavailable', message: 'test' });
  });
  const url = await app.listen({ port: 0, host: '127.0.0.1' });
  cleanup.push(async () => {
    await app.close();
    await store.close();
  });
  return { app, url };
}

describe('agent observability', () => {
  it('sends a unique X-Request-Id per call, logs command id and attempt, and serves its metrics', async () => {
    const dir = tempDir('agent-observability');
    let passed = false;
    cleanup.push(() => dir.cleanup(passed));

    const seen: Array<{ line: string; requestId: string | undefined }> = [];
    let refusedReports = 0;
    const { app, url } = await serverWithHook(dir.path, (line, requestId) => {
      if (!AGENT_ROUTE.test(line)) return undefined;
      seen.push({ line, requestId });
      // The first report is answered 503: the agent sends it again, a retry the metrics count.
      if (line.startsWith('PUT ') && refusedReports === 0) {
        refusedReports++;
        return 503;
      }
      return undefined;
    });

    const metricsPort = await freePort();
    const agent = startAgent({
      SERVER_URL: url,
      IDEMPOTENCY_DB_PATH: join(dir.path, 'agent.db'),
      // The lines per command are debug (at info there is a summary every 10 s instead).
      LOG_LEVEL: 'debug',
      LONG_POLL_WAIT: '1',
      METRICS_PORT: String(metricsPort),
    });

    const submitted = await app.inject({ method: 'POST', url: '/commands', payload: { type: 'DELAY', payload: { ms: 20 } } });
    expect(submitted.statusCode).toBe(201);
    const id = submitted.json<{ id: string }>().id;
    await waitFor(async () => (await app.inject({ method: 'GET', url: `/commands/${id}` })).json<{ status: string }>().status === 'COMPLETED', {
      timeoutMs: 20_000,
      what: `command ${id} COMPLETED`,
    });

    // Every agent call carried its own request id, the refused report and its retry included.
    expect(refusedReports).toBe(1);
    const reports = seen.filter((s) => s.line.startsWith('PUT '));
    expect(reports.length).toBeGreaterThanOrEqual(2);
    for (const { line, requestId } of seen) expect(requestId, line).toMatch(UUID);
    const ids = seen.map((s) => s.requestId);
    expect(new Set(ids).size).toBe(ids.length);

    // The agent's metrics, scraped over HTTP from the process.
    const scrape = async () => {
      const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toContain('text/plain');
      return res.text();
    };
    const value = (text: string, series: string) => {
      const line = text.split('\n').find((l) => l.startsWith(`${series} `));
      return line === undefined ? undefined : Number(line.slice(series.length + 1));
    };
    // The outbox row is marked reported just after the server's answer: wait for that.
    const text = await waitFor(async () => {
      const t = await scrape();
      return value(t, 'agent_executor_agent_outbox_backlog') === 0 ? t : undefined;
    }, { what: 'outbox backlog 0' });
    expect(value(text, 'agent_executor_agent_executions_total{type="DELAY",outcome="COMPLETED"}')).toBe(1);
    expect(value(text, 'agent_executor_agent_execution_duration_seconds_count{type="DELAY",outcome="COMPLETED"}')).toBe(1);
    expect(value(text, 'agent_executor_agent_execution_duration_seconds_sum{type="DELAY",outcome="COMPLETED"}')).toBeGreaterThanOrEqual(0.02);
    expect(value(text, 'agent_executor_agent_claims_total')).toBe(1);
    expect(value(text, 'agent_executor_agent_report_retries_total')).toBe(1);
    expect(text).toContain('process_cpu_seconds_total');
    expect((await fetch(`http://127.0.0.1:${metricsPort}/other`)).status).toBe(404);

    // Every log line about the command names it in a field; those of the attempt, its number too
    // (a retried report is sent by the server client, which does not know the attempt).
    const lines = agent
      .output()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { msg: string; commandId?: string; attempt?: number });
    const aboutIt = lines.filter((l) => l.msg.includes(id));
    expect(aboutIt.map((l) => l.msg)).toEqual(
      expect.arrayContaining([expect.stringMatching(/started/), expect.stringMatching(/COMPLETED/), expect.stringMatching(/^report of .* retrying$/)]),
    );
    for (const line of aboutIt) {
      expect(line, line.msg).toMatchObject(line.msg.startsWith('report of') ? { commandId: id } : { commandId: id, attempt: 1 });
    }
    passed = true;
  });

  it('METRICS_PORT is optional; a bad one stops the agent naming it', () => {
    expect(loadAgentConfig({}).metricsPort).toBeUndefined();
    expect(loadAgentConfig({ METRICS_PORT: '9464' }).metricsPort).toBe(9464);
    for (const bad of ['0', '65536', 'http', '9.5']) expect(() => loadAgentConfig({ METRICS_PORT: bad }), bad).toThrow(/METRICS_PORT/);
  });

  it('a METRICS_PORT already taken stops the agent with a message naming it', async () => {
    const dir = tempDir('agent-metrics-port');
    let passed = false;
    cleanup.push(() => dir.cleanup(passed));
    const { url } = await serverWithHook(dir.path, () => undefined);
    const port = await freePort();
    const first = startAgent({ SERVER_URL: url, IDEMPOTENCY_DB_PATH: join(dir.path, 'a.db'), METRICS_PORT: String(port) });
    await waitFor(() => fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.ok, () => false), { what: 'first agent metrics' });
    const second = startAgent({ SERVER_URL: url, IDEMPOTENCY_DB_PATH: join(dir.path, 'b.db'), METRICS_PORT: String(port) });
    expect(await second.exited).toBe(1);
    expect(second.output()).toMatch(/METRICS_PORT/);
    await first.kill();
    passed = true;
  });
});
