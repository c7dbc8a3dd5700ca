import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { killAll, startAgent, tempDir } from '../../test-support/processes.js';
import { ConfigError, loadConfig } from '../src/config.js';

afterEach(async () => {
  await killAll();
});

describe('agent configuration', () => {
  it('has the documented defaults; the database path is resolved from the package, not the cwd', () => {
    expect(loadConfig({})).toEqual({
      serverUrls: ['http://localhost:3000'],
      pollIntervalMs: 2000,
      longPollWaitS: 25,
      agentId: undefined,
      concurrency: 1,
      queues: ['default'],
      dbPath: fileURLToPath(new URL('../data/idempotency.db', import.meta.url)),
      agentToken: undefined,
      blockPrivate: true,
      httpAllow: [],
      logLevel: 'info',
      drainMs: 10_000,
      crashAt: undefined,
    });
  });

  it('treats an empty variable as unset', () => {
    const config = loadConfig({ POLL_INTERVAL: '', LONG_POLL_WAIT: '', AGENT_ID: '', HTTP_BLOCK_PRIVATE: '', HTTP_ALLOW: '', AGENT_TOKEN: '' });
    expect(config).toMatchObject({ pollIntervalMs: 2000, longPollWaitS: 25, agentId: undefined, blockPrivate: true, agentToken: undefined });
  });

  it('reads every variable', () => {
    const config = loadConfig({
      SERVER_URL: 'https://queue.example:8443/',
      POLL_INTERVAL: '500',
      LONG_POLL_WAIT: '0',
      AGENT_ID: 'agent-7',
      CONCURRENCY: '4',
      AGENT_QUEUES: 'gpu, batch,gpu',
      IDEMPOTENCY_DB_PATH: '/tmp/x.db',
      AGENT_TOKEN: 'secret',
      HTTP_BLOCK_PRIVATE: 'false',
      HTTP_ALLOW: 'db.internal:5432, 10.0.0.0/8,',
      LOG_LEVEL: 'debug',
      DRAIN_MS: '100',
      AGENT_CRASH_AT: 'after-finish',
    });
    expect(config).toEqual({
      serverUrls: ['https://queue.example:8443'],
      pollIntervalMs: 500,
      longPollWaitS: 0,
      agentId: 'agent-7',
      concurrency: 4,
      queues: ['gpu', 'batch'],
      dbPath: '/tmp/x.db',
      agentToken: 'secret',
      blockPrivate: false,
      httpAllow: [
        { kind: 'host', host: 'db.internal', port: 5432, text: 'db.internal:5432' },
        { kind: 'cidr', network: '10.0.0.0', prefix: 8, family: 'ipv4', text: '10.0.0.0/8' },
      ],
      logLevel: 'debug',
      drainMs: 100,
      crashAt: 'after-finish',
    });
  });

  it('reads SERVER_URL as a list of replicas, in order, without trailing slashes', () => {
    expect(loadConfig({ SERVER_URL: 'http://a:3000/, https://b.example ,http://10.0.0.3:3000,' }).serverUrls).toEqual([
      'http://a:3000',
      'https://b.example',
      'http://10.0.0.3:3000',
    ]);
  });

  it.each([
    ['http://a:3000,b:3000', /SERVER_URL: "b:3000" is not an http\(s\) URL/],
    ['http://a:3000,ftp://b', /SERVER_URL: "ftp:\/\/b" is not an http\(s\) URL/],
    ['http://a:3000,http://a:3000/', /SERVER_URL: lists http:\/\/a:3000\/ twice/],
    [' , ', /SERVER_URL: lists no URL/],
  ])('refuses SERVER_URL=%s, naming the entry', (value, message) => {
    expect(() => loadConfig({ SERVER_URL: value })).toThrow(message);
  });

  it.each([
    ['SERVER_URL', 'localhost:3000'],
    ['SERVER_URL', 'ftp://x'],
    ['POLL_INTERVAL', 'soon'],
    ['LONG_POLL_WAIT', '61'],
    ['CONCURRENCY', '0'],
    ['AGENT_QUEUES', 'GPU'],
    ['AGENT_QUEUES', ','],
    ['CONCURRENCY', '1.5'],
    ['AGENT_ID', 'has spaces'],
    ['HTTP_BLOCK_PRIVATE', 'yes'],
    ['HTTP_ALLOW', 'db.internal:http'],
    ['HTTP_ALLOW', '10.0.0.0/8,not a host'],
    // Metadata and link-local addresses are always refused: listing them is a mistake, not a wish.
    ['HTTP_ALLOW', '169.254.169.254'],
    ['HTTP_ALLOW', '100.100.100.200:80'],
    ['HTTP_ALLOW', '[fd00:ec2::254]'],
    ['HTTP_ALLOW', '169.254.0.0/16'],
    ['LOG_LEVEL', 'loud'],
    ['AGENT_CRASH_AT', 'whenever'],
  ])('refuses %s=%s, naming the variable', (name, value) => {
    expect(() => loadConfig({ [name]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ [name]: value })).toThrow(new RegExp(`\\b${name}:`));
  });

  it('a bad value stops the real process with a non-zero exit and the variable named', async () => {
    const dir = tempDir('agent-config');
    const agent = startAgent({ SERVER_URL: 'http://127.0.0.1:9', IDEMPOTENCY_DB_PATH: `${dir.path}/a.db`, CONCURRENCY: 'many' });
    expect(await agent.exited).toBe(1);
    expect(agent.output()).toMatch(/CONCURRENCY:/);
    const flagged = startAgent({ SERVER_URL: 'http://127.0.0.1:9', IDEMPOTENCY_DB_PATH: `${dir.path}/a.db` }, ['--kill-after=soon']);
    expect(await flagged.exited).toBe(1);
    expect(flagged.output()).toMatch(/--kill-after=soon/);
    const allow = startAgent({ SERVER_URL: 'http://127.0.0.1:9', IDEMPOTENCY_DB_PATH: `${dir.path}/a.db`, HTTP_ALLOW: 'fe80::1' });
    expect(await allow.exited).toBe(1);
    expect(allow.output()).toMatch(/HTTP_ALLOW: "fe80::1" is a link-local address, which is always refused/);
    const urls = startAgent({ SERVER_URL: 'http://127.0.0.1:9,127.0.0.1:10', IDEMPOTENCY_DB_PATH: `${dir.path}/a.db` });
    expect(await urls.exited).toBe(1);
    expect(urls.output()).toMatch(/SERVER_URL: "127.0.0.1:10" is not an http\(s\) URL/);
    dir.cleanup(true);
  });
});
