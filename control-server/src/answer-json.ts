import { rememberedJson } from './store/command-json.js';

/**
 * The serializer of every JSON answer: JSON.stringify's bytes, except that a command the store
 * answered with is written as the JSON its event row already holds (store/command-json.ts)
 * instead of being serialised again. Answers nest commands at most a few levels deep (a claim
 * batch, a result, a batch of results), so only arrays and plain objects are walked, and only
 * this deep; anything else goes to JSON.stringify whole.
 */
export function stringifyAnswer(value: unknown): string {
  return walk(value, MAX_DEPTH) ?? 'null';
}

const MAX_DEPTH = 4;

/** undefined where JSON.stringify leaves the value out (undefined, a function, a symbol). */
function walk(value: unknown, depth: number): string | undefined {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  const remembered = rememberedJson(value);
  if (remembered !== undefined) return remembered;
  if (depth === 0) return JSON.stringify(value);
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++) out += `${i === 0 ? '' : ','}${walk(value[i], depth - 1) ?? 'null'}`;
    return `${out}]`;
  }
  // A class instance, or an object with its own toJSON: JSON.stringify knows what to do.
  if (Object.getPrototypeOf(value) !== Object.prototype || typeof (value as { toJSON?: unknown }).toJSON === 'function') {
    return JSON.stringify(value);
  }
  let out = '{';
  let first = true;
  for (const key of Object.keys(value)) {
    const json = walk((value as Record<string, unknown>)[key], depth - 1);
    if (json === undefined) continue;
    out += `${first ? '' : ','}${JSON.stringify(key)}:${json}`;
    first = false;
  }
  return `${out}}`;
}
