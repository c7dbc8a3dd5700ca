import {
  ClaimedCommand,
  CommandIdParams,
  ErrorResponse,
  HeartbeatBody,
  HeartbeatResponse,
  MAX_LONG_POLL_WAIT_S,
  MAX_RESULT_BYTES,
  NextQuery,
  ResultBody,
  ResultResponse,
} from '@agent-executor/common';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { requireBearer } from '../auth.js';
import { PayloadTooLarge } from '../errors.js';
import type { LongPoll } from '../long-poll.js';
import type { CommandStore } from '../store/store.js';

export interface AgentRoutesOptions {
  store: CommandStore;
  longPoll: LongPoll;
  leaseMs: number;
  agentToken: string | undefined;
}

const errors = { 400: ErrorResponse, 401: ErrorResponse, 404: ErrorResponse, 409: ErrorResponse };

/** Agent routes: poll (long-poll), report, heartbeat. Guarded by AGENT_TOKEN when it is set. */
export const agentRoutes: FastifyPluginAsyncZod<AgentRoutesOptions> = async (app, options) => {
  const { store, longPoll, leaseMs } = options;
  app.addHook('onRequest', requireBearer(options.agentToken));

  app.get(
    '/commands/next',
    {
      schema: {
        summary: 'Lease the next command; with wait (or Prefer: wait=N) hold the poll open until work appears',
        tags: ['agents'],
        querystring: NextQuery,
        response: { 200: ClaimedCommand, 204: z.null().describe('no work'), ...errors },
      },
    },
    async (request, reply) => {
      const { agentId } = request.query;
      const claimed = await store.claim(agentId, leaseMs);
      if (claimed) return claimed;
      const waitS = request.query.wait ?? preferredWait(headerValue(request.headers.prefer));
      if (!waitS) return reply.code(204).send(null);
      void reply.header('Preference-Applied', `wait=${waitS}`);
      const handed = await longPoll.wait(agentId, waitS * 1000, reply.raw);
      return handed ?? reply.code(204).send(null);
    },
  );

  app.put(
    '/commands/:id/result',
    {
      schema: {
        summary: 'Report the outcome of an attempt',
        tags: ['agents'],
        params: CommandIdParams,
        body: ResultBody,
        response: { 200: ResultResponse, 413: ErrorResponse, ...errors },
      },
    },
    async (request) => {
      const { result } = request.body;
      if (result !== undefined && Buffer.byteLength(JSON.stringify(result)) > MAX_RESULT_BYTES) {
        throw new PayloadTooLarge(`result: larger than ${MAX_RESULT_BYTES} bytes of JSON`);
      }
      const { command } = await store.report(request.params.id, request.body);
      return { success: true as const, command };
    },
  );

  app.post(
    '/commands/:id/heartbeat',
    {
      schema: {
        summary: 'Renew a lease, optionally with progress; 409 means the lease is lost: stop the work',
        tags: ['agents'],
        params: CommandIdParams,
        body: HeartbeatBody,
        response: { 200: HeartbeatResponse, ...errors },
      },
    },
    async (request) => store.heartbeat(request.params.id, request.body, leaseMs),
  );
};

/** `Prefer: wait=N` (RFC 7240); values above the server's limit are capped, malformed ones ignored. */
export function preferredWait(prefer: string | undefined): number | undefined {
  const match = prefer === undefined ? null : /(?:^|[,;\s])wait=(\d{1,6})(?:$|[,;\s])/i.exec(prefer);
  return match?.[1] === undefined ? undefined : Math.min(Number(match[1]), MAX_LONG_POLL_WAIT_S);
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(', ') : value;
}
