// HEALTHCHECK of the agent image. What it checks, honestly: the agent process
// (`node agent/dist/main.js`) exists and is neither a zombie nor stopped, and it has created its
// idempotency database (the agent opens it before its first poll). It does NOT prove the agent is
// making progress: an agent stuck inside a poll would still pass. The agent has no liveness endpoint.
import { accessSync, readdirSync, readFileSync } from 'node:fs';

const ENTRY = ['agent', 'dist', 'main.js'].join('/'); // built at run time, so this script's own argv never matches

function agentRunning() {
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      if (!argv.some((arg) => arg.endsWith(ENTRY))) continue;
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
      if (!['Z', 'X', 'T', 't'].includes(state)) return true;
    } catch {
      // the process ended while we looked
    }
  }
  return false;
}

if (!agentRunning()) {
  console.error(`unhealthy: no running ${ENTRY} process`);
  process.exit(1);
}
const db = process.env.IDEMPOTENCY_DB_PATH;
if (!db) {
  console.error('unhealthy: IDEMPOTENCY_DB_PATH is not set');
  process.exit(1);
}
try {
  accessSync(db);
} catch {
  console.error(`unhealthy: the agent has not opened its database ${db} yet`);
  process.exit(1);
}
