import { createServer, type Server } from 'node:http';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/**
 * The agent's Prometheus metrics. Counters move where the work happens (the worker, the server
 * client); the outbox backlog is read from the outbox at scrape time. Served on METRICS_PORT
 * when it is set; otherwise counted and never read, which costs next to nothing.
 */
export class AgentMetrics {
  readonly registry = new Registry();
  readonly executions = new Counter({
    name: 'agent_executor_agent_executions_total',
    help: 'Attempts executed here, by command type and outcome (COMPLETED, FAILED, LEASE_LOST)',
    labelNames: ['type', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly executionSeconds = new Histogram({
    name: 'agent_executor_agent_execution_duration_seconds',
    help: 'How long attempts ran, from start to the executor returning, by command type and outcome',
    labelNames: ['type', 'outcome'] as const,
    buckets: [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800, 3600],
    registers: [this.registry],
  });
  readonly claims = new Counter({
    name: 'agent_executor_agent_claims_total',
    help: 'Commands this agent leased from the server',
    registers: [this.registry],
  });
  readonly reportRetries = new Counter({
    name: 'agent_executor_agent_report_retries_total',
    help: 'Report requests that failed (network error, 5xx, 429) and were sent again',
    registers: [this.registry],
  });

  /** `outboxBacklog`: finished outcomes the server has not taken yet. */
  constructor(outboxBacklog: () => number) {
    new Gauge({
      name: 'agent_executor_agent_outbox_backlog',
      help: 'Finished outcomes kept in the outbox that the server has not taken yet',
      registers: [this.registry],
      collect() {
        this.set(outboxBacklog());
      },
    });
  }

  /** Serves `GET /metrics` on `port` (all interfaces, like the server), with the process metrics. */
  async serve(port: number): Promise<Server> {
    // Sampling the event loop every 10 ms (the default) costs CPU for nothing a scrape shows.
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 1000 });
    const server = createServer((request, response) => {
      if (request.method !== 'GET' || request.url?.split('?')[0] !== '/metrics') {
        response.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try GET /metrics\n');
        return;
      }
      this.registry.metrics().then(
        (text) => response.writeHead(200, { 'content-type': this.registry.contentType }).end(text),
        (err: Error) => response.writeHead(500, { 'content-type': 'text/plain' }).end(`${err.message}\n`),
      );
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '0.0.0.0', () => {
        server.off('error', reject);
        resolve();
      });
    });
    return server;
  }
}
