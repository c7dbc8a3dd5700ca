import type { FastifyError, FastifyInstance } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { STATUS_CODES } from 'node:http';
import { HttpError, ServiceUnavailable } from './errors.js';

/** The one place that turns errors into `{ statusCode, error, message, issues? }`. */
export function installErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (hasZodFastifySchemaValidationErrors(error)) {
      const issues = error.validation.map((v) => ({
        path: v.instancePath.replace(/^\//, '').replaceAll('/', '.'),
        message: v.message ?? 'invalid',
      }));
      const where = error.validationContext === 'body' ? '' : `${error.validationContext} `;
      // A missing or non-object body reads "body: …", not "(root): …".
      const root = error.validationContext === 'body' ? 'body' : '(root)';
      const message = issues.map((i) => `${where}${i.path || root}: ${i.message}`).join('; ');
      return reply.code(400).send({ statusCode: 400, error: 'Bad Request', message, issues });
    }
    if (error instanceof ServiceUnavailable) {
      // An operating condition (a full disk), not a bug: say what it is and when to come back.
      request.log.warn({ err: error }, 'request refused: service unavailable');
      return reply
        .code(503)
        .header('retry-after', String(error.retryAfterSeconds))
        .send({ statusCode: 503, error: 'Service Unavailable', message: error.message });
    }
    const statusCode = error instanceof HttpError ? error.statusCode : (error.statusCode ?? 500);
    if (statusCode >= 500) {
      request.log.error({ err: error }, 'request failed');
      return reply.code(statusCode).send({
        statusCode,
        error: STATUS_CODES[statusCode] ?? 'Error',
        message: 'internal error; see the server log',
      });
    }
    return reply.code(statusCode).send({
      statusCode,
      error: STATUS_CODES[statusCode] ?? 'Error',
      message: error.message,
    });
  });

  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send({
      statusCode: 404,
      error: 'Not Found',
      message: `no route for ${request.method} ${request.url.split('?')[0]}`,
    }),
  );
}
