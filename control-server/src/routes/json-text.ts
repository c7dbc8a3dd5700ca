import type { FastifyReply } from 'fastify';

/** Fastify's own content type for JSON answers: the bytes on the wire stay the same. */
const JSON_TYPE = 'application/json; charset=utf-8';

/**
 * Sends JSON that already exists as text (the event log's, see store/command-json.ts) as the
 * answer, instead of serialising the objects it was made from again. Typed loosely on purpose:
 * the route's response schema documents the shape, test/response-shapes.test.ts checks it.
 */
export function sendJsonText(reply: FastifyReply, text: string): FastifyReply {
  return reply.type(JSON_TYPE).send(text);
}
