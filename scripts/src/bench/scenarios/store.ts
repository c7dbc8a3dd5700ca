/**
 * store: what the SQLite store alone costs per command, in this process, without HTTP — the floor
 * under the server's CPU per command. N DELAY 0 commands are submitted `--in-flight` at a time
 * (group commit shares their commits, as concurrent POSTs do), then claimed `--claim-batch` at a
 * time by `--agents` claimers, each batch reported (one write per report, as the server does);
 * CPU from process.cpuUsage() around each phase.
 */
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { REPO_ROOT } from '../harness/paths.js';
import { tempDir } from '../harness/processes.js';
import type { Figure, RunResult } from '../harness/report.js';
import { SQLITE_SYNC_OPTION, sqliteSync, type Scenario } from '../harness/scenario.js';

/** The part of the control server's SqliteCommandStore this scenario drives. */
interface Store {
  submit(body: { type: string; payload: unknown }): Promise<unknown>;
  claimBatch(agentId: string, leaseMs: number, max: number): Promise<Array<{ id: string; leaseId: string }>>;
  report(id: string, body: { agentId: string; leaseId: string; result: unknown }): Promise<unknown>;
  close(): Promise<void>;
}
type StoreClass = new (options: { path: string; synchronous: 'FULL' | 'NORMAL' }) => Store;

function cpuMicros(since: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(since);
  return used.user + used.system;
}

export const store: Scenario = {
  name: 'store',
  summary: 'the SQLite store alone, in-process: CPU per command for submit, claim and report (no HTTP)',
  defaultRuns: 3,
  options: {
    commands: { type: 'string', default: '20000', description: 'commands per run' },
    'in-flight': { type: 'string', default: '32', description: 'submits in flight (they share group commits)' },
    agents: { type: 'string', default: '2', description: 'claimers, each claiming a batch and reporting it before the next' },
    'claim-batch': { type: 'string', default: '8', description: 'commands per claim (an agent of CONCURRENCY 8)' },
    'sqlite-sync': SQLITE_SYNC_OPTION,
  },
  async run(o): Promise<RunResult> {
    const n = o.num('commands');
    const synchronous = sqliteSync(o).sqliteSync === 'normal' ? 'NORMAL' : 'FULL';
    const url = pathToFileURL(join(REPO_ROOT, 'control-server/dist/store/sqlite.js')).href;
    const { SqliteCommandStore } = (await import(url)) as { SqliteCommandStore: StoreClass };
    const dir = tempDir('store');
    const db = new SqliteCommandStore({ path: join(dir.path, 'commands.db'), synchronous });
    try {
      let submitted = 0;
      const submitCpu = process.cpuUsage();
      await Promise.all(
        Array.from({ length: o.num('in-flight') }, async () => {
          while (submitted < n) {
            submitted++;
            await db.submit({ type: 'DELAY', payload: { ms: 0 } });
          }
        }),
      );
      const submitUs = cpuMicros(submitCpu) / n;
      let finished = 0;
      const runCpu = process.cpuUsage();
      await Promise.all(
        Array.from({ length: o.num('agents') }, async (_, a) => {
          const agentId = `bench-agent-${a}`;
          for (;;) {
            const claimed = await db.claimBatch(agentId, 60_000, o.num('claim-batch'));
            if (claimed.length === 0) return;
            await Promise.all(claimed.map((c) => db.report(c.id, { agentId, leaseId: c.leaseId, result: { ok: true, tookMs: 0 } })));
            finished += claimed.length;
          }
        }),
      );
      if (finished !== n) throw new Error(`${finished} of ${n} commands claimed and reported`);
      const claimReportUs = cpuMicros(runCpu) / n;
      const figures: Figure[] = [
        { name: `submit: store CPU per command [${synchronous}]`, value: submitUs, unit: 'µs' },
        { name: `claim + report: store CPU per command [${synchronous}]`, value: claimReportUs, unit: 'µs' },
        { name: `all three: store CPU per command [${synchronous}]`, value: submitUs + claimReportUs, unit: 'µs' },
      ];
      console.log(`  ${n} commands [${synchronous}]: store CPU per command: submit ${submitUs.toFixed(1)} µs, claim + report ${claimReportUs.toFixed(1)} µs`);
      return { figures, details: { commands: n, synchronous } };
    } finally {
      await db.close();
      dir.remove();
    }
  },
};
