/**
 * CPU time of a peer's server, from /proc: unlike a rate, it hardly depends on what else runs on
 * the machine. PostgreSQL is a postmaster and one process per connection, so its figure is the
 * postmaster, its live children, and the children it reaped (cutime + cstime) since.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { cpuSeconds } from '../harness/proc-stats.js';

const TICKS_PER_SECOND = 100;

function statFields(pid: number): string[] {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may hold spaces: count fields from the closing parenthesis.
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** utime + stime of `pid` and of every live child, plus what its reaped children used. */
export function processTreeCpuSeconds(pid: number): number {
  const own = statFields(pid);
  // Fields 16 and 17 of stat (cutime, cstime) are 13 and 14 here; USER_HZ is 100 on Linux.
  let total = cpuSeconds(pid) + (Number(own[13]) + Number(own[14])) / TICKS_PER_SECOND;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // Field 4 of stat, the parent's pid, is 1 here.
      if (Number(statFields(Number(entry))[1]) === pid) total += cpuSeconds(Number(entry));
    } catch {
      // Exited while we looked: its time is now in the parent's cutime.
    }
  }
  return total;
}
