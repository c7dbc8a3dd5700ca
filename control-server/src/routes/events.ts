import { CommandIdParams, CommandStatus, ErrorResponse, isTerminal } from '@agent-executor/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { requireBearer } from '../auth.js';
import { BadRequest, NotFound } from '../errors.js';
import { CLIENT_SECURITY } from '../openapi.js';
import type { SseHub } from '../sse/hub.js';
import { SseSession, type SessionOptions } from '../sse/session.js';
import type { CommandStore, EventFilter, StoredEvent } from '../store/store.js';

export interface EventRoutesOptions {
  store: CommandStore;
  hub: SseHub;
  apiToken: string | undefined;
  maxQueued: number;
}

const RETRY_MS = 2000;
const REPLAY_PAGE = 1000;

const EventsQuery = z.strictObject({
  commandId: z.string().min(1).max(64).optional(),
  status: CommandStatus.optional(),
  lastEventId: z.string().optional(),
  access_token: z.string().optional(),
});
const CommandEventsQuery = EventsQuery.pick({ lastEventId: true, access_token: true });

/** Our own pings, not the plugin's heartbeat; data is serialised once per event, not per client. */
const SSE_ROUTE = { kind: 'manual', heartbeat: false, serializer: (data: string) => data } as const;

const streamResponse = {
  200: z.string().describe('text/event-stream: `id: <seq>`, `event: status|progress`, `data: <Command JSON>`'),
  400: ErrorResponse,
  401: ErrorResponse,
  404: ErrorResponse,
};

const STREAM_MEDIA_TYPE = { 200: 'text/event-stream' };

/** Server-Sent Events: every change, or one command's life until it ends. */
export const eventRoutes: FastifyPluginAsyncZod<EventRoutesOptions> = async (app, options) => {
  const { store, hub } = options;
  // EventSource cannot send headers, so the token may also come as ?access_token=.
  app.addHook('onRequest', requireBearer(options.apiToken, true));

  app.get(
    '/events',
    {
      sse: SSE_ROUTE,
      schema: {
        summary: 'Stream every change (SSE); resume with Last-Event-ID or ?lastEventId=',
        operationId: 'streamEvents',
        tags: ['events'],
        security: CLIENT_SECURITY,
        querystring: EventsQuery,
        response: streamResponse,
        responseMediaTypes: STREAM_MEDIA_TYPE,
      },
    },
    async (request, reply) => {
      const { commandId, status } = request.query;
      const after = resumePoint(request, request.query.lastEventId);
      const filter: EventFilter = { commandId, status };
      const session = open(reply, {
        accepts: (e) => (commandId === undefined || e.command.id === commandId) && (status === undefined || e.command.status === status),
        endAfterTerminal: false,
      });
      if (after !== undefined) await replayAfter(session, after, filter);
      else session.goLive();
    },
  );

  app.get(
    '/commands/:id/events',
    {
      sse: SSE_ROUTE,
      schema: {
        summary: "Stream one command (SSE): its current state, then each change; ends after it finishes",
        operationId: 'streamCommandEvents',
        tags: ['events'],
        security: CLIENT_SECURITY,
        params: CommandIdParams,
        querystring: CommandEventsQuery,
        response: { ...streamResponse, 204: z.null().describe('the client has already seen this command end') },
        responseMediaTypes: STREAM_MEDIA_TYPE,
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      const after = resumePoint(request, request.query.lastEventId);
      const current = await store.get(id);
      if (!current) throw new NotFound(`command ${id} not found`);
      if (after !== undefined && isTerminal(current.status) && ((await store.lastEventFor(id))?.seq ?? 0) <= after) {
        // A reconnect after the end. 204 tells EventSource to stop: an empty stream would have
        // browsers reconnect every `retry` ms, forever.
        return reply.code(204).send(null);
      }
      const session = open(reply, { accepts: (e) => e.command.id === id, endAfterTerminal: true });
      if (after !== undefined) return replayAfter(session, after, { commandId: id });
      const latest = await store.lastEventFor(id);
      if (latest) session.replay(latest);
      else session.sendUnlogged(current);
      session.goLive();
    },
  );

  /** Starts the stream: the live listener is registered before any backlog is read. */
  function open(reply: FastifyReply, accept: Omit<SessionOptions, 'maxQueued'>): SseSession {
    reply.sse.keepAlive();
    const session = new SseSession(reply, { ...accept, maxQueued: options.maxQueued });
    hub.add(session);
    void reply.sse.send({ retry: RETRY_MS, data: undefined });
    return session;
  }

  async function replayAfter(session: SseSession, afterSeq: number, filter: EventFilter): Promise<void> {
    let events: StoredEvent[];
    let cursor = afterSeq;
    // A page never overflows the client's queue; the next is read once the socket has taken it.
    const page = Math.min(REPLAY_PAGE, options.maxQueued);
    do {
      events = await store.eventsSince(cursor, page, { commandId: filter.commandId });
      for (const event of events) session.replay(event);
      cursor = events.at(-1)?.seq ?? cursor;
      await session.drained();
    } while (events.length === page && !session.isClosed);
    session.goLive();
  }
};

/** `Last-Event-ID` (what EventSource sends on reconnect) wins over `?lastEventId=`. */
function resumePoint(request: FastifyRequest, fromQuery: string | undefined): number | undefined {
  const header = request.headers['last-event-id'];
  const raw = (Array.isArray(header) ? header[0] : header) ?? fromQuery;
  if (raw === undefined || raw === '') return undefined;
  if (!/^\d{1,15}$/.test(raw)) throw new BadRequest('Last-Event-ID: must be an event id (a non-negative integer)');
  return Number(raw);
}
