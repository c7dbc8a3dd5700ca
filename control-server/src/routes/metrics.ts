import { ErrorResponse } from '@agent-executor/common';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Registry } from 'prom-client';
import { z } from 'zod';
import { requireBearer } from '../auth.js';
import { METRICS_SECURITY } from '../openapi.js';

/** `tokens`: METRICS_TOKEN and API_TOKEN; either is taken, none is demanded when neither is set. */
export const metricsRoutes: FastifyPluginAsyncZod<{ registry: Registry; tokens: Array<string | undefined> }> = async (
  app,
  { registry, tokens },
) => {
  app.addHook('onRequest', requireBearer(tokens));
  app.get(
    '/metrics',
    {
      schema: {
        summary: 'Prometheus metrics (text exposition format)',
        operationId: 'getMetrics',
        tags: ['operations'],
        security: METRICS_SECURITY,
        response: { 200: z.string().describe('Prometheus text exposition format 0.0.4'), 401: ErrorResponse },
        responseMediaTypes: { 200: 'text/plain' },
      },
    },
    async (_request, reply) => reply.type(registry.contentType).send(await registry.metrics()),
  );
};
