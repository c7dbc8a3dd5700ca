/**
 * The answer serializer writes remembered commands as their event row's JSON and everything else
 * as JSON.stringify would: the same bytes either way.
 */
import { expect, test } from 'vitest';
import { stringifyAnswer } from '../src/answer-json.js';
import { rememberJson, submitted } from '../src/store/command-json.js';
import { newCommandRow, claimedRow } from '../src/store/transitions.js';
import { rowToCommand, withLease } from '../src/store/command-rows.js';

test('plain data: the bytes of JSON.stringify, undefined and functions left out as it does', () => {
  const values: unknown[] = [
    null,
    0,
    'é "q" \u2028 \\',
    [1, undefined, () => 1, 'x', null],
    { a: 1, b: undefined, c: () => 1, d: [{ e: { f: { g: { h: [1, 2] } } } }], 'k "q"': true },
    { when: new Date(0), nested: { toJSON: () => 'custom' } },
    Object.assign(Object.create(null) as object, { x: 1 }),
    { results: [{ id: 'a', statusCode: 409, message: 'm' }], commands: [] },
  ];
  for (const value of values) expect(stringifyAnswer(value)).toBe(JSON.stringify(value));
  expect(stringifyAnswer(undefined)).toBe('null');
});

test('a remembered command is written as its remembered JSON, wherever it sits in the answer', () => {
  const command = rowToCommand(newCommandRow({ type: 'DELAY', payload: { ms: 1 } }, Date.now(), null, null));
  // A marker that JSON.stringify of the object could not produce shows the text was used.
  rememberJson(command, '{"remembered":true}');
  expect(stringifyAnswer({ success: true, command })).toBe('{"success":true,"command":{"remembered":true}}');
  expect(stringifyAnswer({ commands: [command, command] })).toBe('{"commands":[{"remembered":true},{"remembered":true}]}');
  // A new object made from it (a route adding a field) is not the remembered one.
  expect(stringifyAnswer({ ...command, waitingFor: { reason: 'agent' } })).toBe(JSON.stringify({ ...command, waitingFor: { reason: 'agent' } }));
});

test('a claimed command is its command JSON with the lease id added: the bytes of JSON.stringify', () => {
  const now = Date.now();
  const row = claimedRow(newCommandRow({ type: 'DELAY', payload: { ms: 1 } }, now, null, null), 'agent-1', 'lease-1', now, 30_000);
  const command = rowToCommand(row);
  rememberJson(command, JSON.stringify(command));
  const claimed = withLease(command, row);
  expect(stringifyAnswer({ commands: [claimed] })).toBe(JSON.stringify({ commands: [claimed] }));
  expect(stringifyAnswer(claimed)).toBe(JSON.stringify(claimed));

  const marked = rowToCommand(row);
  rememberJson(marked, '{"remembered":true}');
  expect(stringifyAnswer(withLease(marked, row))).toBe('{"remembered":true,"leaseId":"lease-1"}');
});

test('a submit answer is its command JSON with commandId first: the bytes of JSON.stringify', () => {
  const command = rowToCommand(newCommandRow({ type: 'DELAY', payload: { ms: 1 } }, Date.now(), null, null));
  rememberJson(command, JSON.stringify(command));
  const answer = submitted(command);
  expect(stringifyAnswer(answer)).toBe(JSON.stringify({ commandId: command.id, ...command }));
  const marked = rowToCommand(newCommandRow({ type: 'DELAY', payload: { ms: 1 } }, Date.now(), null, null));
  rememberJson(marked, '{"remembered":true}');
  expect(stringifyAnswer({ commands: [submitted(marked)] })).toBe(`{"commands":[{"commandId":"${marked.id}","remembered":true}]}`);
  // Not remembered (an idempotent replay reads the row): JSON.stringify's bytes.
  const replayed = rowToCommand(newCommandRow({ type: 'DELAY', payload: { ms: 2 } }, Date.now(), null, null));
  expect(stringifyAnswer(submitted(replayed))).toBe(JSON.stringify({ commandId: replayed.id, ...replayed }));
});
