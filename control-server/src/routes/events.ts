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
  maxQueuedBytes: number;
}

const RETRY_MS = 2000;
/** The most events in one replay page, and in the first one (the size of events is not known yet). */
const REPLAY_PAGE = 1000;
const FIRST_REPLAY_PAGE = 16;
/** A replay page is sized to about this many bytes, and never more than the client's limit. */
const REPLAY_PAGE_BYTES = 512 * 1024;

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
  200: z
    .string()
    .describe(
      'text/event-stream: `id: <seq>`, `event: status|progress`, `data: <Command JSON>`; ' +
        '`event: reset` with `data: {"oldestEventId": n}` when events after the resume id were pruned from the log',
    ),
  400: ErrorResponse,
  401: ErrorResponse,
  404: ErrorResponse,
};

const STREAM_MEDIA_TYPE = { 200: 'text/event-stream' };

/** Server-Sent Events: every change, or one command's life until it ends. */
export const eventRoutes: FastifyPluginAsyncZod<EventRoutesOptions> = async (app, options) => {
  const { store, hub } = options;
  const replayPageBytes = Math.min(REPLAY_PAGE_BYTES, options.maxQueuedBytes);
  // EventSource cannot send headers, so the token may also come as ?access_token=.
  app.addHook('onRequest', requireBearer(options.apiToken, true));

  app.get(
    '/events',
    {
      sse: SSE_ROUTE,
      schema: {
        summary: 'Stream every change (SSE); resume with Last-Event-ID or ?lastEventId=',
        operationId: 'streamEvents',
        description:
          'Resuming from an id older than the oldest event the log keeps first sends `event: reset` ' +
          '(`data: {"oldestEventId": n}`): events were lost, reload what you show (GET /commands).',
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
        accepts:
          commandId === undefined && status === undefined
            ? undefined
            : (e) => (commandId === undefined || e.command.id === commandId) && (status === undefined || e.command.status === status),
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
        description:
          'Resuming (Last-Event-ID or ?lastEventId=) from an id older than the oldest event the log keeps first ' +
          'sends `event: reset` (`data: {"oldestEventId": n}`), then the current state of the command.',
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
      const lost = after === undefined ? undefined : await prunedAfter(after);
      if (lost === undefined && after !== undefined && isTerminal(current.status) && ((await store.lastEventFor(id))?.seq ?? 0) <= after) {
        // A reconnect after the end. 204 tells EventSource to stop: an empty stream would have
        // browsers reconnect every `retry` ms, forever.
        return reply.code(204).send(null);
      }
      const session = open(reply, { accepts: (e) => e.command.id === id, endAfterTerminal: true });
      // Past a gap, what the log still holds of this command is not its story: send where it is now.
      if (lost !== undefined) session.sendReset(lost);
      else if (after !== undefined) return replayAfter(session, after, { commandId: id });
      const latest = await store.lastEventFor(id);
      if (latest) session.replay([latest]);
      else session.sendUnlogged(current);
      session.goLive();
    },
  );

  /** Starts the stream: the live listener is registered before any backlog is read. */
  function open(reply: FastifyReply, accept: Pick<SessionOptions, 'accepts' | 'endAfterTerminal'>): SseSession {
    reply.sse.keepAlive();
    const session = new SseSession(reply, hub, { ...accept, maxQueued: options.maxQueued, maxQueuedBytes: options.maxQueuedBytes });
    hub.add(session);
    void reply.sse.send({ retry: RETRY_MS, data: undefined });
    return session;
  }

  /**
   * The oldest event kept, when the log was pruned past `afterSeq` (events after it are gone);
   * undefined when nothing after it is missing. An empty log has lost nothing: the newest event
   * is always kept, so it is empty only before the first change. An id beyond the newest is not
   * a gap either: there is nothing after it to have lost.
   */
  async function prunedAfter(afterSeq: number): Promise<number | undefined> {
    const oldest = await store.oldestEventSeq();
    return oldest !== undefined && afterSeq < oldest - 1 ? oldest : undefined;
  }

  async function replayAfter(session: SseSession, afterSeq: number, filter: EventFilter): Promise<void> {
    let events: StoredEvent[];
    let cursor = afterSeq;
    let page = FIRST_REPLAY_PAGE;
    do {
      // Checked before every page: the log may also be pruned while a slow client catches up.
      const lost = await prunedAfter(cursor);
      if (lost !== undefined) session.sendReset(lost);
      events = await store.eventsSince(cursor, page, { commandId: filter.commandId });
      session.replay(events);
      cursor = events.at(-1)?.seq ?? cursor;
      await session.drained();
      if (events.length < page) break;
      page = nextReplayPage(events, replayPageBytes);
    } while (!session.isClosed);
    session.goLive();
  }
};

/**
 * A replay page holds about `budget` bytes: a page is read into memory whole and written to the
 * socket at once, and events range from 600 bytes to a 256 KiB result.
 */
function nextReplayPage(events: readonly StoredEvent[], budget: number): number {
  const bytes = events.reduce((sum, e) => sum + e.data.length, 0);
  const fits = Math.floor(budget / Math.max(1, bytes / events.length));
  return Math.min(REPLAY_PAGE, Math.max(1, fits));
}

/** `Last-Event-ID` (what EventSource sends on reconnect) wins over `?lastEventId=`. */
function resumePoint(request: FastifyRequest, fromQuery: string | undefined): number | undefined {
  const header = request.headers['last-event-id'];
  const raw = (Array.isArray(header) ? header[0] : header) ?? fromQuery;
  if (raw === undefined || raw === '') return undefined;
  if (!/^\d{1,15}$/.test(raw)) throw new BadRequest('Last-Event-ID: must be an event id (a non-negative integer)');
  return Number(raw);
}
