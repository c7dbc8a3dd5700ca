import {
  BatchSubmitBody,
  BatchSubmitResponse,
  Command,
  CommandIdParams,
  ErrorResponse,
  ListQuery,
  MAX_IDEMPOTENCY_KEY_LENGTH,
  SubmitBody,
  SubmittedCommand,
  type WaitingFor,
} from '@agent-executor/common';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { requireBearer } from '../auth.js';
import { NotFound } from '../errors.js';
import { CLIENT_SECURITY, type HeaderDoc } from '../openapi.js';
import type { AgentRegistry } from '../agent-registry.js';
import type { CommandStore } from '../store/store.js';
import { decodeCursor, encodeCursor, nextLink } from './paging.js';

const SubmitHeaders = z.object({
  'idempotency-key': z.string().min(1).max(MAX_IDEMPOTENCY_KEY_LENGTH).optional(),
});

const LOCATION: HeaderDoc = { description: 'The URL of the command', type: 'string' };
const REPLAYED: HeaderDoc = {
  description: '`true` when the Idempotency-Key was seen before: this is the command it created then',
  type: 'string',
};
const NEXT_PAGE: HeaderDoc = {
  description: 'RFC 8288 `<…?cursor=…>; rel="next"` when there is a next page',
  type: 'string',
};

const errors = { 400: ErrorResponse, 401: ErrorResponse, 404: ErrorResponse, 409: ErrorResponse };

/** Client routes: submit, read, cancel, retry. Guarded by API_TOKEN when it is set. */
export const commandRoutes: FastifyPluginAsyncZod<{
  store: CommandStore;
  registry: AgentRegistry;
  apiToken: string | undefined;
}> = async (app, { store, registry, apiToken }) => {
  app.addHook('onRequest', requireBearer(apiToken));

  app.post(
    '/commands',
    {
      schema: {
        summary: 'Submit a command; 201 when created, 200 when the Idempotency-Key was seen before',
        operationId: 'submitCommand',
        tags: ['commands'],
        security: CLIENT_SECURITY,
        headers: SubmitHeaders,
        body: SubmitBody,
        response: { 200: SubmittedCommand, 201: SubmittedCommand, 413: ErrorResponse, 415: ErrorResponse, 422: ErrorResponse, ...errors },
        responseHeaders: { 200: { Location: LOCATION, 'Idempotent-Replayed': REPLAYED }, 201: { Location: LOCATION } },
      },
    },
    async (request, reply) => {
      const { command, replayed } = await store.submit(request.body, request.headers['idempotency-key']);
      if (replayed) void reply.code(200).header('Idempotent-Replayed', 'true');
      else void reply.code(201);
      return reply.header('Location', `/commands/${command.id}`).send({ commandId: command.id, ...command });
    },
  );

  app.post(
    '/commands/batch',
    {
      schema: {
        summary: 'Submit many commands in one request: all are stored, or none (any invalid one is a 400)',
        operationId: 'submitCommandBatch',
        tags: ['commands'],
        security: CLIENT_SECURITY,
        body: BatchSubmitBody,
        response: { 201: BatchSubmitResponse, 413: ErrorResponse, 415: ErrorResponse, ...errors },
      },
    },
    async (request, reply) => {
      const commands = await store.submitBatch(request.body.commands);
      return reply.code(201).send({ commands: commands.map((command) => ({ commandId: command.id, ...command })) });
    },
  );

  app.get(
    '/commands',
    {
      schema: {
        summary: 'List commands, newest first; the next page is in the Link header',
        operationId: 'listCommands',
        tags: ['commands'],
        security: CLIENT_SECURITY,
        querystring: ListQuery,
        response: { 200: z.array(Command), ...errors },
        responseHeaders: { 200: { Link: NEXT_PAGE } },
      },
    },
    async (request, reply) => {
      const { cursor, ...filter } = request.query;
      const page = await store.list({ ...filter, beforeSeq: cursor === undefined ? undefined : decodeCursor(cursor) });
      if (page.nextBeforeSeq !== undefined) {
        void reply.header('Link', nextLink('/commands', request.query, encodeCursor(page.nextBeforeSeq)));
      }
      return page.commands;
    },
  );

  app.get(
    '/commands/:id',
    {
      schema: {
        summary: 'One command: status and result; a PENDING one says what it is waiting for (waitingFor)',
        operationId: 'getCommand',
        tags: ['commands'],
        security: CLIENT_SECURITY,
        params: CommandIdParams,
        response: { 200: Command, ...errors },
      },
    },
    async (request) => {
      const command = await store.get(request.params.id);
      if (!command) throw new NotFound(`command ${request.params.id} not found`);
      if (command.status !== 'PENDING') return command;
      const waitingFor = await waitingForOf(store, registry, command.id);
      return waitingFor ? { ...command, waitingFor } : command;
    },
  );

  app.post(
    '/commands/:id/cancel',
    {
      schema: {
        summary: 'Cancel: a PENDING command fails at once; a RUNNING one is aborted by its agent',
        operationId: 'cancelCommand',
        tags: ['commands'],
        security: CLIENT_SECURITY,
        params: CommandIdParams,
        response: { 200: Command, ...errors },
      },
    },
    async (request) => store.cancel(request.params.id),
  );

  app.post(
    '/commands/:id/retry',
    {
      schema: {
        summary: 'Redrive a FAILED command with a fresh attempt budget',
        operationId: 'retryCommand',
        tags: ['commands'],
        security: CLIENT_SECURITY,
        params: CommandIdParams,
        response: { 200: Command, ...errors },
      },
    },
    async (request) => store.retry(request.params.id),
  );
};

/**
 * Why a PENDING command has not started (SPEC §9): its own state from the store (one row and, for
 * a held command, its key's running count through an index), and the registry's memory of who
 * serves its queue and type. Undefined when it stopped being PENDING meanwhile.
 */
async function waitingForOf(store: CommandStore, registry: AgentRegistry, id: string): Promise<WaitingFor | undefined> {
  const pending = await store.pendingState(id);
  if (!pending) return undefined;
  if (pending.state === 'scheduled') return { reason: 'schedule', until: new Date(pending.until).toISOString() };
  if (pending.state === 'held') return { reason: 'concurrency', running: pending.running, limit: pending.limit };
  return { reason: registry.servers(pending.queue, pending.type) > 0 ? 'capacity' : 'agent' };
}
