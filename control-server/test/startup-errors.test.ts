/**
 * A database path that cannot be used stops the process with one line naming the setting and the
 * file (as a bad setting does), not a stack trace: DB_PATH for the server, IDEMPOTENCY_DB_PATH
 * for the agent. Real processes, real files.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AGENT_MAIN, SERVER_MAIN, freePort, killAll, startProcess, tempDir } from '../../test-support/processes.js';

let dir: ReturnType<typeof tempDir> | undefined;
afterEach(async ({ task }) => {
  await killAll();
  dir?.cleanup(task.result?.state === 'pass');
  dir = undefined;
});

/** A file that is not SQLite: a text file longer than SQLite's 100-byte header. */
function notADatabase(): string {
  dir = tempDir('startup');
  const path = join(dir.path, 'notes.db');
  writeFileSync(path, 'these are notes, not a database\n'.repeat(10));
  return path;
}

async function expectOneLineExit(proc: ReturnType<typeof startProcess>, pattern: RegExp): Promise<void> {
  expect(await proc.exited).toBe(1);
  const lines = proc.output().trim().split('\n');
  expect(lines, proc.output()).toHaveLength(1);
  expect(lines[0]).toMatch(pattern);
}

describe('start-up with an unusable database file', () => {
  it('the server names DB_PATH and the file when it is not an SQLite database', async () => {
    const path = notADatabase();
    const server = startProcess(SERVER_MAIN, [], { HOST: '127.0.0.1', PORT: String(await freePort()), DB_PATH: path });
    await expectOneLineExit(server, new RegExp(`^control-server: cannot use DB_PATH ${path}: file is not a database$`));
  });

  it('the server names DB_PATH when it is a directory', async () => {
    dir = tempDir('startup');
    const path = join(dir.path, 'a-directory');
    mkdirSync(path);
    const server = startProcess(SERVER_MAIN, [], { HOST: '127.0.0.1', PORT: String(await freePort()), DB_PATH: path });
    await expectOneLineExit(server, new RegExp(`^control-server: cannot use DB_PATH ${path}: `));
  });

  it('the agent names IDEMPOTENCY_DB_PATH and the file when it is not an SQLite database', async () => {
    const path = notADatabase();
    const agent = startProcess(AGENT_MAIN, [], { SERVER_URL: 'http://127.0.0.1:9', IDEMPOTENCY_DB_PATH: path });
    await expectOneLineExit(agent, new RegExp(`^agent: cannot open IDEMPOTENCY_DB_PATH ${path}: file is not a database$`));
  });
});
