/**
 * Child processes of a bench run: the shared helper (`@agent-executor/common/processes`, also
 * used by the tests and the chaos drill) with a bench's output tail, plus the bench's temp dirs.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnNode as spawnShared, type SpawnOptions, type Started } from '@agent-executor/common/processes';

export { freePort, installExitHandlers, killAllSync, sleep, stopAll, waitUntil } from '@agent-executor/common/processes';
export type { SpawnOptions, Started };

/** A bench run is long: keep the last 64 KiB of each process's output, for error messages. */
export function spawnNode(name: string, script: string, args: string[], options: SpawnOptions = {}): Started {
  return spawnShared(name, script, args, { tailBytes: 65_536, ...options });
}

/** A temp dir under os.tmpdir(); `remove()` is safe to call twice. */
export function tempDir(prefix: string): { path: string; remove: () => void } {
  const path = mkdtempSync(join(tmpdir(), `ae-bench-${prefix}-`));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}
