/**
 * Seeded randomness: every random choice of a drill (its commands, its kill schedule, the
 * target's response delays, the agents' own --seed) derives from the one --seed, so a run that
 * failed can be replayed with the same schedule.
 */

import { mulberry32 } from '@agent-executor/common/seeded-random';

export type Random = () => number;

export { mulberry32 };

/**
 * A stable 31-bit seed for one purpose (`derive(42, 'agent', 2, 7)`), so streams for different
 * purposes do not share a sequence and adding a draw to one does not shift the others.
 */
export function derive(seed: number, ...parts: Array<string | number>): number {
  let h = 0x811c9dc5 ^ (seed >>> 0);
  for (const ch of parts.join('/')) {
    h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193) >>> 0;
  }
  // One more mixing round so that nearby inputs give unrelated seeds.
  h = Math.imul(h ^ (h >>> 16), 0x45d9f3b) >>> 0;
  return (h ^ (h >>> 16)) & 0x7fffffff;
}

export function intBetween(random: Random, min: number, max: number): number {
  return min + Math.floor(random() * (max - min + 1));
}
