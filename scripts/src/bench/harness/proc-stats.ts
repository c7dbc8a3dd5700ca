/** Readings of another process from /proc (Linux): resident memory and CPU time consumed. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** VmRSS of a process, in KiB. */
export function rssKiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
  if (!match?.[1]) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(match[1]);
}

let clockTicks: number | undefined;
function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** utime + stime of a process (all its threads), in seconds. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may hold spaces: count fields from the closing parenthesis.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return (utime + stime) / ticksPerSecond();
}

/** Measures a process's CPU over a time window: the total and each second's share. */
export async function sampleCpu(pid: number, seconds: number): Promise<{ percent: number; cpuSeconds: number; perSecond: number[] }> {
  const perSecond: number[] = [];
  const startCpu = cpuSeconds(pid);
  const startAt = performance.now();
  let lastCpu = startCpu;
  let lastAt = startAt;
  for (let i = 0; i < seconds; i++) {
    await new Promise((r) => setTimeout(r, 1000));
    const cpu = cpuSeconds(pid);
    const at = performance.now();
    perSecond.push(((cpu - lastCpu) / ((at - lastAt) / 1000)) * 100);
    lastCpu = cpu;
    lastAt = at;
  }
  const used = lastCpu - startCpu;
  return { percent: (used / ((lastAt - startAt) / 1000)) * 100, cpuSeconds: used, perSecond };
}
