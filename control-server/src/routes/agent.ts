import {
  AGENT_DRAIN_HEADER,
  BatchClaimResponse,
  BatchResultBody,
  BatchResultQuery,
  BatchResultResponse,
  ClaimedCommand,
  CommandIdParams,
  ErrorResponse,
  HeartbeatBody,
  HeartbeatResponse,
  jsonDepth,
  MAX_LONG_POLL_WAIT_S,
  MAX_RESULT_BYTES,
  MAX_RESULT_DEPTH,
  NextBatchQuery,
  NextQuery,
  ResultBody,
  ReportClaim,
  ResultResponse,
} from '@agent-executor/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { requireBearer } from '../auth.js';
import { BadRequest, HttpError, PayloadTooLarge } from '../errors.js';
import type { LongPoll } from '../long-poll.js';
import { AGENT_SECURITY, type HeaderDoc } from '../openapi.js';
import type { AgentInfo, AgentRegistry } from '../agent-registry.js';
import { routeOf } from '../store/claim-route.js';
import type { CommandStore } from '../store/store.js';

export interface AgentRoutesOptions {
  store: CommandStore;
  registry: AgentRegistry;
  longPoll: LongPoll;
  leaseMs: number;
  agentToken: string | undefined;
}

const errors = { 400: ErrorResponse, 401: ErrorResponse, 404: ErrorResponse, 409: ErrorResponse };
const noWork = z.null().describe('no work');
const WAIT_APPLIED: Record<string, HeaderDoc> = {
  'Preference-Applied': { description: '`wait=N` when the poll honoured `Prefer: wait=N` and waited', type: 'string' },
  'Agent-Drain': { description: '`true`: this agent is being drained; it claims nothing more, finishes, reports and exits', type: 'string' },
};

