/** Regression: an empty variable counts as unset and takes its default (it used to stop the server). */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';

describe('server configuration', () => {
  it('treats every empty variable as unset', () => {
    const empty = ['PORT', 'HOST', 'DB_PATH', 'LEASE_MS', 'API_TOKEN', 'AGENT_TOKEN', 'LOG_LEVEL', 'CORS_ORIGIN', 'SSE_PING_MS', 'DATABASE_URL'];
    expect(loadConfig(Object.fromEntries(empty.map((name) => [name, ''])))).toEqual(loadConfig({}));
  });

  it('still refuses a bad value, naming it', () => {
    expect(() => loadConfig({ PORT: 'abc' })).toThrow(/PORT:/);
  });
});
