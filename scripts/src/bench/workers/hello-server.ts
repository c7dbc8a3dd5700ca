/**
 * The baseline of the submit scenario: a bare Fastify app with one POST route that parses the
 * JSON body and answers 201 with a small JSON object. No validation, no storage, no logging.
 *
 * node hello-server.js --port P
 */
import { parseArgs } from 'node:util';
import Fastify from 'fastify';
import { toBench, workerFailed } from '../harness/workers.js';

const { values } = parseArgs({ options: { port: { type: 'string' } } });
const app = Fastify({ logger: false });
app.post('/hello', async (_request, reply) => reply.code(201).send({ hello: 'world' }));
process.once('SIGTERM', () => void app.close().then(() => process.exit(0)));
app
  .listen({ port: Number(values.port), host: '127.0.0.1' })
  .then(() => toBench({ type: 'ready' }))
  .catch(workerFailed);
