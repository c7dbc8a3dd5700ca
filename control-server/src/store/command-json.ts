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
 * The answer of a submit (SubmittedCommand): `{ commandId, ...command }`, remembered as the
 * command's JSON with `commandId` put first, which is where JSON.stringify puts it.
 */
export function submitted(command: Command): Command & { commandId: string } {
  const answer = { commandId: command.id, ...command };
  const json = logged.get(command);
  if (json !== undefined) logged.set(answer, `{"commandId":${JSON.stringify(command.id)},${json.slice(1)}`);
  return answer;
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
