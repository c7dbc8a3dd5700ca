/**
 * The Docker delivery files, checked with Node alone (no docker-compose, no engine): the compose
 * files are interpolated as Compose does and validated against the Compose Specification's JSON
 * schema (compose-file.ts), and the facts a scaled fleet depends on must hold. The Dockerfiles are
 * checked statically: stages, base image, non-root user, health check, the exact entry points, and
 * that every file they COPY from the context exists and is not excluded by .dockerignore.
 * (.ci/run also runs `docker-compose config` on both files where it can install it.)
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { REPO_ROOT } from '../../test-support/processes.js';
import { loadConfig as loadAgentConfig } from '../../agent/src/config.js';
import { interpolate, loadCompose, parseEnvFile, schemaErrors, type ComposeConfig } from './compose-file.js';
import { parseNginx } from './nginx-conf.js';

/**
 * A compose file with a controlled environment: no variable of the caller's shell and no env file
 * unless one is given, so a developer's own .env cannot change the outcome.
 */
function composeConfig(file: string, env: Record<string, string> = {}, envFile?: string) {
  return loadCompose(join(REPO_ROOT, file), { projectDir: REPO_ROOT, env, ...(envFile ? { envFile } : {}) });
}

function parsedConfig(file: string, env: Record<string, string> = {}, envFile?: string): ComposeConfig {
  const { config, errors } = composeConfig(file, env, envFile);
  expect(errors).toEqual([]);
  return config;
}

const PROD_TOKENS = { API_TOKEN: 'prod-api-token-0123456789', AGENT_TOKEN: 'prod-agent-token-0123456789' };

/** What a fleet started with `--scale agent=N` needs, in either compose file. */
function expectScalableFleet(config: ComposeConfig): void {
  expect(Object.keys(config.services).sort()).toEqual(['agent', 'control-server']);
  const server = config.services['control-server']!;
  const agent = config.services['agent']!;

  // The server: its database on a named volume, its health checked through GET /health.
  expect(server.environment?.['DB_PATH']).toBe('/data/commands.db');
  expect(server.volumes).toContainEqual(expect.stringMatching(/^control-server-data:\/data(:rw)?$/));
  expect(Object.keys(config.volumes ?? {})).toContain('control-server-data');
  expect(server.healthcheck?.test.join(' ')).toContain('/health');
  expect(server.ports?.map((p) => Number(p.target))).toEqual([3000]);

  // The agents: nothing that two replicas could collide on.
  expect(agent.container_name).toBeUndefined();
  expect(agent.ports ?? []).toEqual([]);
  expect(agent.environment).not.toHaveProperty('AGENT_ID');
  expect(agent.environment?.['SERVER_URL']).toBe('http://control-server:3000');
  const dbPath = agent.environment?.['IDEMPOTENCY_DB_PATH'] ?? '';
  expect(dbPath).toBe('/data/idempotency.db');
  // /data is an anonymous volume (a container path only): one per replica, never shared.
  expect(agent.volumes).toEqual(['/data']);
  expect(agent.depends_on).toEqual({ 'control-server': { condition: 'service_healthy' } });
  expect(agent.healthcheck?.test.length).toBeGreaterThan(1);
}

