/**
 * `onAbort(signal, fn)`: `fn` runs when `signal` aborts (at once if it has), until the returned
 * function is called. One 'abort' listener per signal, whatever the number of callbacks: adding and
 * removing an EventTarget listener for each command cost more than running a DELAY 0 (every
 * running attempt listens to the agent's shutdown signal).
 */
const fanouts = new WeakMap<AbortSignal, Set<() => void>>();

export function onAbort(signal: AbortSignal, fn: () => void): () => void {
  if (signal.aborted) {
    fn();
    return () => {};
  }
  let callbacks = fanouts.get(signal);
  if (!callbacks) {
    const all = new Set<() => void>();
    callbacks = all;
    fanouts.set(signal, all);
    signal.addEventListener('abort', () => {
      for (const callback of [...all]) callback();
      all.clear();
    }, { once: true });
  }
  const entry = () => fn();
  callbacks.add(entry);
  const set = callbacks;
  return () => set.delete(entry);
}
