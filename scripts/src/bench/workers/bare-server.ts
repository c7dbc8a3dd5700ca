/**
 * The floor of the latency scenario on PostgreSQL: a bare replica that makes the hops a dispatch
 * across replicas cannot skip, and nothing else. node:http, node-postgres, one table; no
 * framework, validation, event log, SSE, metrics or logging.
 *
 * - `POST /commands` stores `{ payload }` and NOTIFYs in one autocommitted statement (durable:
 *   the database's synchronous_commit, as the control server's), then answers 201 `{ id }`.
 * - `GET /next?agent=A&wait=W` leases the oldest PENDING job in one autocommitted statement
 *   (`FOR UPDATE SKIP LOCKED`); with none, the poll waits until a notification (from any replica)
 *   or W seconds, then answers 200 with the job or 204.
 * - `PUT /jobs/:id/done` marks the job COMPLETED and tells the bench (IPC `done`).
 *
 * node bare-server.js --port P --database URL (its table: BARE_SCHEMA in harness/bare-dispatch.ts)
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { toBench, workerFailed } from '../harness/workers.js';

const CHANNEL = 'bare_jobs';

const SUBMIT = {
  name: 'bare_submit',
  text: `WITH job AS (INSERT INTO bare_jobs (payload) VALUES ($1) RETURNING id)
         SELECT id, pg_notify('${CHANNEL}', id::text) FROM job`,
};
const CLAIM = {
  name: 'bare_claim',
  text: `UPDATE bare_jobs SET status = 'RUNNING', agent_id = $1
         WHERE id = (SELECT id FROM bare_jobs WHERE status = 'PENDING' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
         RETURNING id, payload`,
};
const DONE = { name: 'bare_done', text: `UPDATE bare_jobs SET status = 'COMPLETED' WHERE id = $1 AND status = 'RUNNING'` };

interface Poll {
  agent: string;
  res: ServerResponse;
  timer: NodeJS.Timeout;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { port: { type: 'string' }, database: { type: 'string' } } });
  const pool = new pg.Pool({ connectionString: values.database, max: 4 });
  const listener = new pg.Client({ connectionString: values.database });
  await listener.connect();
  await listener.query(`LISTEN ${CHANNEL}`);
  const waiting: Poll[] = [];

  const claim = async (agent: string) => (await pool.query<{ id: string; payload: string }>({ ...CLAIM, values: [agent] })).rows[0];
  const answer = (res: ServerResponse, job: { id: string; payload: string } | undefined) => {
    if (!job) return void res.writeHead(204).end();
    const body = `{"id":"${job.id}","payload":${job.payload}}`;
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
  };
  /** A notification came while no poll waited: the next one to park claims again first. */
  let missed = false;
  // One waiting poll per notification: it claims, and waits again if another replica was faster.
  listener.on('notification', () => {
    const poll = waiting.shift();
    if (!poll) {
      missed = true;
      return;
    }
    claim(poll.agent).then((job) => {
      if (job) {
        clearTimeout(poll.timer);
        answer(poll.res, job);
      } else waiting.unshift(poll);
    }, workerFailed);
  });

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://bare');
    if (req.method === 'POST' && url.pathname === '/commands') {
      void body(req).then(async (text) => {
        const { payload } = JSON.parse(text) as { payload: unknown };
        const { rows } = await pool.query<{ id: string }>({ ...SUBMIT, values: [JSON.stringify(payload)] });
        const out = `{"id":"${rows[0]?.id}"}`;
        res.writeHead(201, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(out) }).end(out);
      }).catch(workerFailed);
      return;
    }
    if (req.method === 'GET' && url.pathname === '/next') {
      const agent = url.searchParams.get('agent') ?? 'anonymous';
      const waitMs = Number(url.searchParams.get('wait') ?? 0) * 1000;
      const first = (): Promise<{ id: string; payload: string } | undefined> => {
        missed = false;
        return claim(agent).then((job) => job ?? (missed ? first() : undefined));
      };
      void first().then((job) => {
        if (job || waitMs === 0) return answer(res, job);
        const poll: Poll = {
          agent,
          res,
          timer: setTimeout(() => {
            const at = waiting.indexOf(poll);
            if (at >= 0) waiting.splice(at, 1);
            answer(res, undefined);
          }, waitMs),
        };
        waiting.push(poll);
        res.on('close', () => {
          clearTimeout(poll.timer);
          const at = waiting.indexOf(poll);
          if (at >= 0) waiting.splice(at, 1);
        });
      }).catch(workerFailed);
      return;
    }
    const done = /^\/jobs\/(\d+)\/done$/.exec(url.pathname);
    if (req.method === 'PUT' && done) {
      void body(req).then(async () => {
        await pool.query({ ...DONE, values: [done[1]] });
        res.writeHead(200, { 'content-length': '0' }).end();
        toBench({ type: 'done', id: done[1] });
      }).catch(workerFailed);
      return;
    }
    res.writeHead(404).end();
  });
  server.keepAliveTimeout = 120_000;
  server.requestTimeout = 0;
  process.once('SIGTERM', () => process.exit(0));
  process.on('disconnect', () => process.exit(0));
  server.on('error', workerFailed);
  server.listen(Number(values.port), '127.0.0.1', () => toBench({ type: 'ready' }));
}

function body(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

main().catch(workerFailed);
