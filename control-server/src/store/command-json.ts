import type { ClaimedCommand, Command } from '@agent-executor/common';

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

/** The remembered JSON of `value`, if a store remembered it. */
export function rememberedJson(value: object): string | undefined {
  return logged.get(value as Command);
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

/**
 * Remembers the JSON of a claimed command, made from its command's: `{ ...command, leaseId,
 * leaseExpiresAt }` keeps the command's keys in their order (leaseExpiresAt is one of them, with
 * the same value) and adds leaseId last.
 */
export function rememberClaimedJson(claimed: ClaimedCommand, command: Command): void {
  const json = logged.get(command);
  if (json === undefined) return;
  logged.set(claimed, `${json.slice(0, -1)},"leaseId":${JSON.stringify(claimed.leaseId)}}`);
}
