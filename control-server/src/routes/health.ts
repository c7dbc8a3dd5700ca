import { ErrorResponse, HealthResponse } from '@agent-executor/common';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { NO_SECURITY } from '../openapi.js';
import { DatabaseFull } from '../errors.js';
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
        // Full: an operating condition with its own message (writes answer 503 until space returns).
        const full = err instanceof DatabaseFull;
        if (full) request.log.warn('health check: the database is full');
        else request.log.error({ err }, 'health check: database unusable');
        const message = full ? err.message : 'database unusable';
        return reply.code(503).send({ statusCode: 503, error: 'Service Unavailable', message });
      }
    },
  );
};