describe('docker-compose.yml (built from this checkout)', () => {
  it('is valid Compose and runs a scalable fleet', () => {
    const config = parsedConfig('docker-compose.yml');
    expectScalableFleet(config);
    expect(config.services['control-server']!.build?.dockerfile).toBe('control-server/Dockerfile');
    expect(config.services['agent']!.build?.dockerfile).toBe('agent/Dockerfile');
    expect(config.services['agent']!.build?.context.replace(/\/$/, '')).toBe(REPO_ROOT.replace(/\/$/, ''));
    // Each build context is a directory holding the Dockerfile named for it.
    for (const service of Object.values(config.services)) {
      expect(statSync(service.build!.context).isDirectory()).toBe(true);
      expect(existsSync(join(service.build!.context, service.build!.dockerfile)), service.build!.dockerfile).toBe(true);
    }
    // Auth off by default: empty tokens, which server and agent both treat as unset.
    expect(config.services['control-server']!.environment?.['API_TOKEN']).toBe('');
    expect(config.services['control-server']!.ports).toEqual([{ published: 3000, target: 3000 }]);
    // Secure by default: agents refuse private targets unless HTTP_ALLOW names them.
    expect(config.services['agent']!.environment?.['HTTP_BLOCK_PRIVATE']).toBe('true');
    expect(config.services['agent']!.environment?.['HTTP_ALLOW']).toBe('');
  });

  it('maps CONTROL_SERVER_PORT on the host and passes settings through', () => {
    const config = parsedConfig('docker-compose.yml', {
      CONTROL_SERVER_PORT: '8080',
      LEASE_MS: '5000',
      CONCURRENCY: '4',
      AGENT_TOKEN: 'agent-token-0123456789',
    });
    const server = config.services['control-server']!;
    const agent = config.services['agent']!;
    expect(server.ports).toEqual([{ published: 8080, target: 3000 }]);
    expect(server.environment?.['LEASE_MS']).toBe('5000');
    expect(server.environment?.['PORT']).toBe('3000');
    expect(agent.environment?.['CONCURRENCY']).toBe('4');
    // One agent token for both sides.
    expect(agent.environment?.['AGENT_TOKEN']).toBe('agent-token-0123456789');
    expect(server.environment?.['AGENT_TOKEN']).toBe('agent-token-0123456789');
  });

  it('accepts .env.example as its .env', () => {
    const config = parsedConfig('docker-compose.yml', {}, join(REPO_ROOT, '.env.example'));
    expectScalableFleet(config);
  });
});

describe('docker-compose.prod.yml (images from GHCR)', () => {
  it('pulls both images from ghcr.io, owner and tag from the environment', () => {
    const config = parsedConfig('docker-compose.prod.yml', { ...PROD_TOKENS, GHCR_OWNER: 'acme', TAG: 'sha-1234567' });
    expectScalableFleet(config);
    expect(config.services['control-server']!.image).toBe('ghcr.io/acme/agent-executor-control-server:sha-1234567');
    expect(config.services['agent']!.image).toBe('ghcr.io/acme/agent-executor-agent:sha-1234567');
    expect(config.services['control-server']!.build).toBeUndefined();
    expect(config.services['agent']!.build).toBeUndefined();
    expect(config.services['control-server']!.environment?.['API_TOKEN']).toBe(PROD_TOKENS.API_TOKEN);
  });

  it('defaults to ghcr.io/agent-executor/…:latest', () => {
    const config = parsedConfig('docker-compose.prod.yml', PROD_TOKENS);
    expect(config.services['control-server']!.image).toBe('ghcr.io/agent-executor/agent-executor-control-server:latest');
    expect(config.services['agent']!.image).toBe('ghcr.io/agent-executor/agent-executor-agent:latest');
  });

  it('refuses to start a published server without API_TOKEN and AGENT_TOKEN', () => {
    expect(() => composeConfig('docker-compose.prod.yml')).toThrow(/API_TOKEN.*set API_TOKEN/);
    expect(() => composeConfig('docker-compose.prod.yml', { API_TOKEN: PROD_TOKENS.API_TOKEN })).toThrow(/AGENT_TOKEN/);
    // .env.example leaves both empty, which `:?` refuses as well.
    expect(() => composeConfig('docker-compose.prod.yml', {}, join(REPO_ROOT, '.env.example'))).toThrow(/API_TOKEN/);
  });
});

