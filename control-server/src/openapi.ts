import { STATUS_CODES } from 'node:http';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import { jsonSchemaTransform, jsonSchemaTransformObject } from 'fastify-type-provider-zod';

/** A response header: the JSON schema of its value (@fastify/swagger moves `description` up). */
export interface HeaderDoc {
  type: 'string';
  description: string;
}

declare module 'fastify' {
  interface FastifySchema {
    /** OpenAPI only: the headers a response may carry, by status. */
    responseHeaders?: Readonly<Record<number, Readonly<Record<string, HeaderDoc>>>>;
    /** OpenAPI only: the media type of a response that is not JSON, by status. */
    responseMediaTypes?: Readonly<Record<number, string>>;
  }
}

/** Route `security` values: which token a route takes (each is only demanded when it is set). */
type Security = ReadonlyArray<Readonly<Record<string, readonly string[]>>>;
export const CLIENT_SECURITY: Security = [{ clientToken: [] }];
export const AGENT_SECURITY: Security = [{ agentToken: [] }];
export const METRICS_SECURITY: Security = [{ metricsToken: [] }, { clientToken: [] }];
export const NO_SECURITY: Security = [];

const REQUEST_ID_HEADER: HeaderDoc = {
  description: 'The id of this request in the server log: the one the client sent, if sane, or a new UUID',
  type: 'string',
};

/**
 * The OpenAPI document at `/openapi.json` and the UI at `/docs`, built from the routes' zod
 * schemas. Schemas of common/ that carry an id (`.meta({ id })`) become named components, so a
 * generated client has a `Command` type rather than one anonymous object per route.
 */
export async function registerOpenApi(app: FastifyInstance): Promise<void> {
  await app.register(swagger, {
    openapi: {
      // 3.1: JSON Schema 2020-12, where "any JSON value or null" (a command's result) has a type.
      openapi: '3.1.0',
      info: {
        title: 'agent-executor control server',
        version: '0.1.0',
        license: { name: 'MIT', identifier: 'MIT' },
      },
      // Relative: the server that serves this document; a generated client is given its base URL.
      servers: [{ url: '/', description: 'the server that serves this document' }],
      components: {
        securitySchemes: {
          clientToken: {
            type: 'http',
            scheme: 'bearer',
            description: 'API_TOKEN: client routes (submit, read, cancel, retry, events). Only demanded when it is set.',
          },
          agentToken: {
            type: 'http',
            scheme: 'bearer',
            description: 'AGENT_TOKEN: agent routes (poll, report, heartbeat). Only demanded when it is set.',
          },
          metricsToken: {
            type: 'http',
            scheme: 'bearer',
            description: 'METRICS_TOKEN: /metrics only, for a Prometheus scraper (API_TOKEN is taken too).',
          },
        },
      },
    },
    transform: documentRoute,
    transformObject: (input) => {
      const document = jsonSchemaTransformObject(input) as { components?: { schemas?: Record<string, unknown> } };
      const schemas = document.components?.schemas;
      if (schemas) document.components!.schemas = usedSchemas(document, schemas);
      return document as ReturnType<typeof jsonSchemaTransformObject>;
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
}

type TransformInput = Parameters<typeof jsonSchemaTransform>[0];
type ResponseDoc = Record<string, unknown> & { headers?: Record<string, unknown> };

/**
 * The zod transform, plus what a zod schema cannot say about a response: its headers and a
 * media type other than JSON. Every response documents `X-Request-Id`.
 */
function documentRoute(input: TransformInput): ReturnType<typeof jsonSchemaTransform> {
  if (!input.schema) return jsonSchemaTransform(input);
  const { responseHeaders, responseMediaTypes, ...schema } = input.schema;
  const output = jsonSchemaTransform({ ...input, schema } as TransformInput);
  const responses = (output.schema as { response?: Record<string, ResponseDoc> } | undefined)?.response;
  if (!responses) return output;
  for (const [status, doc] of Object.entries(responses)) {
    const headers = { 'X-Request-Id': REQUEST_ID_HEADER, ...responseHeaders?.[Number(status)] };
    // Without one, @fastify/swagger writes "Default Response" for every error.
    const description = (doc.description as string | undefined) ?? STATUS_CODES[status] ?? status;
    const mediaType = responseMediaTypes?.[Number(status)];
    if (mediaType === undefined) {
      responses[status] = { ...doc, description, headers };
      continue;
    }
    // @fastify/swagger takes a `content` map as it is (so the media type is ours, not
    // application/json), without cleaning the schema: the standalone-schema keys go here.
    const { description: _description, $id: _id, $schema: _schema, ...body } = doc;
    responses[status] = { description, headers, content: { [mediaType]: { schema: body } } };
  }
  return output;
}

/**
 * The named schemas the document refers to. The zod transform emits an input and an output form
 * of every named schema; the forms no route uses would only be noise in a generated client.
 */
function usedSchemas(document: object, schemas: Record<string, unknown>): Record<string, unknown> {
  const refs = (value: unknown) => [...JSON.stringify(value).matchAll(/"#\/components\/schemas\/([^"]+)"/g)].map((m) => m[1]!);
  const { components: _components, ...rest } = document as Record<string, unknown>;
  const pending = refs(rest);
  const used: Record<string, unknown> = {};
  for (let name = pending.pop(); name !== undefined; name = pending.pop()) {
    if (name in used || !(name in schemas)) continue;
    // `$id`/`$schema` of a standalone JSON Schema mean nothing inside an OpenAPI document.
    const { $id: _id, $schema: _schema, ...schema } = schemas[name] as Record<string, unknown>;
    used[name] = schema;
    pending.push(...refs(schema));
  }
  return Object.fromEntries(Object.keys(used).sort().map((name) => [name, used[name]]));
}
