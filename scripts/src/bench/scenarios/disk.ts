/**
 * disk: what one durable commit costs on this machine, the floor under every write the server
 * answers. A SQLite file in WAL mode (as the server opens it) commits one small row at a time
 * with synchronous=FULL (shipped) and NORMAL, beside a raw write + fdatasync. The file lives in
 * os.tmpdir(), where the other scenarios keep their databases.
 */
import { closeSync, fdatasyncSync, openSync, writeSync } from 'node:fs';
import Database from 'better-sqlite3';
import type { Figure, RunResult } from '../harness/report.js';
import { tempDir } from '../harness/processes.js';
import type { Scenario } from '../harness/scenario.js';
import { distribution, type Distribution } from '../harness/stats.js';

function sqliteCommits(path: string, synchronous: 'FULL' | 'NORMAL', n: number): Distribution {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${synchronous}`);
  db.exec('CREATE TABLE t (x TEXT)');
  const insert = db.prepare('INSERT INTO t VALUES (?)');
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    insert.run('x'.repeat(200));
    samples.push(performance.now() - t0);
  }
  db.close();
  return distribution(samples);
}

function fdatasyncs(path: string, n: number): Distribution {
  const fd = openSync(path, 'w');
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    writeSync(fd, 'x'.repeat(200));
    const t0 = performance.now();
    fdatasyncSync(fd);
    samples.push(performance.now() - t0);
  }
  closeSync(fd);
  return distribution(samples);
}

export const disk: Scenario = {
  name: 'disk',
  summary: 'one durable commit: SQLite WAL synchronous=FULL vs NORMAL, and fdatasync',
  defaultRuns: 3,
  options: { commits: { type: 'string', default: '500', description: 'commits per measure' } },
  async run(o): Promise<RunResult> {
    const n = o.num('commits');
    const dir = tempDir('disk');
    try {
      const full = sqliteCommits(`${dir.path}/full.db`, 'FULL', n);
      const normal = sqliteCommits(`${dir.path}/normal.db`, 'NORMAL', n);
      const sync = fdatasyncs(`${dir.path}/raw`, n);
      const figures: Figure[] = [
        { name: 'SQLite commit, synchronous=FULL: p50', value: full.p50, unit: 'ms' },
        { name: 'SQLite commit, synchronous=FULL: p99', value: full.p99, unit: 'ms' },
        { name: 'SQLite commit, synchronous=NORMAL: p50', value: normal.p50, unit: 'ms' },
        { name: 'SQLite commit, synchronous=NORMAL: p99', value: normal.p99, unit: 'ms' },
        { name: 'write + fdatasync: p50', value: sync.p50, unit: 'ms' },
        { name: 'write + fdatasync: p99', value: sync.p99, unit: 'ms' },
      ];
      return { figures, details: { full, normal, fdatasync: sync } };
    } finally {
      dir.remove();
    }
  },
};
