import type { Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';

/**
 * On close, Node ends idle keep-alive connections but not one that has never carried a request
 * (a client's pre-connect: undici opens one after an aborted request, browsers open them
 * speculatively), and `server.close()` then waits until the client drops it: 4 s for undici,
 * minutes for a browser, past main.ts's 10 s limit. So, just before the server closes, end
 * every connection with no request in progress. Requests in progress still finish.
 */
export function endQuietConnectionsOnClose(app: FastifyInstance): void {
  const inFlight = new Map<Socket, number>();
  app.server.on('connection', (socket: Socket) => {
    inFlight.set(socket, 0);
    socket.once('close', () => inFlight.delete(socket));
  });
  app.server.on('request', (request: { socket: Socket }, response: { once: (e: 'close', f: () => void) => void }) => {
    const { socket } = request;
    inFlight.set(socket, (inFlight.get(socket) ?? 0) + 1);
    response.once('close', () => {
      if (inFlight.has(socket)) inFlight.set(socket, (inFlight.get(socket) ?? 1) - 1);
    });
  });
  app.addHook('preClose', async () => {
    for (const [socket, requests] of inFlight) if (requests === 0) socket.destroy();
  });
}
