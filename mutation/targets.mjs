/**
 * What `npm run mutate` mutates, and the test files that exercise each file in-process.
 * Tests that start the built dist/ entry points are left out: they run the unmutated build, so
 * they cannot kill a mutant and would only make each run slower.
 */
const SSE_SKIP = 'real process|200 concurrent|200 clients';

export const targets = {
  'group-commit': {
    mutate: ['common/src/group-commit.ts'],
    tests: ['agent/test/group-commit.test.ts', 'common/test/group-commit.test.ts'],
  },
  outbox: {
    mutate: ['agent/src/outbox.ts'],
    tests: [
      'agent/test/outbox.test.ts',
      'agent/test/outbox-replays.test.ts',
      'agent/test/group-commit.test.ts',
      'agent/test/batching.test.ts',
      'agent/test/result-too-large.test.ts',
    ],
  },
  reporter: {
    mutate: ['agent/src/reporter.ts'],
    tests: ['agent/test/reporter.test.ts'],
  },
  'lease-reaper': {
    mutate: ['control-server/src/lease-reaper.ts'],
    tests: ['control-server/test/lease-reaper.test.ts', 'control-server/test/clock-jump.test.ts', 'control-server/test/routes.test.ts'],
  },
  // SSE, one file per target: each can be run (and re-run, from its own incremental file) alone,
  // with only the tests that reach it. `npm run mutate sse` runs the three, one after another.
  // Skipped: real-process tests (they run the dist build, not the mutant) and the 200-client ones
  // (seconds each, and they kill nothing the others do not).
  'sse-session': {
    mutate: ['control-server/src/sse/session.ts'],
    tests: ['control-server/test/sse.test.ts'],
    skip: SSE_SKIP,
  },
  'sse-hub': {
    mutate: ['control-server/src/sse/hub.ts'],
    tests: ['control-server/test/sse-hub.test.ts', 'control-server/test/sse.test.ts'],
    skip: SSE_SKIP,
  },
  'sse-frame': {
    mutate: ['control-server/src/sse/frame.ts'],
    tests: ['control-server/test/sse-frames.test.ts', 'control-server/test/sse.test.ts'],
    skip: SSE_SKIP,
  },
  'long-poll': {
    mutate: ['control-server/src/long-poll.ts'],
    tests: ['control-server/test/long-poll.test.ts', 'control-server/test/long-poll-interleavings.test.ts'],
  },
};

/**
 * The SQLite store, file by file (issue #11). The PostgreSQL store (postgres*.ts) is not mutated:
 * its tests start an embedded PostgreSQL, minutes per run on this machine.
 * Every target runs the in-process store tests on real SQLite files; the shared transition
 * helpers (transitions.ts, event-log.ts …) are exercised by the same tests. retention.test.ts is
 * left out: its timer tests wait in real time (4 s in all) and reach the store only through the
 * calls the contract's retention tests make.
 */
const sqliteStoreTests = [
  // Quick, pointed tests first: the run bails at the first failure (mutation/vitest.config.ts).
  'control-server/test/store-shared-helpers.test.ts',
  'control-server/test/store-sqlite-refusals.test.ts',
  'control-server/test/store-sqlite-lifecycle.test.ts',
  'control-server/test/store-sqlite-wakeups.test.ts',
  'control-server/test/store-sqlite-key-slots.test.ts',
  'control-server/test/store-sqlite-fleet.test.ts',
  'control-server/test/store-replays.test.ts',
  'control-server/test/store-sqlite.test.ts',
  'control-server/test/store-conditions.test.ts',
  'control-server/test/store-sqlite-plans.test.ts',
  'control-server/test/store-sqlite-routing.test.ts',
];
// The store run in worker threads (the dist build, where Stryker's mutant switch does not reach):
// they cannot kill a mutant and cost 3-5 s each.
const storeSkip = '4 threads';
Object.assign(targets, {
  store: { mutate: ['control-server/src/store/sqlite.ts'], tests: sqliteStoreTests, skip: storeSkip },
  'store-transitions': {
    mutate: ['control-server/src/store/transitions.ts', 'control-server/src/store/backoff.ts'],
    tests: sqliteStoreTests,
    skip: storeSkip,
  },
  'store-event-log': {
    mutate: ['control-server/src/store/event-log.ts', 'control-server/src/store/status-counts.ts', 'control-server/src/store/listeners.ts'],
    tests: sqliteStoreTests,
    skip: storeSkip,
  },
  'store-rows': {
    mutate: ['control-server/src/store/command-rows.ts', 'control-server/src/store/claim-route.ts'],
    tests: sqliteStoreTests,
    skip: storeSkip,
  },
  'store-routing': {
    mutate: ['control-server/src/store/sqlite-routing.ts'],
    tests: [...sqliteStoreTests, 'control-server/test/routing-routes.test.ts'],
    skip: storeSkip,
  },
  'store-agents': {
    mutate: ['control-server/src/store/sqlite-agents.ts'],
    tests: [...sqliteStoreTests, 'control-server/test/routing-routes.test.ts'],
    skip: storeSkip,
  },
  'store-statements': {
    mutate: ['control-server/src/store/sqlite-statements.ts', 'control-server/src/store/migrate-sqlite.ts'],
    tests: sqliteStoreTests,
    skip: storeSkip,
  },
});

/** Names that stand for several targets, run one after another. */
export const groups = { sse: ['sse-session', 'sse-hub', 'sse-frame'] };
