/**
 * The installable parts: `npm pack` each workspace, install the four tarballs into an empty
 * directory outside the repository, and run the three bins from there: the server and the agent on
 * a free port with their databases in a temp dir, a DELAY submitted and COMPLETED, the watch CLI
 * following it to its end (exit 0), both services stopped by pid with SIGTERM (exit 0).
 *
 * better-sqlite3's addon is not compiled again in the temp dir (a minute of CPU): the install runs
 * with --ignore-scripts and the addon the repository's own install built, for this very Node, is
 * copied in; the test checks both are the same better-sqlite3 version. Dependencies come from the
 * npm cache the repository's install filled (--prefer-offline), the registry otherwise.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, freePort, tempDir, waitFor } from '../../test-support/processes.js';

const WORKSPACES = ['common', 'control-server', 'agent', 'scripts'] as const;
// The bins run with this Node, whatever `node` the shell would find first.
const PATH = `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ''}`;

interface PackResult {
  name: string;
  filename: string;
  files: Array<{ path: string }>;
}

function npm(args: string[], cwd: string): string {
  const result = spawnSync('npm', args, { cwd, encoding: 'utf8', env: { ...process.env, PATH }, timeout: 120_000 });
  if (result.status !== 0) throw new Error(`npm ${args.join(' ')} (rc ${result.status}):\n${result.stderr}`);
  return result.stdout;
}

interface Bin {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | string>;
}
const started: Bin[] = [];

/** Runs an installed bin by its path (its shebang picks `node` from PATH), in the install dir. */
function runBin(app: string, name: string, args: string[], env: Record<string, string>): Bin {
  const child = spawn(join(app, 'node_modules', '.bin', name), args, {
    cwd: app,
    env: { PATH, LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')));
  const bin = { child, output: () => out, exited };
  started.push(bin);
  return bin;
}

let dir: ReturnType<typeof tempDir>;
let app: string;
let packed: PackResult[];
let passed = true;

beforeAll(() => {
  dir = tempDir('pack');
  const tarballs = join(dir.path, 'tarballs');
  mkdirSync(tarballs);
  // `npm test` has just built every dist/ (the `prepack` scripts would run `tsc -b` again).
  const workspaceArgs = WORKSPACES.flatMap((ws) => ['--workspace', ws]);
  packed = JSON.parse(npm(['pack', '--json', '--ignore-scripts', '--pack-destination', tarballs, ...workspaceArgs], REPO_ROOT)) as PackResult[];

  app = join(dir.path, 'app');
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'empty', private: true }));
  npm(
    ['install', '--prefer-offline', '--ignore-scripts', '--no-audit', '--no-fund', ...packed.map((p) => join(tarballs, p.filename))],
    app,
  );
  const installed = join(app, 'node_modules', 'better-sqlite3');
  const own = join(REPO_ROOT, 'node_modules', 'better-sqlite3');
  const version = (path: string) => (JSON.parse(readFileSync(join(path, 'package.json'), 'utf8')) as { version: string }).version;
  expect(version(installed)).toBe(version(own));
  mkdirSync(join(installed, 'build', 'Release'), { recursive: true });
  copyFileSync(join(own, 'build', 'Release', 'better_sqlite3.node'), join(installed, 'build', 'Release', 'better_sqlite3.node'));
}, 150_000);

afterAll(async () => {
  for (const bin of started) if (bin.child.exitCode === null && bin.child.signalCode === null) bin.child.kill('SIGKILL');
  await Promise.all(started.map((b) => b.exited));
  dir?.cleanup(passed);
});

afterEach(({ task }) => {
  if (task.result?.state !== 'pass') passed = false;
});

describe('npm pack', () => {
  it('ships compiled JavaScript and migrations, not sources or tests', () => {
    const files = Object.fromEntries(packed.map((p) => [p.name, p.files.map((f) => f.path)]));
    const server = files['@agent-executor/control-server'] ?? [];
    const agent = files['@agent-executor/agent'] ?? [];
    const scripts = files['@agent-executor/scripts'] ?? [];
    const common = files['@agent-executor/common'] ?? [];
    expect(server).toContain('dist/main.js');
    expect(server.some((f) => /^migrations\/sqlite\/.+\.sql$/.test(f))).toBe(true);
    expect(agent).toContain('dist/main.js');
    expect(common).toContain('dist/index.js');
    expect(scripts).toContain('dist/watch.js');
    // The watch CLI ships alone: bench and chaos need the repository's dev tools.
    expect(scripts.filter((f) => f.startsWith('dist/')).sort()).toEqual(['dist/watch-format.js', 'dist/watch.js']);
    for (const file of [...server, ...agent, ...common, ...scripts]) {
      expect(file).not.toMatch(/^(src|test)\/|tsbuildinfo$|\.test\./);
    }
    for (const pkg of packed) expect(pkg.files.map((f) => f.path)).toContain('package.json');
  });

  it('installs into an empty directory and runs server, agent and watch from their bins', async () => {
    for (const name of ['agent-executor-server', 'agent-executor-agent', 'agent-executor-watch']) {
      expect(existsSync(join(app, 'node_modules', '.bin', name)), name).toBe(true);
    }
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const data = join(dir.path, 'data');
    const server = runBin(app, 'agent-executor-server', [], { HOST: '127.0.0.1', PORT: String(port), DB_PATH: join(data, 'commands.db') });
    await waitFor(
      async () => {
        if (server.child.exitCode !== null) throw new Error(`server exited:\n${server.output()}`);
        return fetch(`${url}/health`).then((r) => r.ok, () => false);
      },
      { timeoutMs: 20_000, what: `the installed server on ${url}` },
    );
    const agent = runBin(app, 'agent-executor-agent', [], {
      SERVER_URL: url,
      IDEMPOTENCY_DB_PATH: join(data, 'idempotency.db'),
      LONG_POLL_WAIT: '5',
    });

    const res = await fetch(`${url}/commands`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ type: 'DELAY', payload: { ms: 50 } }),
    });
    expect(res.status).toBe(201);
    const { id } = (await res.json()) as { id: string };
    const watch = runBin(app, 'agent-executor-watch', [id, '--url', url], {});

    const done = await waitFor(
      async () => {
        if (agent.child.exitCode !== null) throw new Error(`agent exited:\n${agent.output()}`);
        const command = (await (await fetch(`${url}/commands/${id}`)).json()) as { status: string; agentId: string | null };
        return command.status === 'COMPLETED' || command.status === 'FAILED' ? command : undefined;
      },
      { timeoutMs: 20_000, what: 'the DELAY to finish' },
    );
    expect(done.status).toBe('COMPLETED');
    expect(done.agentId).toBeTruthy();
    // The watch CLI follows the command to its end: exit 0 for COMPLETED, one line per change.
    expect(await watch.exited, watch.output()).toBe(0);
    expect(watch.output()).toMatch(/COMPLETED/);

    server.child.kill('SIGTERM');
    agent.child.kill('SIGTERM');
    expect(await agent.exited, agent.output()).toBe(0);
    expect(await server.exited, server.output()).toBe(0);
  }, 60_000);
});
