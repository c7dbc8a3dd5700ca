import { ErrorResponse, HealthResponse } from '@agent-executor/common';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { NO_SECURITY } from '../openapi.js';
import type { CommandStore } from '../store/store.js';

export const healthRoutes: FastifyPluginAsyncZod<{ store: CommandStore }> = async (app, { store }) => {
  app.get(
    '/health',
    {
      schema: {
        summary: 'Liveness and database check (never needs a token)',
        operationId: 'getHealth',
        tags: ['operations'],
        security: NO_SECURITY,
        response: { 200: HealthResponse, 503: ErrorResponse },
      },
    },
    async (request, reply) => {
      try {
        await store.ping();
        return { status: 'ok' as const };
      } catch (err) {
        request.log.error({ err }, 'health check: database unusable');
        return reply
          .code(503)
          .send({ statusCode: 503, error: 'Service Unavailable', message: 'database unusable' });
      }
    },
  );
};
