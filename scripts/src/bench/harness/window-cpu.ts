/**
 * The CPU each process spends inside a measured window, and the time it spent waiting for a CPU,
 * from `/proc/<pid>/task/<tid>/schedstat` (run time and run-queue wait, in nanoseconds, every
 * thread) read just before and just after each window. On a machine of two cores a chain of
 * processes (client → replica → PostgreSQL → replica → agent) is as fast as the CPU it burns in
 * the window: this says whose it is.
 */
import { closeSync, openSync, readdirSync, readFileSync, readSync } from 'node:fs';

/** One process and the role its CPU is counted under ("replica A", "PostgreSQL", …). */
export type Counted = [pid: number, role: string];

/** Per window, on average: CPU time and run-queue wait, in ms. */
export interface RoleCpu {
  cpuMs: number;
  waitMs: number;
}

/** What a measure's windows cost, by role and in all. */
export interface ChainCpu {
  roles: Record<string, RoleCpu>;
  all: RoleCpu;
}

export class WindowCpu {
  private readonly totals = new Map<string, { run: number; wait: number }>();
  private windows = 0;
  private opened: Array<{ role: string; pid: number; at: [number, number] }> = [];
  /**
   * Each process's threads' schedstat files, kept open and read again from offset 0 into one
   * buffer: a window's readings then cost the bench a few µs each, and no garbage (a fresh
   * open and string per file, ~140 per window, cost it ~3 ms and collections that could land in a
   * window). Threads are listed again every LIST_EVERY windows (Node starts some lazily).
   */
  private readonly files = new Map<number, { fds: number[]; listedAt: number }>();
  private readonly buffer = Buffer.alloc(256);

  /** `processes` is asked at each window's start: PostgreSQL opens backends as it goes. */
  constructor(private readonly processes: () => Counted[]) {}

  /** Just before the window. This process is read last, so reading the others is not in its window. */
  begin(): void {
    const counted = [...this.processes()].sort(([a], [b]) => Number(a === process.pid) - Number(b === process.pid));
    this.opened = counted.map(([pid, role]) => ({ role, pid, at: this.read(pid, true) }));
  }

  /** Just after the window; `counted` false drops it (a warm-up sample). This process is read first. */
  end(counted = true): void {
    const opened = this.opened.sort((a, b) => Number(b.pid === process.pid) - Number(a.pid === process.pid));
    const readings = opened.map((o) => ({ ...o, now: this.read(o.pid, false) }));
    this.opened = [];
    if (!counted) return;
    this.windows++;
    for (const { role, at, now } of readings) {
      const total = this.totals.get(role) ?? { run: 0, wait: 0 };
      total.run += Math.max(0, now[0] - at[0]);
      total.wait += Math.max(0, now[1] - at[1]);
      this.totals.set(role, total);
    }
  }

  /** Each role's CPU and wait per window, in the order roles were first seen; and their sum. */
  perWindow(): ChainCpu {
    const roles: Record<string, RoleCpu> = {};
    const all = { cpuMs: 0, waitMs: 0 };
    const n = Math.max(1, this.windows);
    for (const [role, { run, wait }] of this.totals) {
      roles[role] = { cpuMs: run / n / 1e6, waitMs: wait / n / 1e6 };
      all.cpuMs += roles[role].cpuMs;
      all.waitMs += roles[role].waitMs;
    }
    return { roles, all };
  }

  /** Closes the files kept open. */
  close(): void {
    for (const { fds } of this.files.values()) for (const fd of fds) closeSync(fd);
    this.files.clear();
  }

  /** Run time and run-queue wait of the process's threads, summed; a thread gone since counts nothing. */
  private read(pid: number, mayList: boolean): [number, number] {
    let files = this.files.get(pid);
    if (files === undefined || (mayList && this.windows - files.listedAt >= LIST_EVERY)) {
      for (const fd of files?.fds ?? []) closeSync(fd);
      files = { fds: openThreads(pid), listedAt: this.windows };
      this.files.set(pid, files);
    }
    let run = 0;
    let wait = 0;
    for (const fd of files.fds) {
      let length: number;
      try {
        length = readSync(fd, this.buffer, 0, this.buffer.length, 0);
      } catch {
        continue; // the thread exited
      }
      const [r, w] = this.buffer.toString('latin1', 0, length).split(' ');
      run += Number(r);
      wait += Number(w);
    }
    return [run, wait];
  }
}

const LIST_EVERY = 100;

/** An open schedstat file for each thread of the process (none once it is gone). */
function openThreads(pid: number): number[] {
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  const fds: number[] = [];
  for (const tid of tids) {
    try {
      fds.push(openSync(`/proc/${pid}/task/${tid}/schedstat`, 'r'));
    } catch {
      // exited meanwhile
    }
  }
  return fds;
}

/** A process's children (PostgreSQL's backends are the postmaster's); none once it is gone. */
export function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** One line: the sum, then each role as "replica A 1.81 (waited 0.86)", in ms. */
export function describeWindowCpu({ roles, all }: ChainCpu): string {
  const parts = Object.entries(roles).map(([role, r]) => `${role} ${r.cpuMs.toFixed(2)} (waited ${r.waitMs.toFixed(2)})`);
  return `CPU per dispatch ${all.cpuMs.toFixed(2)} ms, waiting for a CPU ${all.waitMs.toFixed(2)} ms: ${parts.join(', ')}`;
}

/**
 * The processes of a dispatch chain, by role: this process (the bench: the client and the target),
 * the replica submitted to, the one polled (one role, "server", when they are the same), the
 * agents, and PostgreSQL's backends when there is a postmaster.
 */
export function chainProcesses(o: { replicas: number[]; agents: number[]; postmaster?: number }): () => Counted[] {
  const { replicas, agents, postmaster } = o;
  const fixed: Counted[] = [[process.pid, 'bench'], ...agents.map((pid): Counted => [pid, 'agents'])];
  replicas.forEach((pid, i) => {
    const role = replicas.length === 1 ? 'server' : i === 0 ? 'replica A' : i === replicas.length - 1 ? 'replica B' : 'other replicas';
    fixed.push([pid, role]);
  });
  return () => (postmaster === undefined ? fixed : [...fixed, ...childPids(postmaster).map((pid): Counted => [pid, 'PostgreSQL'])]);
}