describe('docker-compose.postgres.yml (PostgreSQL, replicas, a load balancer)', () => {
  const SECRETS = { ...PROD_TOKENS, POSTGRES_PASSWORD: 'pgpassword0123' };
  const REPLICAS = ['server-1', 'server-2'];

  it('is valid Compose: PostgreSQL on a volume with a health check, two replicas on it', () => {
    const config = parsedConfig('docker-compose.postgres.yml', SECRETS);
    expect(Object.keys(config.services).sort()).toEqual(['agent', 'load-balancer', 'postgres', 'server-1', 'server-2']);
    const postgres = config.services['postgres']!;
    // SPEC §8: PostgreSQL 14 or newer, the official image.
    expect(Number(/^postgres:(\d+)/.exec(postgres.image ?? '')?.[1])).toBeGreaterThanOrEqual(14);
    expect(postgres.volumes).toEqual(['postgres-data:/var/lib/postgresql/data']);
    expect(Object.keys(config.volumes ?? {})).toEqual(['postgres-data']);
    expect(postgres.healthcheck?.test).toEqual(['CMD', 'pg_isready', '-U', 'agent_executor', '-d', 'agent_executor']);
    expect(postgres.ports).toBeUndefined();
    expect(postgres.environment).toMatchObject({ POSTGRES_USER: 'agent_executor', POSTGRES_DB: 'agent_executor', POSTGRES_PASSWORD: 'pgpassword0123' });

    const [first, second] = REPLICAS.map((name) => config.services[name]!);
    // The replicas differ in nothing but their name.
    expect(second).toEqual(first);
    const url = new URL(first!.environment?.['DATABASE_URL'] ?? '');
    expect(url.protocol).toBe('postgres:');
    expect([url.hostname, url.port, url.username, url.password, url.pathname]).toEqual(['postgres', '5432', 'agent_executor', 'pgpassword0123', '/agent_executor']);
    expect(first!.environment).not.toHaveProperty('DB_PATH');
    expect(first!.volumes).toBeUndefined();
    expect(first!.ports).toBeUndefined();
    expect(first!.image).toBe('ghcr.io/agent-executor/agent-executor-control-server:latest');
    expect(first!.healthcheck?.test.join(' ')).toContain('/health');
    expect(first!.depends_on).toEqual({ postgres: { condition: 'service_healthy' } });
    expect(first!.environment).toMatchObject({ PORT: '3000', API_TOKEN: PROD_TOKENS.API_TOKEN, AGENT_TOKEN: PROD_TOKENS.AGENT_TOKEN });
  });

  it('puts nginx in front of both replicas, with its config from docker/', () => {
    const config = parsedConfig('docker-compose.postgres.yml', { ...SECRETS, CONTROL_SERVER_PORT: '8080' });
    const lb = config.services['load-balancer']!;
    expect(lb.image).toMatch(/^nginx:1\.(2[89]|[3-9]\d)/); // `resolve` on upstream servers: nginx 1.27.3+
    expect(lb.ports).toEqual([{ published: 8080, target: 80 }]);
    const [source, target, mode] = (lb.volumes?.[0] ?? '').split(':');
    expect([target, mode]).toEqual(['/etc/nginx/conf.d/default.conf', 'ro']);
    const upstream = parseNginx(readFileSync(join(REPO_ROOT, source!), 'utf8')).find((d) => d.name === 'upstream');
    const balanced = upstream?.block?.filter((d) => d.name === 'server').map((d) => d.args[0]);
    expect(balanced).toEqual(REPLICAS.map((name) => `${name}:3000`));
    expect(lb.depends_on).toEqual(Object.fromEntries(REPLICAS.map((name) => [name, { condition: 'service_healthy' }])));
    expect(lb.healthcheck?.test.join(' ')).toContain('/health');
  });

  it("gives the agents both replicas' URLs, which the agent's own config accepts", () => {
    const config = parsedConfig('docker-compose.postgres.yml', SECRETS);
    const agent = config.services['agent']!;
    expect(agent.environment?.['SERVER_URL']).toBe(REPLICAS.map((name) => `http://${name}:3000`).join(','));
    expect(loadAgentConfig(agent.environment).serverUrls).toEqual(['http://server-1:3000', 'http://server-2:3000']);
    // Scalable as in the other files.
    expect(agent.container_name).toBeUndefined();
    expect(agent.ports ?? []).toEqual([]);
    expect(agent.environment).not.toHaveProperty('AGENT_ID');
    expect(agent.volumes).toEqual(['/data']);
    expect(agent.environment?.['IDEMPOTENCY_DB_PATH']).toBe('/data/idempotency.db');
    expect(agent.environment?.['HTTP_BLOCK_PRIVATE']).toBe('true');
    expect(agent.depends_on).toEqual(Object.fromEntries(REPLICAS.map((name) => [name, { condition: 'service_healthy' }])));
  });

  it('refuses to start without POSTGRES_PASSWORD, API_TOKEN and AGENT_TOKEN', () => {
    expect(() => composeConfig('docker-compose.postgres.yml', PROD_TOKENS)).toThrow(/POSTGRES_PASSWORD/);
    expect(() => composeConfig('docker-compose.postgres.yml', { POSTGRES_PASSWORD: 'x', AGENT_TOKEN: PROD_TOKENS.AGENT_TOKEN })).toThrow(/API_TOKEN/);
    expect(() => composeConfig('docker-compose.postgres.yml', {}, join(REPO_ROOT, '.env.example'))).toThrow(/POSTGRES_PASSWORD|API_TOKEN/);
    // .env.example with the three secrets filled in is a working .env.
    parsedConfig('docker-compose.postgres.yml', SECRETS, join(REPO_ROOT, '.env.example'));
  });
});

