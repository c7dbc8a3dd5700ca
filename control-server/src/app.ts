import cors from '@fastify/cors';
import { fastifySSE } from '@fastify/sse';
import { MAX_BODY_BYTES, MAX_LONG_POLL_WAIT_S } from '@agent-executor/common';
import { AgentRegistry } from './agent-registry.js';
import Fastify, { type FastifyInstance } from 'fastify';
import { validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import type { Clock } from './clock.js';
import type { ServerConfig } from './config.js';
import { serveDashboard } from './dashboard.js';
import { installErrorHandler } from './error-handler.js';
import { BadRequest } from './errors.js';
import { refuseHeadWhereGetChangesState } from './head-requests.js';
import { installBodyLimits, requestTimeoutOptions } from './http-limits.js';
import { LeaseReaper } from './lease-reaper.js';
import { LongPoll } from './long-poll.js';
import { installMetrics } from './metrics.js';
import { registerOpenApi } from './openapi.js';
import { endQuietConnectionsOnClose } from './quiet-connections.js';
import { echoRequestId, requestIdOf } from './request-id.js';
import { Retention } from './retention.js';
import { agentRoutes } from './routes/agent.js';
import { bulkRoutes } from './routes/bulk.js';
import { commandRoutes } from './routes/commands.js';
import { eventRoutes } from './routes/events.js';
import { fleetRoutes } from './routes/fleet.js';
import { healthRoutes } from './routes/health.js';
import { metricsRoutes } from './routes/metrics.js';
import { SseHub } from './sse/hub.js';
import type { CommandStore } from './store/store.js';

export type { ServerConfig } from './config.js';
export { loadConfig } from './config.js';
export { SqliteCommandStore } from './store/sqlite.js';
export { PostgresCommandStore } from './store/postgres.js';
export type { CommandStore } from './store/store.js';

export interface App extends FastifyInstance {
  longPoll: LongPoll;
  sseHub: SseHub;
}

export interface BuildOptions {
  /** The wall clock must be the store's. Injected in tests. */
  clock?: Clock;
  /** The built dashboard served at /ui/; default: the installed @agent-executor/dashboard's dist/. */
  dashboardDir?: string;
}

/** Builds the server around a store it does not own: the caller closes the store after the app. */
export async function buildApp(config: ServerConfig, store: CommandStore, options: BuildOptions = {}): Promise<App> {
  const app = Fastify({
    bodyLimit: MAX_BODY_BYTES,
    // The client's X-Request-Id when it is sane, else a new UUID: one id follows a call through
    // the agent's and the server's logs. genReqId does the check, so Fastify must not take it raw.
    requestIdHeader: false,
    genReqId: requestIdOf,
    ...requestTimeoutOptions(config.requestTimeoutMs),
    logger: {
      level: config.logLevel,
      // Tokens travel in headers (never logged) or in ?access_token= for EventSource: strip it.
      serializers: { req: (req) => ({ method: req.method, url: stripToken(req.url), remoteAddress: req.ip }) },
      // ISO times, like the agent's: an operator reads both logs side by side.
      timestamp: () => `,"time":"${new Date().toISOString()}"`,
    },
  }).withTypeProvider<ZodTypeProvider>();

  app.setValidatorCompiler(validatorCompiler);
  // Answers are serialised as they are, not parsed by zod first: the store builds them from its
  // own rows in the types common/ infers from those schemas (the compiler checks the shapes), and
  // the schemas still document every answer in OpenAPI. Parsing each answer again cost ~3 % of
  // the server's time under load (BENCHMARKS.md); test/response-shapes.test.ts holds the line.
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));
  installErrorHandler(app);
  installJsonParser(app);
  echoRequestId(app);
  installBodyLimits(app, MAX_BODY_BYTES);
  refuseHeadWhereGetChangesState(app);
  endQuietConnectionsOnClose(app);

  await app.register(cors, {
    origin: config.corsOrigin,
    // The plugin's default (GET, HEAD, POST) would refuse the PUT of a result.
    methods: ['GET', 'HEAD', 'POST', 'PUT'],
    exposedHeaders: ['Location', 'Link', 'Idempotent-Replayed', 'Preference-Applied', 'X-Request-Id'],
  });
  await registerOpenApi(app);

  const longPoll = new LongPoll({
    claim: (requests) => store.claimEach(requests, config.leaseMs),
    release: (command) => store.release(command.id, command.leaseId),
    onError: (err) => app.log.error({ err }, 'handing work to waiting polls failed'),
  });
  const dispatch = () => void longPoll.dispatch();
  store.events.on('available', dispatch);
  const reaper = new LeaseReaper(store, {
    leaseMs: config.leaseMs,
    onAvailable: dispatch,
    log: app.log,
    ...(options.clock ? { clock: options.clock } : {}),
  });
  // Gone: missed three chances to poll or heartbeat (the longest poll, or a lease).
  const registry = new AgentRegistry(store, {
    goneAfterMs: 3 * Math.max(MAX_LONG_POLL_WAIT_S * 1000, config.leaseMs),
    ...(options.clock ? { now: () => options.clock!.wall() } : {}),
    onError: (err) => app.log.error({ err }, 'the agent registry could not be saved'),
  });
  const retention = new Retention(store, { retentionMs: config.retentionMs, log: app.log });

  await app.register(fastifySSE, { heartbeatInterval: 0 });
  const sseHub = new SseHub(store, config.ssePingMs);

  const metrics = installMetrics(app, {
    store,
    waitingPolls: () => longPoll.size,
    sseClients: () => sseHub.size,
  });

  await app.register(healthRoutes, { store });
  await app.register(metricsRoutes, { registry: metrics, tokens: [config.metricsToken, config.apiToken] });
  await app.register(eventRoutes, {
    store,
    hub: sseHub,
    apiToken: config.apiToken,
    maxQueued: config.sseMaxQueued,
    maxQueuedBytes: config.sseMaxQueuedBytes,
  });
  await app.register(commandRoutes, { store, registry, apiToken: config.apiToken });
  await app.register(bulkRoutes, { store, apiToken: config.apiToken });
  await serveDashboard(app, options.dashboardDir);
  await app.register(agentRoutes, { store, registry, longPoll, leaseMs: config.leaseMs, agentToken: config.agentToken });
  await app.register(fleetRoutes, { registry, longPoll, apiToken: config.apiToken });

  app.addHook('onReady', async () => {
    reaper.start();
    retention.start();
    registry.start();
  });
  // Before the server stops accepting: answer waiting polls (204) so close does not wait for them.
  app.addHook('preClose', async () => {
    longPoll.close();
    sseHub.close();
  });
  app.addHook('onClose', async () => {
    store.events.off('available', dispatch);
    await reaper.stop();
    await retention.stop();
    await registry.stop();
  });

  return Object.assign(app, { longPoll, sseHub }) as unknown as App;
}

/**
 * JSON bodies only: Fastify's built-in text/plain parser goes too, so any other type is a 415.
 * An empty body counts as no body, so `curl -X POST …/cancel` needs no `-d '{}'`.
 */
function installJsonParser(app: FastifyInstance): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => {
    const text = body as string;
    if (text.trim() === '') return done(null, undefined);
    try {
      done(null, JSON.parse(text));
    } catch {
      done(new BadRequest('body is not valid JSON'), undefined);
    }
  });
}

function stripToken(url: string): string {
  return url.replace(/([?&]access_token=)[^&]*/g, '$1[redacted]');
}
