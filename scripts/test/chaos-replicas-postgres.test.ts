/**
 * The short form of the replica chaos drill, through the built CLI: two replicas on an embedded
 * PostgreSQL that the drill starts and stops itself, agents given both URLs, replicas SIGKILLed
 * one at a time and both at once, agents SIGKILLed, an SSE client moved to the other replica at
 * each kill of its own. The long form (10 000 commands) is for operators: see BENCHMARKS.md.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../../test-support/processes.js';

const CHAOS = join(REPO_ROOT, 'scripts/dist/chaos/main.js');
const dir = mkdtempSync(join(tmpdir(), 'chaos-replicas-test-'));
let passed = false;

afterAll(() => {
  if (passed) rmSync(dir, { recursive: true, force: true });
  else console.error(`replica chaos test failed: its report is kept in ${dir}`);
});

interface Report {
  passed: boolean;
  violations: unknown[];
  stats: Record<string, number>;
  kills: Array<{ target: string; replica: number }>;
  serverDeaths: Array<{ replica: number; by: string }>;
}

describe('chaos drill with replicas (short form)', () => {
  it('200 commands, 2 replicas on PostgreSQL, 4 replica kills (one of both at once) and 3 agent kills: every check holds', { timeout: 200_000 }, async () => {
    const json = join(dir, 'report.json');
    const args = ['--database', 'postgres', '--replicas', '2', '--commands', '200', '--server-kills', '4', '--agent-kills', '3', '--seed', '20261201', '--deadline-s', '150', '--quiet', '--json', json];
    const run = await new Promise<{ code: number; out: string }>((resolve) => {
      execFile(process.execPath, [CHAOS, ...args], { cwd: REPO_ROOT, timeout: 190_000 }, (err, stdout, stderr) => {
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, out: `${stdout}\n${stderr}` });
      });
    });
    expect(run.code, run.out).toBe(0);
    expect(run.out).toContain('PostgreSQL, 2 replica(s)');
    const report = JSON.parse(readFileSync(json, 'utf8')) as Report;
    const s = report.stats;
    expect(report.violations).toEqual([]);
    expect(s.stored).toBe(200);
    expect(s.notTerminal).toBe(0);
    // Both replicas were killed, and once both at once (5 deaths: 3 single + 2 together).
    expect(report.kills.some((k) => k.target === 'server' && k.replica === -1)).toBe(true);
    expect(new Set(report.serverDeaths.filter((d) => d.by === 'drill').map((d) => d.replica))).toEqual(new Set([0, 1]));
    expect(s.allReplicasDown).toBeGreaterThanOrEqual(1);
    // The SSE client had the whole log, and had to resume at least once to get it.
    expect(s.sseReceived).toBe(s.events);
    expect(s.sseResumes).toBeGreaterThanOrEqual(1);
    passed = true;
  });
});
