/**
 * The rows of the peers table: each system's label and its modes' names. The labels name the
 * figures too (the JSON, the min/median/max table), so they stay the same from run to run.
 */

export const SYSTEMS = ['ours', 'bullmq', 'graphile-worker'] as const;
export type System = (typeof SYSTEMS)[number];
export type Mode = 'single' | 'batch';

export const LABEL = {
  full: 'ours, real agents (SQLite FULL)',
  normal: 'ours, real agents (SQLite NORMAL)',
  bullmq: 'BullMQ + Redis (AOF everysec)',
  graphile: 'graphile-worker + PostgreSQL (synchronous_commit on)',
} as const;
export type Row = keyof typeof LABEL;

export const MODE_LABEL: Record<Row, Record<Mode, string>> = {
  full: { single: 'single submit', batch: 'batch submit' },
  normal: { single: 'single submit', batch: 'batch submit' },
  bullmq: { single: 'add', batch: 'addBulk' },
  graphile: { single: 'addJob', batch: 'addJobs' },
};

export const rate = (row: Row, mode: Mode) => `${LABEL[row]}, ${MODE_LABEL[row][mode]}: completed/s`;
export const dispatch = (row: Row, p: 'p50' | 'p99') => `${LABEL[row]}: dispatch ${p}`;
export const ratio = (row: Row, peer: Row, mode: Mode) => `${LABEL[row]} / ${LABEL[peer]}, ${mode}: completed/s ratio`;
/** CPU per job: the queue server's (our control server, Redis, PostgreSQL) or the workers' (our agents). */
export const cpu = (row: Row, mode: Mode, part: 'server' | 'workers') =>
  `${LABEL[row]}, ${MODE_LABEL[row][mode]}: CPU per job, ${part === 'server' ? 'queue server' : 'workers'}`;
export const FSYNC = { p50: 'disk: write 4 KiB + fsync p50', p99: 'disk: write 4 KiB + fsync p99' };
