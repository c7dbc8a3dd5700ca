/**
 * Child processes of a drill: the shared helper (`@agent-executor/common/processes`, also used by
 * the tests and the bench), with a short output tail and each line handed to a listener.
 */
import { spawnNode as spawnShared, type Started } from '@agent-executor/common/processes';

export { installExitHandlers, stopAll } from '@agent-executor/common/processes';
export type Child = Started;

export function spawnNode(
  name: string,
  script: string,
  args: string[],
  env: Record<string, string>,
  onLine: (line: string) => void = () => {},
): Child {
  return spawnShared(name, script, args, { env, onLine, tailBytes: 32 * 1024 });
}
