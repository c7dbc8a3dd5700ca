/**
 * How deeply a reported result may nest. JSON.stringify recurses: a result nested a few thousand
 * levels deep (well within 1 MiB) would overflow the stack while it is measured or stored. No real
 * result nests this deep. The server refuses deeper results (400); the agent cuts them down
 * before reporting. (The size limit is MAX_RESULT_BYTES, in requests.ts.)
 */
export const MAX_RESULT_DEPTH = 1000;

/** How deeply a parsed JSON value nests (a scalar is 0), measured without recursion. */
export function jsonDepth(value: unknown): number {
  let deepest = 0;
  const pending: Array<[unknown, number]> = [[value, 0]];
  for (let item = pending.pop(); item; item = pending.pop()) {
    const [node, depth] = item;
    if (node === null || typeof node !== 'object') continue;
    deepest = Math.max(deepest, depth + 1);
    for (const child of Object.values(node)) pending.push([child, depth + 1]);
  }
  return deepest;
}
