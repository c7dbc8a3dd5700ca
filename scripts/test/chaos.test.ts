/**
 * The short form of the chaos drill, through the built CLI (`node scripts/dist/chaos/main.js`):
 * real server and agents, real SIGKILLs, a counting target as witness. It must pass, and its
 * JSON report must show that the kills really happened and every command is accounted for.
 * The long form (10 000 commands, 20 + 20 kills) is for operators: see the README.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../../test-support/processes.js';

const CHAOS = join(REPO_ROOT, 'scripts/dist/chaos/main.js');
const dir = mkdtempSync(join(tmpdir(), 'chaos-test-'));
let passed = false;

afterAll(() => {
  if (passed) rmSync(dir, { recursive: true, force: true });
  else console.error(`chaos test failed: its report is kept in ${dir}`);
});

interface Report {
  passed: boolean;
  seed: number;
  violations: unknown[];
  gaveUp: string | null;
  stats: Record<string, number>;
  kills: Array<{ target: string }>;
}

function chaos(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CHAOS, ...args], { cwd: REPO_ROOT, timeout: 150_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

describe('chaos drill (short form)', () => {
  it('300 commands, 3 agents, 3 server kills and 3 agent kills: every guarantee holds', { timeout: 160_000 }, async () => {
    const json = join(dir, 'report.json');
    const run = await chaos(['--commands', '300', '--agents', '3', '--server-kills', '3', '--agent-kills', '3', '--seed', '20261124', '--deadline-s', '120', '--quiet', '--json', json]);
    expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(0);
    expect(run.stdout).toContain('PASS: every check held');
    const report = JSON.parse(readFileSync(json, 'utf8')) as Report;
    const s = report.stats;
    expect(report.passed).toBe(true);
    expect(report.violations).toEqual([]);
    expect(report.gaveUp).toBeNull();
    expect(report.seed).toBe(20261124);
    // Every command acknowledged once, stored once, and finished.
    expect(s.submitted).toBe(300);
    expect((s.created ?? 0) + (s.replayed ?? 0)).toBe(300);
    expect(s.stored).toBe(300);
    expect(s.lost).toBe(0);
    expect(s.notTerminal).toBe(0);
    expect((s.completed ?? 0) + (s.failed ?? 0)).toBe(300);
    // The kills happened, and the witness saw every HTTP command at least once.
    expect(report.kills.filter((k) => k.target === 'server')).toHaveLength(3);
    expect(s.serverKills).toBe(3);
    expect(s.agentKillsByDrill).toBe(3);
    expect(s.witnessedExecutions).toBeGreaterThanOrEqual(s.httpCommands ?? 0);
    expect(s.extraExecutions).toBeLessThanOrEqual((s.attemptsCutOff ?? 0) + (s.reportsCutOffPastLease ?? 0));
    passed = true;
  });

  it('a bad option stops it with the usage and exit code 2', async () => {
    const run = await chaos(['--commands', 'many']);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/--commands=many: expected an integer/);
    expect(run.stderr).toMatch(/usage: npm run chaos/);
  });
});