describe('the compose checker (what stands in for docker-compose config)', () => {
  const env = { SET: 'value', EMPTY: '' };

  it('interpolates as the Compose Specification says', () => {
    expect(interpolate('${SET} $SET ${UNSET}|', env)).toBe('value value |');
    expect(interpolate('${EMPTY:-d} ${EMPTY-d} ${UNSET-d} ${SET:-d}', env)).toBe('d  d value');
    expect(interpolate('${SET:+alt} ${EMPTY:+alt} ${EMPTY+alt}', env)).toBe('alt  alt');
    expect(interpolate('$$HOME $${SET}', env)).toBe('$HOME ${SET}');
    expect(interpolate('${SET:?no}', env)).toBe('value');
    expect(() => interpolate('${EMPTY:?set EMPTY}', env)).toThrow(/EMPTY.*set EMPTY/);
    expect(interpolate('${EMPTY?set EMPTY}', env)).toBe('');
    expect(() => interpolate('${UNSET?set it}', env)).toThrow(/UNSET/);
  });

  it('reads env files: comments, empty values, quotes', () => {
    expect(parseEnvFile('# c\nA=1\nB=\nC="x y"\nD=z # note\n')).toEqual({ A: '1', B: '', C: 'x y', D: 'z' });
  });

  it('rejects documents the Compose Specification rejects', () => {
    const good = parse(readFileSync(join(REPO_ROOT, 'docker-compose.yml'), 'utf8')) as ComposeConfig;
    expect(schemaErrors(good)).toEqual([]);
    const typo = structuredClone(good) as unknown as { services: Record<string, Record<string, unknown>> };
    typo.services['agent']!['helthcheck'] = typo.services['agent']!['healthcheck'];
    expect(schemaErrors(typo).join('\n')).toMatch(/additional properties.*helthcheck/);
    const condition = structuredClone(good);
    condition.services['agent']!.depends_on = { 'control-server': { condition: 'healthy' } };
    expect(schemaErrors(condition).join('\n')).toMatch(/depends_on/);
    const duration = structuredClone(good);
    duration.services['agent']!.healthcheck!.interval = '15 seconds';
    expect(schemaErrors(duration).join('\n')).toMatch(/interval.*duration/);
  });
});

