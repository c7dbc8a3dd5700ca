/**
 * Every default of the agent's configuration, pinned: `toStrictEqual` on the whole object (plain
 * `toEqual` skips keys whose value is undefined), so a changed default or a new setting without
 * one here fails.
 */
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';

describe('agent configuration defaults', () => {
  it('an empty environment gives exactly the documented defaults', () => {
    expect(loadConfig({})).toStrictEqual({
      serverUrls: ['http://localhost:3000'],
      queues: ['default'],
      pollIntervalMs: 2000,
      longPollWaitS: 25,
      agentId: undefined,
      concurrency: 1,
      dbPath: fileURLToPath(new URL('../data/idempotency.db', import.meta.url)),
      agentToken: undefined,
      blockPrivate: true,
      httpAllow: [],
      logLevel: 'info',
      drainMs: 10_000,
      crashAt: undefined,
      metricsPort: undefined,
    });
  });

  it('each default is only a default: a set value replaces it', () => {
    const set = loadConfig({
      SERVER_URL: 'http://server.example:8080/', POLL_INTERVAL: '500', LONG_POLL_WAIT: '0', AGENT_ID: 'agent-9',
      CONCURRENCY: '8', IDEMPOTENCY_DB_PATH: '/tmp/i.db', AGENT_TOKEN: 't', HTTP_BLOCK_PRIVATE: 'false',
      LOG_LEVEL: 'debug', DRAIN_MS: '0', METRICS_PORT: '9100', AGENT_QUEUES: 'gpu,default',
    });
    expect(set).toMatchObject({
      serverUrls: ['http://server.example:8080'], queues: ['gpu', 'default'], pollIntervalMs: 500, longPollWaitS: 0, agentId: 'agent-9',
      concurrency: 8, dbPath: '/tmp/i.db', agentToken: 't', blockPrivate: false, logLevel: 'debug', drainMs: 0,
      metricsPort: 9100,
    });
  });
});
