import type { Command } from '@agent-executor/common';

/**
 * The JSON the event log stored for a command object a transition answered with. A transition
 * serialises the command once, for its event row (which SSE sends as is); an answer that carries
 * the same object reuses that text instead of serialising it again. Keyed by the object itself:
 * commands are never changed after a store hands them out (routes that add a field make a new
 * object, which is not found here and is serialised as usual).
 */
const logged = new WeakMap<Command, string>();

export function rememberJson(command: Command, json: string): void {
  logged.set(command, json);
}

/** `command` as JSON: the event log's text when it made it, else JSON.stringify's (same bytes). */
export function commandJson(command: Command): string {
  return logged.get(command) ?? JSON.stringify(command);
}

/**
 * JSON.stringify({ commandId: command.id, ...command }) (SubmittedCommand), from the command's
 * JSON: `commandId` first, then the command's own fields in their order.
 */
export function submittedJson(command: Command): string {
  return `{"commandId":${JSON.stringify(command.id)},${commandJson(command).slice(1)}`;
}
