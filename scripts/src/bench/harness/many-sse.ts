/**
 * Thousands of SSE clients in one process: raw node:http streams, no parsing beyond spotting the
 * start of a status event. Connections are opened a few hundred at a time (the server's accept
 * backlog is finite) and spread over several loopback source addresses (127.0.0.2…), so repeated
 * runs do not run out of ephemeral ports while old ones sit in TIME_WAIT.
 */
import { request, type ClientRequest } from 'node:http';

export interface SseClient {
  req: ClientRequest;
  /** Called with the arrival time of each chunk holding the start of a status event. */
  onStatus?: (at: number) => void;
  closed: boolean;
}

export const SOURCE_ADDRESSES = Array.from({ length: 8 }, (_, i) => `127.0.0.${i + 2}`);

const MARK = 'event: status';

export function openSseClient(url: string, index: number): Promise<SseClient> {
  return new Promise((resolve, reject) => {
    let tail = '';
    const client: SseClient = {
      closed: false,
      req: request(
        url,
        { agent: false, headers: { accept: 'text/event-stream' }, localAddress: SOURCE_ADDRESSES[index % SOURCE_ADDRESSES.length] },
        (res) => {
          if (res.statusCode !== 200) {
            res.resume();
            reject(new Error(`SSE answered ${res.statusCode}`));
            return;
          }
          res.setEncoding('latin1');
          res.on('data', (chunk: string) => {
            const at = performance.timeOrigin + performance.now();
            const text = tail + chunk;
            tail = chunk.slice(-MARK.length);
            if (client.onStatus && text.includes(MARK)) client.onStatus(at);
          });
          res.on('close', () => (client.closed = true));
          res.on('error', () => undefined);
          resolve(client);
        },
      ),
    };
    client.req.on('error', (err) => {
      client.closed = true;
      reject(err);
    });
    client.req.end();
  });
}

/** Opens `n` clients, `concurrency` connection attempts at a time. */
export async function openSseClients(url: string, n: number, concurrency = 200): Promise<SseClient[]> {
  const clients: SseClient[] = new Array(n);
  let next = 0;
  const opener = async () => {
    for (let i = next++; i < n; i = next++) clients[i] = await openSseClient(url, i);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, opener));
  return clients;
}
