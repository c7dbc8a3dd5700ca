import SwaggerParser from '@apidevtools/swagger-parser';
import { describe, expect, test } from 'vitest';
import { loadConfig } from '../src/app.js';
import { delay, submit, useApp } from './helpers.js';

const { build } = useApp();

/** Every route of SPEC §3, as OpenAPI paths. */
const SPEC_ROUTES = [
  'get /health',
  'post /commands',
  'get /commands',
  'get /commands/{id}',
  'get /commands/next',
  'put /commands/{id}/result',
  'post /commands/{id}/heartbeat',
  'post /commands/{id}/cancel',
  'post /commands/{id}/retry',
  'get /events',
  'get /commands/{id}/events',
  'get /metrics',
];

describe('OpenAPI document', () => {
  test('is a valid OpenAPI 3 document that lists every route of the contract with its responses', async () => {
    const { app } = await build();
    const res = await app.inject({ method: 'GET', url: '/openapi.json' });
    expect(res.statusCode).toBe(200);
    const doc = res.json<{ openapi: string; paths: Record<string, Record<string, { responses: object }>> }>();
    expect(doc.openapi).toMatch(/^3\./);
    await SwaggerParser.validate(structuredClone(doc) as never);

    const listed = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m} ${path}`));
    expect(listed).toEqual(expect.arrayContaining(SPEC_ROUTES));
    for (const route of SPEC_ROUTES) {
      const [method, path] = route.split(' ') as [string, string];
      expect(Object.keys(doc.paths[path]?.[method]?.responses ?? {}), route).toContain(
        route === 'post /commands' ? '201' : '200',
      );
    }
    // The submit body is generated from the zod schema: its limits show up in the document
    // (in the named SubmitBody schema the operation refers to).
    const resolved = (await SwaggerParser.dereference(structuredClone(doc) as never)) as unknown as typeof doc;
    expect(JSON.stringify(resolved.paths['/commands']?.['post'])).toContain('86400000');
  });

  test('/docs renders the interactive documentation', async () => {
    const { app } = await build();
    const res = await app.inject({ method: 'GET', url: '/docs/' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toContain('text/html');
    expect(res.body).toContain('swagger');
  });
});

describe('Prometheus metrics', () => {
  test('counts move with traffic: statuses, claims, reports, dispatch latency, HTTP durations', async () => {
    const { app } = await build();
    const scrape = async () => {
      const res = await app.inject({ method: 'GET', url: '/metrics' });
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toContain('text/plain');
      return res.body;
    };
    const value = (text: string, series: string) => {
      const line = text.split('\n').find((l) => l.startsWith(`${series} `));
      return line === undefined ? undefined : Number(line.slice(series.length + 1));
    };

    const before = await scrape();
    expect(value(before, 'agent_executor_commands{status="PENDING"}')).toBe(0);

    const [first] = [await submit(app, delay(5)), await submit(app, delay(5)), await submit(app, delay(5))];
    const poll = await app.inject({ method: 'GET', url: '/commands/next?agentId=metrics-agent' });
    expect(poll.statusCode).toBe(200);
    const claimed = poll.json<{ id: string; leaseId: string }>();
    expect(claimed.id).toBe(first?.id);
    const report = await app.inject({
      method: 'PUT',
      url: `/commands/${claimed.id}/result`,
      payload: { agentId: 'metrics-agent', leaseId: claimed.leaseId, result: { ok: true } },
    });
    expect(report.statusCode).toBe(200);

    const after = await scrape();
    expect(value(after, 'agent_executor_commands{status="PENDING"}')).toBe(2);
    expect(value(after, 'agent_executor_commands{status="COMPLETED"}')).toBe(1);
    expect(value(after, 'agent_executor_queue_depth')).toBe(2);
    expect(value(after, 'agent_executor_transitions_total{transition="submit"}')).toBe(3);
    expect(value(after, 'agent_executor_transitions_total{transition="claim"}')).toBe(1);
    expect(value(after, 'agent_executor_reports_total{outcome="COMPLETED"}')).toBe(1);
    expect(value(after, 'agent_executor_dispatch_latency_seconds_count')).toBe(1);
    expect(value(after, 'agent_executor_waiting_polls')).toBe(0);
    expect(value(after, 'agent_executor_sse_clients')).toBe(0);
    expect(
      value(after, 'agent_executor_http_request_duration_seconds_count{method="POST",route="/commands",status_code="201"}'),
    ).toBe(3);
  });

  test('needs the client token when API_TOKEN is set', async () => {
    const token = 'metrics-token-0123456789';
    const { app } = await build({ env: { API_TOKEN: token } });
    expect((await app.inject({ method: 'GET', url: '/metrics' })).statusCode).toBe(401);
    const ok = await app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${token}` } });
    expect(ok.statusCode).toBe(200);
  });

  test('METRICS_TOKEN: /metrics takes it (and API_TOKEN); other tokens are refused; it opens no other route', async () => {
    const apiToken = 'client-token-0123456789';
    const metricsToken = 'scraper-token-0123456789';
    const agentToken = 'agent-token-0123456789';
    const { app } = await build({ env: { API_TOKEN: apiToken, METRICS_TOKEN: metricsToken, AGENT_TOKEN: agentToken } });
    const get = (url: string, token?: string) =>
      app.inject({ method: 'GET', url, headers: token === undefined ? {} : { authorization: `Bearer ${token}` } });
    expect((await get('/metrics', metricsToken)).statusCode).toBe(200);
    expect((await get('/metrics', apiToken)).statusCode).toBe(200);
    expect((await get('/metrics', agentToken)).statusCode).toBe(401);
    expect((await get('/metrics', `${metricsToken}x`)).statusCode).toBe(401);
    expect((await get('/metrics')).statusCode).toBe(401);
    // The scraper's token reads metrics only.
    expect((await get('/commands', metricsToken)).statusCode).toBe(401);
    expect((await get('/commands/next?agentId=a', metricsToken)).statusCode).toBe(401);
    expect((await get('/events', metricsToken)).statusCode).toBe(401);
  });

  test('METRICS_TOKEN alone guards /metrics and nothing else', async () => {
    const metricsToken = 'scraper-token-0123456789';
    const { app } = await build({ env: { METRICS_TOKEN: metricsToken } });
    expect((await app.inject({ method: 'GET', url: '/metrics' })).statusCode).toBe(401);
    const ok = await app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${metricsToken}` } });
    expect(ok.statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/commands' })).statusCode).toBe(200);
  });

  test('a METRICS_TOKEN shorter than 16 characters stops the server, naming the variable', () => {
    expect(() => loadConfig({ METRICS_TOKEN: 'short' })).toThrow(/METRICS_TOKEN/);
  });
});
