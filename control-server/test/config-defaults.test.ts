/**
 * Every default of the server's configuration, pinned: `toStrictEqual` on the whole object, so a
 * changed default or a new setting without one here fails (and README/operations.md get checked).
 */
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';

describe('server configuration defaults', () => {
  it('an empty environment gives exactly the documented defaults', () => {
    expect(loadConfig({})).toStrictEqual({
      port: 3000,
      host: '0.0.0.0',
      // Resolved from the package, not the working directory.
      dbPath: fileURLToPath(new URL('../data/commands.db', import.meta.url)),
      sqliteSynchronous: 'FULL',
      leaseMs: 30_000,
      apiToken: undefined,
      agentToken: undefined,
      metricsToken: undefined,
      logLevel: 'info',
      corsOrigin: '*',
      ssePingMs: 15_000,
      sseMaxQueued: 10_000,
      sseMaxQueuedBytes: 4 * 1024 * 1024,
      databaseUrl: undefined,
      pgPoolSize: 10,
      requestTimeoutMs: 30_000,
      retentionMs: 7 * 24 * 3_600_000,
    });
  });

  it('each default is only a default: a set value replaces it', () => {
    const set = loadConfig({
      PORT: '8080', HOST: '127.0.0.1', DB_PATH: '/tmp/x.db', SQLITE_SYNCHRONOUS: 'NORMAL', LEASE_MS: '5000',
      API_TOKEN: 'a'.repeat(16), AGENT_TOKEN: 'b'.repeat(16), METRICS_TOKEN: 'c'.repeat(16), LOG_LEVEL: 'warn',
      CORS_ORIGIN: 'http://a.example, http://b.example', SSE_PING_MS: '1000', SSE_MAX_QUEUED: '5',
      SSE_MAX_QUEUED_BYTES: String(2 * 1024 * 1024), REQUEST_TIMEOUT_MS: '1000', RETENTION: '90m', PG_POOL_SIZE: '4',
    });
    expect(set).toStrictEqual({
      port: 8080, host: '127.0.0.1', dbPath: '/tmp/x.db', sqliteSynchronous: 'NORMAL', leaseMs: 5000,
      apiToken: 'a'.repeat(16), agentToken: 'b'.repeat(16), metricsToken: 'c'.repeat(16), logLevel: 'warn',
      corsOrigin: ['http://a.example', 'http://b.example'], ssePingMs: 1000, sseMaxQueued: 5,
      sseMaxQueuedBytes: 2 * 1024 * 1024, databaseUrl: undefined, pgPoolSize: 4, requestTimeoutMs: 1000, retentionMs: 90 * 60_000,
    });
    expect(loadConfig({ RETENTION: '0' }).retentionMs).toBe(0);
  });
});
