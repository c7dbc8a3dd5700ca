import type { FastifyInstance } from 'fastify';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { CommandStore, StoredEvent } from './store/store.js';

export interface MetricsSources {
  store: CommandStore;
  waitingPolls: () => number;
  sseClients: () => number;
  /** SSE clients dropped for being too far behind, since the start. */
  sseDropped: () => number;
}

/**
 * Prometheus metrics, one registry per app. Counters move on store events, so they count what
 * was committed, not what was attempted; gauges are read from their source at scrape time.
 */
export function installMetrics(app: FastifyInstance, sources: MetricsSources): Registry {
  const registry = new Registry();
  // The event-loop-lag monitor samples every 10 ms by default: 0.45 % CPU of an idle server.
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 1000 });
  const { store } = sources;
  // Both gauges below read the counts: one read per scrape, not one each. (The store keeps the
  // counts as they change, so this is a few rows, not a scan of the table.)
  let scrapeCounts: ReturnType<CommandStore['countByStatus']> | undefined;
  const countsForThisScrape = () => {
    if (!scrapeCounts) {
      scrapeCounts = store.countByStatus();
      setImmediate(() => (scrapeCounts = undefined));
    }
    return scrapeCounts;
  };

  new Gauge({
    name: 'agent_executor_commands',
    help: 'Stored commands by status',
    labelNames: ['status'],
    registers: [registry],
    async collect() {
      for (const [status, count] of Object.entries(await countsForThisScrape())) this.set({ status }, count);
    },
  });
  new Gauge({
    name: 'agent_executor_queue_depth',
    help: 'PENDING commands (including those waiting out a retry backoff)',
    registers: [registry],
    async collect() {
      this.set((await countsForThisScrape()).PENDING);
    },
  });
  new Gauge({
    name: 'agent_executor_database_full',
    help: '1 while the database has no space for writes (they answer 503), else 0',
    registers: [registry],
    collect() {
      this.set(store.isFull() ? 1 : 0);
    },
  });
  new Gauge({
    name: 'agent_executor_waiting_polls',
    help: 'Agent long-polls waiting for work',
    registers: [registry],
    collect() {
      this.set(sources.waitingPolls());
    },
  });
  new Gauge({
    name: 'agent_executor_sse_clients',
    help: 'Open Server-Sent Events streams',
    registers: [registry],
    collect() {
      this.set(sources.sseClients());
    },
  });

  let droppedCounted = 0;
  new Counter({
    name: 'agent_executor_sse_clients_dropped_total',
    help: 'SSE clients dropped for falling behind (SSE_MAX_QUEUED / SSE_MAX_QUEUED_BYTES); they can resume',
    registers: [registry],
    collect() {
      // Read off the hub, which only counts up: what was added since the last scrape.
      const dropped = sources.sseDropped();
      this.inc(dropped - droppedCounted);
      droppedCounted = dropped;
    },
  });

  const transitions = new Counter({
    name: 'agent_executor_transitions_total',
    help: 'Committed changes by kind (submit, claim, report, expire, cancel, retry, release, progress)',
    labelNames: ['transition'],
    registers: [registry],
  });
  const reports = new Counter({
    name: 'agent_executor_reports_total',
    help: 'Reports taken, by the status they led to (PENDING = retry scheduled)',
    labelNames: ['outcome'],
    registers: [registry],
  });
  const expiries = new Counter({
    name: 'agent_executor_lease_expiries_total',
    help: 'Leases that ran out, by the status they led to',
    labelNames: ['outcome'],
    registers: [registry],
  });
  const dispatchLatency = new Histogram({
    name: 'agent_executor_dispatch_latency_seconds',
    help: 'From a command becoming available (submit or end of backoff) to an agent claiming it',
    buckets: [0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [registry],
  });
  const httpDuration = new Histogram({
    name: 'agent_executor_http_request_duration_seconds',
    help: 'HTTP request durations by route',
    labelNames: ['method', 'route', 'status_code'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5, 30, 60],
    registers: [registry],
  });

  // Children by label value, looked up once: prom-client hashes a labels object on every call
  // (~1 % of a busy server's CPU with the histogram below, profile).
  const transitionsBy = childrenOf((value) => transitions.labels(value));
  const reportsBy = childrenOf((value) => reports.labels(value));
  const httpBy = childrenOf((key) => httpDuration.labels(...(key.split(' ') as [string, string, string])));
  const onEvent = ({ transition, command }: StoredEvent) => {
    transitionsBy(transition).inc();
    if (transition === 'report') reportsBy(command.status).inc();
    if (transition === 'expire') expiries.inc({ outcome: command.status });
    if (transition === 'claim' && command.startedAt !== null) {
      dispatchLatency.observe(Math.max(0, Date.parse(command.startedAt) - Date.parse(command.availableAt)) / 1000);
    }
  };
  store.events.on('event', onEvent);
  app.addHook('onClose', async () => store.events.off('event', onEvent));

  app.addHook('onResponse', (request, reply, done) => {
    // Label values in the order of labelNames; a route path holds no space.
    httpBy(`${request.method} ${request.routeOptions.url ?? 'unknown'} ${reply.statusCode}`).observe(reply.elapsedTime / 1000);
    done();
  });
  return registry;
}

/** A cache of a metric's children by label value(s), each made on first use. */
function childrenOf<C>(make: (key: string) => C): (key: string) => C {
  const children = new Map<string, C>();
  return (key) => {
    let child = children.get(key);
    if (child === undefined) children.set(key, (child = make(key)));
    return child;
  };
}
