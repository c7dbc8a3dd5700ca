/**
 * The floor under a durable commit on this disk: a small write + fsync, in the directory that
 * holds the run's databases. Figures at FULL durability (SQLite FULL, PostgreSQL's synchronous
 * commit) are read against it.
 */
import { closeSync, fsyncSync, openSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { distribution, type Distribution } from '../harness/stats.js';

export function fsyncTimes(dir: string, n: number): Distribution {
  const path = join(dir, 'fsync-probe');
  const fd = openSync(path, 'w');
  const page = Buffer.alloc(4096, 'x');
  const samples: number[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      writeSync(fd, page, 0, page.length, (i % 16) * page.length);
      fsyncSync(fd);
      samples.push(performance.now() - t0);
    }
  } finally {
    closeSync(fd);
    rmSync(path, { force: true });
  }
  return distribution(samples);
}
