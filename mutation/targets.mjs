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
  store: {
    // The transitions and the event log (write, prune, list, claim, release, report): all of
    // sqlite.ts is 480 mutants, over an hour on this machine. `npm run mutate store-all` runs it whole.
    mutate: ['control-server/src/store/sqlite.ts:150-390'],
    tests: [
      'control-server/test/store-sqlite.test.ts',
      'control-server/test/store-conditions.test.ts',
      'control-server/test/store-sqlite-plans.test.ts',
      'control-server/test/retention.test.ts',
      'control-server/test/store-replays.test.ts',
    ],
    // Runs the store in worker threads, where Stryker's mutant switch does not reach: it cannot
    // kill a mutant and costs 4 s each.
    skip: 'from 4 threads',
  },
};

targets['store-all'] = { ...targets.store, mutate: ['control-server/src/store/sqlite.ts'] };

/** Names that stand for several targets, run one after another. */
export const groups = { sse: ['sse-session', 'sse-hub', 'sse-frame'] };
