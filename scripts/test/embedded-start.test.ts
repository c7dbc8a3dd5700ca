import { expect, test } from 'vitest';
import { tempDir } from '../src/bench/harness/processes.js';
import { startPostgres } from '../src/postgres/start.js';

// A server that exits while starting (here: a setting it does not know) used to leave the start
// waiting forever for an exit it had already made: the bench then ended with status 0 and no word.
test('a PostgreSQL that exits while starting fails the start, with its own message', async () => {
  const dir = tempDir('pg-start');
  try {
    await expect(startPostgres(dir.path, ['-c', 'no_such_setting=1'])).rejects.toThrow(
      /did not start[\s\S]*unrecognized configuration parameter "no_such_setting"/,
    );
  } finally {
    dir.remove();
  }
});
