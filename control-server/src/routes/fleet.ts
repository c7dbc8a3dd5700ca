import { AgentIdParams, AgentsResponse, AgentView, ErrorResponse, QueuesResponse } from '@agent-executor/common';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { AgentRegistry } from '../agent-registry.js';
import { requireBearer } from '../auth.js';
import { NotFound } from '../errors.js';
import type { LongPoll } from '../long-poll.js';
import { CLIENT_SECURITY } from '../openapi.js';

export interface FleetRoutesOptions {
  registry: AgentRegistry;
  longPoll: LongPoll;
  apiToken: string | undefined;
}

const errors = { 401: ErrorResponse, 404: ErrorResponse };

/** The fleet as operators see it (SPEC §9): agents, drain, queues. Guarded by API_TOKEN. */
export const fleetRoutes: FastifyPluginAsyncZod<FleetRoutesOptions> = async (app, { registry, longPoll, apiToken }) => {
  app.addHook('onRequest', requireBearer(apiToken));

  app.get(
    '/agents',
    {
      schema: {
        summary: 'Every agent seen in the last hour: what it serves, what it runs, active, draining or gone',
        operationId: 'listAgents',
        tags: ['fleet'],
        security: CLIENT_SECURITY,
        response: { 200: AgentsResponse, ...errors },
      },
    },
    async () => registry.list(),
  );

  app.post(
    '/agents/:id/drain',
    {
      schema: {
        summary: 'Drain an agent: it stops claiming, finishes what it runs, reports and exits 0',
        operationId: 'drainAgent',
        tags: ['fleet'],
        security: CLIENT_SECURITY,
        params: AgentIdParams,
        response: { 200: AgentView, ...errors },
      },
    },
    async (request) => {
      const { id } = request.params;
      if (!(await registry.drain(id))) throw new NotFound(`agent ${id} has never been seen`);
      // A poll it has waiting is answered now, carrying the drain header.
      longPoll.release(id);
      const view = (await registry.list()).find((agent) => agent.id === id);
      if (!view) throw new NotFound(`agent ${id} has not been seen in the last hour`);
      return view;
    },
  );

  app.get(
    '/queues',
    {
      schema: {
        summary: 'Per queue: PENDING and RUNNING counts, the age of its oldest PENDING command, the agents serving it',
        operationId: 'listQueues',
        tags: ['fleet'],
        security: CLIENT_SECURITY,
        response: { 200: QueuesResponse, ...errors },
      },
    },
    async () => registry.queues(),
  );
};