/** Agent routes: poll (long-poll), report, heartbeat. Guarded by AGENT_TOKEN when it is set. */
export const agentRoutes: FastifyPluginAsyncZod<AgentRoutesOptions> = async (app, options) => {
  const { store, longPoll, leaseMs, registry } = options;
  app.addHook('onRequest', requireBearer(options.agentToken));

  /**
   * What a poll and a report's claim both do first: the agent is seen for its route (GET /agents),
   * then up to `max` commands are leased at once. A draining agent claims nothing more: it hears so
   * at once (the drain header) and finishes what it runs. A poll that will wait skips the claim
   * when its route is drained (`LongPoll.isDrained`): it would find nothing, and the work that
   * appears next wakes it.
   */
  async function claimNow(agentId: string, agent: AgentInfo, max: number, willWait: boolean): Promise<ClaimedCommand[] | undefined> {
    registry.polled(agentId, agent);
    if (registry.isDraining(agentId)) return undefined;
    const route = { queues: agent.queues, types: agent.types };
    if (willWait && longPoll.isDrained(route)) return [];
    const mark = longPoll.mark;
    const claimed = await store.claimBatch(agentId, leaseMs, max, route);
    if (claimed.length < max) longPoll.drainedAt(route, mark);
    return claimed;
  }

  /** Claims at once, or waits when asked to; an empty array means "no work". */
  async function poll(request: FastifyRequest, reply: FastifyReply, query: NextQuery, max: number) {
    const { agentId, wait, hostname, version, concurrency } = query;
    const route = routeOf(query);
    const waitS = wait ?? preferredWait(headerValue(request.headers.prefer));
    const mark = longPoll.mark;
    const claimed = await claimNow(agentId, { ...route, hostname, version, concurrency } as AgentInfo, max, Boolean(waitS));
    if (claimed === undefined) return drainAnswer(reply);
    if (claimed.length > 0) return claimed;
    if (!waitS) return [];
    void reply.header('Preference-Applied', `wait=${waitS}`);
    const commands = await longPoll.wait(agentId, max, route, waitS * 1000, reply.raw, mark);
    return commands.length === 0 && registry.isDraining(agentId) ? drainAnswer(reply) : commands;
  }

  /**
   * The claim of a report-and-claim: leased as next-batch leases (`store.claimBatch`, same route
   * rules), never waited for. If the answer is lost, these leases run out like any other.
   */
  async function claimAlong(claim: ReportClaim, reply: FastifyReply): Promise<ClaimedCommand[]> {
    const { agentId, max, hostname, version, concurrency } = claim;
    // A JSON array may name a queue twice (the poll's comma list drops repeats as it is parsed).
    const route = routeOf({ queues: claim.queues && [...new Set(claim.queues)], types: claim.types && [...new Set(claim.types)] });
    // Seen as a poll is: an agent kept busy by its reports is a live agent of its queues.
    return (await claimNow(agentId, { ...route, hostname, version, concurrency } as AgentInfo, max, false)) ?? drainAnswer(reply);
  }

  app.get(
    '/commands/next',
    {
      config: { changesState: true },
      schema: {
        summary: 'Lease the next command; with wait (or Prefer: wait=N) hold the poll open until work appears',
        operationId: 'claimNextCommand',
        tags: ['agents'],
        security: AGENT_SECURITY,
        querystring: NextQuery,
        response: { 200: ClaimedCommand, 204: noWork, ...errors },
        responseHeaders: { 200: WAIT_APPLIED, 204: WAIT_APPLIED },
      },
    },
    async (request, reply) => {
      const [command] = await poll(request, reply, request.query, 1);
      return command ?? reply.code(204).send(null);
    },
  );

  app.get(
    '/commands/next-batch',
    {
      config: { changesState: true },
      schema: {
        summary: 'Lease up to `max` commands at once (same waiting rules as /commands/next)',
        operationId: 'claimCommandBatch',
        tags: ['agents'],
        security: AGENT_SECURITY,
        querystring: NextBatchQuery,
        response: { 200: BatchClaimResponse, 204: noWork, ...errors },
        responseHeaders: { 200: WAIT_APPLIED, 204: WAIT_APPLIED },
      },
    },
    async (request, reply) => {
      const commands = await poll(request, reply, request.query, request.query.max);
      return commands.length > 0 ? { commands } : reply.code(204).send(null);
    },
  );

  app.put(
    '/commands/:id/result',
    {
      schema: {
        summary: 'Report the outcome of an attempt',
        operationId: 'reportResult',
        tags: ['agents'],
        security: AGENT_SECURITY,
        params: CommandIdParams,
        body: ResultBody,
        response: { 200: ResultResponse, 413: ErrorResponse, ...errors },
      },
    },
    async (request) => {
      checkResultSize(request.body.result);
      const { command } = await store.report(request.params.id, request.body);
      return { success: true as const, command };
    },
  );

  app.put(
    '/commands/results',
    {
      schema: {
        summary:
          'Report many outcomes at once; each gets the answer the single route would give. ' +
          'With `claim`, also lease up to `claim.max` more commands, answered in `commands` (never waits). ' +
          'With `?brief=true`, an accepted report is answered with the command\'s `status`, not the whole command',
        operationId: 'reportResults',
        tags: ['agents'],
        security: AGENT_SECURITY,
        querystring: BatchResultQuery,
        body: BatchResultBody,
        response: { 200: BatchResultResponse, 413: ErrorResponse, ...errors },
      },
    },
    async (request, reply) => {
      const { reports, claim } = request.body;
      const { brief } = request.query;
      for (const report of reports) checkResultSize(report.result);
      // Reports issued together share one group commit in the store; a claim asked for along with
      // them is issued in the same turn, so with SQLite it commits with them too.
      const reported = Promise.allSettled(reports.map(({ id, ...body }) => store.report(id, body)));
      const claimed = claim === undefined ? undefined : claimAlong(claim, reply);
      const [settled, commands] = await Promise.all([reported, claimed]);
      const results = settled.map((outcome, i) => {
        const id = request.body.reports[i]?.id ?? '';
        if (outcome.status === 'fulfilled') {
          const { command } = outcome.value;
          return brief ? { id, statusCode: 200, status: command.status } : { id, statusCode: 200, command };
        }
        if (outcome.reason instanceof HttpError) {
          return { id, statusCode: outcome.reason.statusCode, message: outcome.reason.message };
        }
        throw outcome.reason;
      });
      return commands === undefined ? { results } : { results, commands };
    },
  );

  app.post(
    '/commands/:id/heartbeat',
    {
      schema: {
        summary: 'Renew a lease, optionally with progress; 409 means the lease is lost: stop the work',
        operationId: 'sendHeartbeat',
        tags: ['agents'],
        security: AGENT_SECURITY,
        params: CommandIdParams,
        body: HeartbeatBody,
        response: { 200: HeartbeatResponse, ...errors },
        responseHeaders: { 200: { 'Agent-Drain': WAIT_APPLIED['Agent-Drain']! } },
      },
    },
    async (request, reply) => {
      registry.heartbeat(request.body.agentId);
      if (registry.isDraining(request.body.agentId)) void reply.header(AGENT_DRAIN_HEADER, 'true');
      return store.heartbeat(request.params.id, request.body, leaseMs);
    },
  );
};

function drainAnswer(reply: FastifyReply): ClaimedCommand[] {
  void reply.header(AGENT_DRAIN_HEADER, 'true');
  return [];
}

function checkResultSize(result: unknown): void {
  if (result === undefined) return;
  if (jsonDepth(result) > MAX_RESULT_DEPTH) {
    throw new BadRequest(`result: nested deeper than ${MAX_RESULT_DEPTH} levels`);
  }
  if (Buffer.byteLength(JSON.stringify(result)) > MAX_RESULT_BYTES) {
    throw new PayloadTooLarge(`result: larger than ${MAX_RESULT_BYTES} bytes of JSON`);
  }
}

/** `Prefer: wait=N` (RFC 7240); values above the server's limit are capped, malformed ones ignored. */
export function preferredWait(prefer: string | undefined): number | undefined {
  const match = prefer === undefined ? null : /(?:^|[,;\s])wait=(\d{1,6})(?:$|[,;\s])/i.exec(prefer);
  return match?.[1] === undefined ? undefined : Math.min(Number(match[1]), MAX_LONG_POLL_WAIT_S);
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(', ') : value;
}
