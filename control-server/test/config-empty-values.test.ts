/** Regression: an empty variable counts as unset and takes its default (it used to stop the server). */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';

describe('server configuration', () => {
  it('treats every empty variable as unset', () => {
    const empty = ['PORT', 'HOST', 'DB_PATH', 'LEASE_MS', 'API_TOKEN', 'AGENT_TOKEN', 'LOG_LEVEL', 'CORS_ORIGIN', 'SSE_PING_MS', 'SQLITE_SYNCHRONOUS', 'DATABASE_URL', 'PG_POOL_SIZE'];
    expect(loadConfig(Object.fromEntries(empty.map((name) => [name, ''])))).toEqual(loadConfig({}));
  });

  it('SQLITE_SYNCHRONOUS is FULL unless set to NORMAL (either case); nothing else is taken', () => {
    expect(loadConfig({}).sqliteSynchronous).toBe('FULL');
    expect(loadConfig({ SQLITE_SYNCHRONOUS: 'normal' }).sqliteSynchronous).toBe('NORMAL');
    expect(() => loadConfig({ SQLITE_SYNCHRONOUS: 'OFF' })).toThrow(/SQLITE_SYNCHRONOUS:/);
  });

  it('still refuses a bad value, naming it', () => {
    expect(() => loadConfig({ PORT: 'abc' })).toThrow(/PORT:/);
  });
});

describe('DATABASE_URL', () => {
  it('selects PostgreSQL with a postgres:// URL and refuses anything else, naming it', () => {
    expect(loadConfig({ DATABASE_URL: 'postgres://u:p@db:5432/queue' }).databaseUrl).toBe('postgres://u:p@db:5432/queue');
    expect(loadConfig({ DATABASE_URL: 'postgresql://db/queue' }).databaseUrl).toBe('postgresql://db/queue');
    expect(() => loadConfig({ DATABASE_URL: 'mysql://db/queue' })).toThrow(/DATABASE_URL:.*PostgreSQL URL/);
    expect(loadConfig({}).pgPoolSize).toBe(10);
    expect(() => loadConfig({ PG_POOL_SIZE: '0' })).toThrow(/PG_POOL_SIZE:/);
  });
});
