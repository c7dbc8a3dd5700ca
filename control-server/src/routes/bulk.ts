import { BulkActionBody, BulkActionResponse, ErrorResponse, StatsResponse } from '@agent-executor/common';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { requireBearer } from '../auth.js';
import { CLIENT_SECURITY } from '../openapi.js';
import type { BulkBatch, BulkFilter, BulkStep, CommandStore } from '../store/store.js';

/**
 * Commands changed per transaction. A retry or cancel is one guarded UPDATE and one logged event
 * (~20 µs), so a batch holds the event loop ~2–3 ms; between batches other requests run.
 */
export const BULK_BATCH = 100;

const errors = { 400: ErrorResponse, 401: ErrorResponse, 415: ErrorResponse };

/** Bulk retry and cancel over a filter, and the counts a dashboard opens with. Guarded by API_TOKEN. */
export const bulkRoutes: FastifyPluginAsyncZod<{ store: CommandStore; apiToken: string | undefined }> = async (
  app,
  { store, apiToken },
) => {
  app.addHook('onRequest', requireBearer(apiToken));

  app.post(
    '/commands/retry-failed',
    {
      schema: {
        summary: 'Retry every FAILED command of a filter ({} for all); answers how many were retried',
        description:
          'Each is retried as `POST /commands/{id}/retry` does it (a fresh attempt budget), in batches of ' +
          `${BULK_BATCH} per transaction. Commands that fail after the call started are not retried by it.`,
        operationId: 'retryFailedCommands',
        tags: ['commands'],
        security: CLIENT_SECURITY,
        body: BulkActionBody,
        response: { 200: BulkActionResponse, ...errors },
      },
    },
    async (request) => ({ count: await inBatches(store, request.body, (filter, batch) => store.retryFailed(filter, batch)) }),
  );

  app.post(
    '/commands/cancel-pending',
    {
      schema: {
        summary: 'Cancel every PENDING command of a filter ({} for all); answers how many were canceled',
        description:
          'Each ends FAILED with error `canceled`, as `POST /commands/{id}/cancel` does for a PENDING command, in ' +
          `batches of ${BULK_BATCH} per transaction. Commands submitted after the call started are left alone.`,
        operationId: 'cancelPendingCommands',
        tags: ['commands'],
        security: CLIENT_SECURITY,
        body: BulkActionBody,
        response: { 200: BulkActionResponse, ...errors },
      },
    },
    async (request) => ({ count: await inBatches(store, request.body, (filter, batch) => store.cancelPending(filter, batch)) }),
  );

  app.get(
    '/stats',
    {
      schema: {
        summary: 'Commands by status, and the newest event id to stream changes from',
        operationId: 'getStats',
        tags: ['commands'],
        security: CLIENT_SECURITY,
        response: { 200: StatsResponse, 401: ErrorResponse },
      },
    },
    async () => {
      // The id first: a change between the two reads is then streamed again, never missed.
      const lastEventId = await store.lastEventSeq();
      return { counts: await store.countByStatus(), lastEventId };
    },
  );
};

/**
 * Walks the commands that existed when the call started, oldest first, one batch per
 * transaction, yielding to the event loop between batches.
 */
async function inBatches(
  store: CommandStore,
  body: BulkActionBody,
  step: (filter: BulkFilter, batch: BulkBatch) => Promise<BulkStep>,
): Promise<number> {
  const filter: BulkFilter = {
    type: body.type,
    queue: body.queue,
    agentId: body.agentId,
    createdBefore: body.createdBefore === undefined ? undefined : Date.parse(body.createdBefore),
  };
  const upToSeq = await store.lastCommandSeq();
  let afterSeq = 0;
  let count = 0;
  for (;;) {
    const { changed, lastSeq } = await step(filter, { afterSeq, upToSeq, max: BULK_BATCH });
    count += changed;
    if (lastSeq === undefined) return count;
    afterSeq = lastSeq;
    await yieldToEventLoop();
  }
}
