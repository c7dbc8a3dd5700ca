import type { IncomingMessage, ServerOptions, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';

/**
 * How long, after answering a request whose body is still arriving, the server keeps reading
 * (and discarding) before it closes. Closing a socket with unread input makes the kernel send a
 * reset, and a reset that reaches the client before it has read the answer destroys the answer:
 * a 2 MiB submit from Node's fetch got ECONNRESET instead of its 413 in about 1 of 6 tries.
 */
const LINGER_MS = 5_000;
/** …and at most this much of it: past that the client is not a mistaken one, and gets the reset. */
const LINGER_MAX_BYTES = 8 * 1024 * 1024;

/**
 * Fastify options that bound the time a request may take to arrive. Node measures it from the
 * first byte to the end of the body and answers 408 and closes when it is exceeded; a request
 * that has fully arrived is no longer timed, so a long-poll or an SSE stream may last as long as
 * it likes. Node checks every `connectionsCheckingInterval`, so a stalled upload is closed
 * within the timeout plus at most one second.
 */
export function requestTimeoutOptions(requestTimeoutMs: number): { requestTimeout: number; http: ServerOptions } {
  return {
    requestTimeout: requestTimeoutMs,
    http: {
      requestTimeout: requestTimeoutMs,
      // Node refuses a headers timeout longer than the request timeout; its default is 60 s.
      headersTimeout: Math.min(requestTimeoutMs, 60_000),
      connectionsCheckingInterval: Math.min(1_000, Math.max(50, Math.round(requestTimeoutMs / 10))),
    },
  };
}

/**
 * The answers given before a body has arrived (401, 413, 404 of a POST) close the connection,
 * but only once the client has had the answer: the rest of the body is read and thrown away
 * until it ends, the client closes, LINGER_MS pass or LINGER_MAX_BYTES have come. And
 * `Expect: 100-continue` is honoured: a body over `bodyLimit` gets its 413 before it is sent,
 * and the client is told to send the body only once the route's onRequest hooks
 * (authentication) have let the request through.
 */
export function installBodyLimits(app: FastifyInstance, bodyLimit: number): void {
  app.server.on('checkContinue', (request: IncomingMessage, response: ServerResponse) => {
    if (Number(request.headers['content-length']) > bodyLimit) {
      const body = JSON.stringify({
        statusCode: 413,
        error: 'Payload Too Large',
        message: `the body is over the limit of ${bodyLimit} bytes`,
      });
      lingerBeforeClose(request);
      response.writeHead(413, {
        'content-type': 'application/json; charset=utf-8',
        connection: 'close',
        // Given here, Node does not start its date cache's timer from this code (the tests
        // count the timers server code leaves behind).
        date: new Date().toUTCString(),
      });
      response.end(body);
      return;
    }
    // Node writes no "100 Continue" when this event has a listener: the preParsing hook does.
    app.server.emit('request', request, response);
  });

  // preParsing runs after every onRequest hook and before the body is read.
  app.addHook('preParsing', (request, reply, payload, done) => {
    if (/^100-continue$/i.test(request.headers.expect ?? '') && hasBody(request.raw)) reply.raw.writeContinue();
    done(null, payload);
  });

  app.addHook('onSend', (request, reply, payload, done) => {
    if (!request.raw.complete) {
      void reply.header('connection', 'close');
      lingerBeforeClose(request.raw);
    }
    done(null, payload);
  });
}

function hasBody(request: IncomingMessage): boolean {
  return Number(request.headers['content-length'] ?? 0) > 0 || request.headers['transfer-encoding'] !== undefined;
}

type ClosingSocket = Socket & { destroySoon(): void };

/**
 * Node ends an answer marked `Connection: close` with socket.destroySoon(): end, then destroy as
 * soon as the answer is written, whatever the client is still sending. This replaces it, for
 * this socket, with end-then-drain: Node's HTTP parser keeps reading the rest of the body into
 * the dumped request, and the socket is destroyed once that has ended (nothing left unread, so
 * no reset), the client has closed its side, LINGER_MS have passed or LINGER_MAX_BYTES have come.
 */
function lingerBeforeClose(request: IncomingMessage): void {
  const socket = request.socket as ClosingSocket;
  socket.destroySoon = () => {
    if (socket.destroyed) return;
    socket.end();
    const timer = setTimeout(() => socket.destroy(), LINGER_MS);
    // Node's parser drops a dumped body without events, and a 'data' listener on the socket takes
    // it from the parser and stalled its reading (tried): watch the socket's byte count instead.
    const readBefore = socket.bytesRead;
    const watch = setInterval(() => {
      if (socket.bytesRead - readBefore > LINGER_MAX_BYTES) socket.destroy();
    }, 50);
    socket.once('close', () => {
      clearTimeout(timer);
      clearInterval(watch);
    });
    const written = new Promise<void>((resolve) => (socket.writableFinished ? resolve() : socket.once('finish', resolve)));
    const drained = new Promise<void>((resolve) => {
      if (request.complete) return resolve();
      request.once('end', resolve);
      socket.once('end', resolve);
    });
    void Promise.all([written, drained]).then(() => socket.destroy());
  };
}
