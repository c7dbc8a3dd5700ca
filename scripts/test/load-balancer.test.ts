/**
 * docker/nginx-load-balancer.conf, read as text (no nginx here): what long-polls and SSE streams
 * need to pass through a balancer intact, and upstream keep-alive. Each check is also run on a
 * copy of the file with that setting broken, so a check that could not fail would show.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MAX_LONG_POLL_WAIT_S } from '@agent-executor/common';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../../test-support/processes.js';
import { nginxTimeMs, parseNginx, type Directive } from './nginx-conf.js';

const FILE = join(REPO_ROOT, 'docker/nginx-load-balancer.conf');
const TEXT = readFileSync(FILE, 'utf8');
/** The server's default SSE_PING_MS: the longest a healthy stream stays quiet. */
const SSE_PING_MS = 15_000;

const find = (list: Directive[] | undefined, name: string, ...args: string[]) =>
  (list ?? []).filter((d) => d.name === name && args.every((a, i) => d.args[i] === a));
const value = (list: Directive[] | undefined, name: string) => find(list, name).at(-1)?.args;

/** What is wrong with the balancer's config, one line each; empty when it holds. */
function loadBalancerProblems(text: string): string[] {
  const problems: string[] = [];
  const top = parseNginx(text);
  const upstreams = find(top, 'upstream');
  if (upstreams.length !== 1) return [`expected one upstream block, found ${upstreams.length}`];
  const upstream = upstreams[0]!;
  const servers = find(upstream.block, 'server').map((d) => d.args[0]);
  if (servers.length < 2) problems.push(`the upstream lists ${servers.length} server(s), not the replicas`);
  const keepalive = Number(value(upstream.block, 'keepalive')?.[0] ?? 0);
  if (!(keepalive > 0)) problems.push('no upstream keepalive');

  const location = find(find(top, 'server')[0]?.block, 'location', '/')[0]?.block;
  if (!location) return [...problems, 'no server with a location /'];
  if (value(location, 'proxy_pass')?.[0] !== `http://${upstream.args[0]}`) problems.push('location / does not proxy_pass to the upstream');
  if (value(location, 'proxy_http_version')?.[0] !== '1.1') problems.push('proxy_http_version is not 1.1 (no upstream keep-alive)');
  const connection = find(location, 'proxy_set_header').find((d) => d.args[0]?.toLowerCase() === 'connection');
  if (connection?.args[1] !== '') problems.push('proxy_set_header Connection "" is missing (upstream keep-alive)');
  if (value(location, 'proxy_buffering')?.[0] !== 'off') problems.push('proxy_buffering is not off (SSE and long-poll answers would be held back)');
  if (value(location, 'gzip')?.[0] === 'on') problems.push('gzip is on (it buffers SSE)');
  for (const name of ['proxy_read_timeout', 'proxy_send_timeout']) {
    const ms = nginxTimeMs(value(location, name)?.[0] ?? '60s'); // nginx's default is 60 s
    if (ms <= MAX_LONG_POLL_WAIT_S * 1000) problems.push(`${name} ${ms} ms is not longer than the longest long-poll wait`);
    if (ms <= SSE_PING_MS) problems.push(`${name} ${ms} ms is not longer than the SSE ping interval`);
  }
  return problems;
}

describe('docker/nginx-load-balancer.conf', () => {
  it('passes long-polls and SSE through unbuffered and untimed-out, with upstream keep-alive', () => {
    expect(loadBalancerProblems(TEXT)).toEqual([]);
  });

  it('balances the two replicas of docker-compose.postgres.yml on their port', () => {
    const upstream = find(parseNginx(TEXT), 'upstream')[0]!;
    expect(find(upstream.block, 'server').map((d) => d.args[0])).toEqual(['server-1:3000', 'server-2:3000']);
  });

  it.each([
    ['proxy_buffering off;', 'proxy_buffering on;', /proxy_buffering is not off/],
    ['proxy_buffering off;', '', /proxy_buffering is not off/],
    ['proxy_read_timeout 90s;', 'proxy_read_timeout 60s;', /proxy_read_timeout 60000 ms is not longer than the longest long-poll/],
    ['proxy_read_timeout 90s;', '', /proxy_read_timeout 60000 ms/],
    ['proxy_send_timeout 90s;', 'proxy_send_timeout 10;', /proxy_send_timeout 10000 ms is not longer than the SSE ping/],
    ['proxy_http_version 1.1;', '', /proxy_http_version/],
    ['proxy_set_header Connection "";', 'proxy_set_header Connection "close";', /Connection ""/],
    ['keepalive 32;', '', /no upstream keepalive/],
    ['gzip off;', 'gzip on;', /gzip is on/],
    ['proxy_pass http://control_servers;', 'proxy_pass http://server-1:3000;', /proxy_pass to the upstream/],
  ])('would catch %s changed to "%s"', (setting, broken, problem) => {
    expect(TEXT).toContain(setting);
    expect(loadBalancerProblems(TEXT.replace(setting, broken)).join('\n')).toMatch(problem);
  });

  it('reads nginx syntax: quotes, comments, nested blocks, times', () => {
    expect(parseNginx('a "x y" \'\' b; # c\nblock 1 { inner "}"; }')).toEqual([
      { name: 'a', args: ['x y', '', 'b'] },
      { name: 'block', args: ['1'], block: [{ name: 'inner', args: ['}'] }] },
    ]);
    expect(() => parseNginx('a { b; ')).toThrow(/not closed/);
    expect(() => parseNginx('a b')).toThrow(/not ended/);
    expect([nginxTimeMs('90s'), nginxTimeMs('1m30s'), nginxTimeMs('500ms'), nginxTimeMs('75')]).toEqual([90_000, 90_000, 500, 75_000]);
    expect(() => nginxTimeMs('1 minute')).toThrow();
  });
});
