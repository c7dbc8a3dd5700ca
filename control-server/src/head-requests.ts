import type { FastifyInstance } from 'fastify';

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * This GET changes state (it leases commands): the HEAD route Fastify adds to every GET would
     * run it and throw the answer away, so HEAD answers 405 instead.
     */
    changesState?: boolean;
  }
}

/**
 * HEAD stays available on the GETs that only read (/health, /commands/:id, …), where it is a
 * cheap existence check. It is refused with 405 and `Allow: GET`, before anything is validated
 * or run (authentication still comes first), on a GET marked `config: { changesState: true }`
 * and on an SSE stream (`sse` route option), where HEAD held a connection open that never
 * answered. Install before the routes and before @fastify/sse, whose own onRoute hook then
 * sees no `sse` on the HEAD route.
 */
export function refuseHeadWhereGetChangesState(app: FastifyInstance): void {
  app.addHook('onRoute', (route) => {
    if (route.method !== 'HEAD') return;
    const stream = 'sse' in route && route.sse !== undefined && route.sse !== false;
    if (route.config?.changesState !== true && !stream) return;
    if (stream) delete (route as { sse?: unknown }).sse;
    route.schema = { hide: true };
    route.handler = async (_request, reply) => reply.code(405).header('Allow', 'GET').send();
  });
}
