import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Registry } from 'prom-client';
import { z } from 'zod';
import { requireBearer } from '../auth.js';

export const metricsRoutes: FastifyPluginAsyncZod<{ registry: Registry; apiToken: string | undefined }> = async (
  app,
  { registry, apiToken },
) => {
  app.addHook('onRequest', requireBearer(apiToken));
  app.get(
    '/metrics',
    {
      schema: {
        summary: 'Prometheus metrics (text exposition format)',
        tags: ['operations'],
        response: { 200: z.string() },
      },
    },
    async (_request, reply) => reply.type(registry.contentType).send(await registry.metrics()),
  );
};
