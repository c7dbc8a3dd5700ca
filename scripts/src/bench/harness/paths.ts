import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root, from scripts/dist/bench/harness/. */
export const REPO_ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
/** BENCH_SERVER_MAIN runs another build of the server (an A/B comparison); the default is this one. */
export const SERVER_MAIN = process.env.BENCH_SERVER_MAIN ?? join(REPO_ROOT, 'control-server/dist/main.js');
/** BENCH_AGENT_MAIN, likewise, another build of the agent (throughput's --agent-main overrides both). */
export const AGENT_MAIN = process.env.BENCH_AGENT_MAIN ?? join(REPO_ROOT, 'agent/dist/main.js');
export const DEFAULT_OUT_DIR = join(REPO_ROOT, 'bench-results');

/** A worker entry of the bench (scripts/dist/bench/workers/<name>.js). */
export function workerMain(name: string): string {
  return fileURLToPath(new URL(`../workers/${name}.js`, import.meta.url));
}
