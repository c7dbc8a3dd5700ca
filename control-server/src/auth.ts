import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest, onRequestHookHandler } from 'fastify';

const digest = (value: string) => createHash('sha256').update(value).digest();

/**
 * An onRequest hook that demands `Authorization: Bearer <token>` when a token is configured.
 * Given several (`/metrics` takes METRICS_TOKEN or API_TOKEN), any configured one will do, and
 * none is demanded when none is configured.
 * Digests of equal length are compared in constant time, so timing reveals nothing of the token.
 * `allowQueryToken` also accepts `?access_token=`, for browsers' EventSource, which sends no headers.
 */
export function requireBearer(
  tokens: string | undefined | ReadonlyArray<string | undefined>,
  allowQueryToken = false,
): onRequestHookHandler {
  const configured = (Array.isArray(tokens) ? tokens : [tokens]).filter((t): t is string => t !== undefined);
  if (configured.length === 0) return (_request, _reply, done) => done();
  const expected = configured.map(digest);
  return (request: FastifyRequest, reply: FastifyReply, done) => {
    const presented = bearerOf(request) ?? (allowQueryToken ? queryTokenOf(request) : undefined);
    // Every configured token is compared, so timing does not tell which one matched.
    const matches = presented === undefined ? [] : expected.map((e) => timingSafeEqual(digest(presented), e));
    if (matches.includes(true)) return done();
    void reply
      .code(401)
      .header('WWW-Authenticate', 'Bearer')
      .send({ statusCode: 401, error: 'Unauthorized', message: 'missing or wrong bearer token' });
  };
}

function bearerOf(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  const match = header === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match?.[1];
}

function queryTokenOf(request: FastifyRequest): string | undefined {
  const query = request.query as Record<string, unknown> | undefined;
  const token = query?.['access_token'];
  return typeof token === 'string' ? token : undefined;
}
