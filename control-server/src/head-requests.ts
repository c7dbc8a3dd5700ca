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
 * cheap existence check. On a GET marked `config: { changesState: true }` it is refused with
 * 405 and `Allow: GET` before anything is validated or run; authentication still comes first.
 */
export function refuseHeadWhereGetChangesState(app: FastifyInstance): void {
  app.addHook('onRoute', (route) => {
    if (route.method !== 'HEAD' || route.config?.changesState !== true) return;
    route.schema = { hide: true };
    route.handler = async (_request, reply) => reply.code(405).header('Allow', 'GET').send();
  });
}