describe('.env.example', () => {
  const text = readFileSync(join(REPO_ROOT, '.env.example'), 'utf8');
  const documented = new Set([...text.matchAll(/^#?\s*([A-Z][A-Z0-9_]*)=/gm)].map((m) => m[1]));

  it('lists every setting of the server (SPEC §3 and ours) and the agent (SPEC §5)', () => {
    const spec = ['PORT', 'HOST', 'CORS_ORIGIN', 'DB_PATH', 'LEASE_MS', 'API_TOKEN', 'AGENT_TOKEN', 'LOG_LEVEL', 'DATABASE_URL'];
    const server = [
      'SQLITE_SYNCHRONOUS',
      'SSE_PING_MS',
      'SSE_MAX_QUEUED',
      'METRICS_TOKEN',
      'SSE_MAX_QUEUED_BYTES',
      'RETENTION',
      'REQUEST_TIMEOUT_MS',
      'PG_POOL_SIZE',
    ];
    const agent = ['SERVER_URL', 'POLL_INTERVAL', 'LONG_POLL_WAIT', 'AGENT_ID', 'CONCURRENCY', 'AGENT_QUEUES', 'IDEMPOTENCY_DB_PATH', 'HTTP_BLOCK_PRIVATE', 'HTTP_ALLOW', 'METRICS_PORT'];
    for (const name of [...spec, ...server, ...agent]) expect(documented, name).toContain(name);
  });

  it('documents every variable the compose files interpolate', () => {
    for (const file of ['docker-compose.yml', 'docker-compose.prod.yml', 'docker-compose.postgres.yml']) {
      const used = [...readFileSync(join(REPO_ROOT, file), 'utf8').matchAll(/\$\{([A-Z0-9_]+)/g)].map((m) => m[1]);
      expect(used.length).toBeGreaterThan(0);
      for (const name of used) expect(documented, `${name} (${file})`).toContain(name);
    }
  });
});

/** A minimal .dockerignore matcher: `*`, `**`, and a pattern excluding a directory excludes what is inside. */
function dockerIgnored(path: string): boolean {
  const patterns = readFileSync(join(REPO_ROOT, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  let ignored = false;
  for (const pattern of patterns) {
    const negate = pattern.startsWith('!');
    const body = (negate ? pattern.slice(1) : pattern).replace(/\/$/, '');
    const regex = new RegExp(
      '^' +
        body
          .split('/')
          .map((part) => (part === '**' ? '(?:.*/)?' : part.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*') + '/'))
          .join('')
          .replace(/\/$/, '') +
        '(?:/.*)?$',
    );
    if (regex.test(path.replace(/\/$/, ''))) ignored = !negate;
  }
  return ignored;
}

describe.each([{ name: 'control-server' }, { name: 'agent' }])('$name/Dockerfile', ({ name }) => {
  const text = readFileSync(join(REPO_ROOT, name, 'Dockerfile'), 'utf8').replace(/\\\n/g, ' ');
  const instructions = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const lastFrom = instructions.findLastIndex((l) => l.startsWith('FROM '));
  const runtime = instructions.slice(lastFrom);

  it('builds in one stage and runs on node:24-trixie-slim in another', () => {
    const froms = instructions.filter((l) => l.startsWith('FROM '));
    expect(froms.length).toBeGreaterThanOrEqual(2);
    expect(froms[0]).toMatch(/ AS build$/);
    // The same Node and Debian in both stages: the native addon built in one loads in the other.
    for (const from of froms) expect(from).toMatch(/^FROM node:24-trixie-slim\b/);
    expect(text).toMatch(/npm ci --ignore-scripts\b/);
    expect(text).toMatch(/npm ci --omit=dev\b.*--workspace \S+/);
    expect(text).toMatch(/python3 make g\+\+/);
    // No compiler in the runtime stage: only COPY --from the build stage brings node_modules in.
    expect(runtime.filter((l) => l.startsWith('RUN ')).join('\n')).not.toMatch(/apt-get|npm /);
  });

  it('runs as a non-root user, with a health check and the exact entry point', () => {
    const user = runtime.find((l) => l.startsWith('USER '));
    expect(user).toBeDefined();
    expect(user).not.toMatch(/^USER (root|0)\b/);
    expect(runtime.some((l) => l.startsWith('HEALTHCHECK ') && l.includes(' CMD '))).toBe(true);
    const cmd = runtime.filter((l) => l.startsWith('CMD ')).at(-1) ?? '';
    expect(JSON.parse(cmd.slice(4))).toEqual(['node', `${name}/dist/main.js`]);
  });

  it('copies the manifest of every workspace (npm ci checks the whole lockfile)', () => {
    const root = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { workspaces: string[] };
    for (const ws of root.workspaces) expect(text).toMatch(new RegExp(`^COPY ${ws}/package\\.json `, 'm'));
  });

  it('copies only files that exist and that .dockerignore lets into the context', () => {
    const copies = instructions.filter((l) => l.startsWith('COPY ') && !l.includes('--from='));
    expect(copies.length).toBeGreaterThan(0);
    for (const line of new Set(copies)) {
      const sources = line.split(/\s+/).slice(1, -1).filter((s) => !s.startsWith('--'));
      for (const source of sources) {
        expect(existsSync(join(REPO_ROOT, source)), `${source} exists`).toBe(true);
        expect(dockerIgnored(source), `${source} is not in .dockerignore`).toBe(false);
      }
    }
    // The build context never carries local dependencies, builds, databases or secrets.
    for (const path of ['node_modules', 'agent/node_modules', 'control-server/dist', 'control-server/data/commands.db', '.env', '.git']) {
      expect(dockerIgnored(path), path).toBe(true);
    }
    expect(dockerIgnored('.env.example')).toBe(false);
  });
});
