import type { EventEmitter } from 'node:events';

/**
 * Calls every listener of `event`, each in its own try: after a commit nothing may turn the write
 * into an error (a client told "500" would submit again), so a listener that throws is reported
 * through `onError` and the others still hear the event. Used by both stores.
 */
export function emitToEach(emitter: EventEmitter, event: string, args: readonly unknown[], onError: (error: unknown) => void): void {
  for (const listener of emitter.listeners(event) as Array<(...args: unknown[]) => void>) {
    try {
      listener(...args);
    } catch (error) {
      onError(error);
    }
  }
}
