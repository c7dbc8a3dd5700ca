import { spawn, type ChildProcess } from 'node:child_process';
import { afterEach, expect, test } from 'vitest';
import { WindowCpu, childPids } from '../src/bench/harness/window-cpu.js';

const children: ChildProcess[] = [];
afterEach(() => {
  for (const child of children.splice(0)) child.kill('SIGKILL');
});

/**
 * A child that burns `ms` of its own CPU time (however long a loaded machine makes that take) each
 * time it reads a number, then answers "done"; `ready` once it listens.
 */
function spinner(): { child: ChildProcess; ready: Promise<void>; spin: (ms: number) => Promise<void> } {
  const child = spawn(process.execPath, [
    '-e',
    `const used = (s) => { const u = process.cpuUsage(s); return (u.user + u.system) / 1000; };
     process.stdin.on('data', (d) => { const s = process.cpuUsage(); while (used(s) < Number(d)); process.stdout.write('done'); });
     process.stdout.write('ready');`,
  ]);
  children.push(child);
  const next = () => new Promise<void>((resolve) => child.stdout!.once('data', () => resolve()));
  return { child, ready: next(), spin: async (ms) => { const answered = next(); child.stdin!.write(String(ms)); await answered; } };
}

test('counts the CPU each process burns inside a window, by role, and drops a window not counted', async () => {
  const busy = spinner();
  const idle = spinner();
  await Promise.all([busy.ready, idle.ready]);
  const cpu = new WindowCpu(() => [[busy.child.pid!, 'busy'], [idle.child.pid!, 'idle']]);
  // Not counted: a warm-up window that burns a lot.
  cpu.begin();
  await busy.spin(600);
  cpu.end(false);
  for (let i = 0; i < 3; i++) {
    cpu.begin();
    await busy.spin(60);
    cpu.end();
  }
  const { roles, all } = cpu.perWindow();
  cpu.close();
  expect(roles.busy!.cpuMs).toBeGreaterThan(40);
  expect(roles.busy!.cpuMs).toBeLessThan(120);
  expect(roles.idle!.cpuMs).toBeLessThan(10);
  expect(all.cpuMs).toBeCloseTo(roles.busy!.cpuMs + roles.idle!.cpuMs, 6);
});

test('childPids lists a process\'s children', async () => {
  const { child, ready } = spinner();
  await ready;
  expect(childPids(process.pid)).toContain(child.pid);
});
