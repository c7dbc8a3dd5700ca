import { ApiError, post } from '../api.js';
import { h } from '../dom.js';
import type { Page } from '../main.js';
import type { Command } from '../types.js';

interface FieldSpec {
  /** Where the value goes in the body, as the API names it in a 400's `issues` (`payload.ms`). */
  path: string;
  label: string;
  kind: 'integer' | 'text';
  hint: string;
  initial?: string;
}

const COMMON: FieldSpec[] = [
  { path: 'maxAttempts', label: 'Max attempts', kind: 'integer', hint: '1–20; default 3' },
  { path: 'timeoutMs', label: 'Timeout (ms)', kind: 'integer', hint: 'default: the delay + 30 s, or 30 s' },
  { path: 'queue', label: 'Queue', kind: 'text', hint: 'default "default" (servers with routing)' },
  { path: 'priority', label: 'Priority', kind: 'integer', hint: '−100…100, default 0 (servers with routing)' },
];

const FORMS: Record<Command['type'], FieldSpec[]> = {
  DELAY: [{ path: 'payload.ms', label: 'Delay (ms)', kind: 'integer', hint: '0 to 86 400 000 ms (24 h)', initial: '5000' }, ...COMMON],
  HTTP_GET_JSON: [{ path: 'payload.url', label: 'URL', kind: 'text', hint: 'an absolute http(s) URL answering JSON', initial: 'https://' }, ...COMMON],
};

/**
 * A form per command type. Validation is the API's: the form sends what was typed (empty fields
 * left out) and shows each of a 400's `issues` beside the field it names.
 */
export const submitPage: Page = (main) => {
  const typeSelect = h('select', { id: 'type', name: 'type' }, ...Object.keys(FORMS).map((t) => h('option', { value: t }, t)));
  const fields = h('div', { class: 'fields' });
  const general = h('p', { class: 'error', id: 'form-error', role: 'alert' });
  const form = h(
    'form',
    { class: 'submit-form', novalidate: true, 'aria-label': 'Submit a command' },
    h('div', { class: 'field' }, h('label', { for: 'type' }, 'Type'), typeSelect),
    fields,
    general,
    h('div', { class: 'actions' }, h('button', { type: 'submit', id: 'submit' }, 'Submit')),
  );
  main.append(h('h1', null, 'Submit a command'), form);

  function drawFields(): void {
    fields.replaceChildren(
      ...FORMS[typeSelect.value as Command['type']].map((spec) => {
        const id = `field-${spec.path.replace('.', '-')}`;
        return h(
          'div',
          { class: 'field', 'data-path': spec.path },
          h('label', { for: id }, spec.label),
          h('input', {
            id,
            name: spec.path,
            type: spec.kind === 'integer' ? 'number' : 'text',
            inputmode: spec.kind === 'integer' ? 'numeric' : undefined,
            value: spec.initial ?? '',
            'aria-describedby': `${id}-hint ${id}-error`,
          }),
          h('small', { id: `${id}-hint`, class: 'hint' }, spec.hint),
          h('span', { id: `${id}-error`, class: 'field-error', 'aria-live': 'polite' }),
        );
      }),
    );
  }

  function body(): Record<string, unknown> {
    const result: Record<string, unknown> = { type: typeSelect.value, payload: {} };
    for (const spec of FORMS[typeSelect.value as Command['type']]) {
      const input = form.querySelector<HTMLInputElement>(`[name="${spec.path}"]`)!;
      if (input.value.trim() === '') continue;
      const value = spec.kind === 'integer' ? Number(input.value) : input.value;
      if (spec.path.startsWith('payload.')) (result['payload'] as Record<string, unknown>)[spec.path.slice(8)] = value;
      else result[spec.path] = value;
    }
    return result;
  }

  function showIssues(error: ApiError): void {
    const unplaced: string[] = [];
    for (const issue of error.issues) {
      const slot = form.querySelector<HTMLElement>(`[data-path="${CSS.escape(issue.path)}"] .field-error`);
      if (slot) {
        slot.textContent = issue.message;
        slot.closest('.field')?.querySelector('input')?.setAttribute('aria-invalid', 'true');
      } else unplaced.push(`${issue.path || 'body'}: ${issue.message}`);
    }
    general.textContent = unplaced.length > 0 ? unplaced.join('; ') : error.issues.length === 0 ? error.message : '';
  }

  typeSelect.addEventListener('change', drawFields);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    general.textContent = '';
    for (const slot of form.querySelectorAll('.field-error')) slot.textContent = '';
    for (const input of form.querySelectorAll('[aria-invalid]')) input.removeAttribute('aria-invalid');
    void (async () => {
      try {
        const created = await post<Command>('/commands', body());
        location.hash = `#/commands/${created.id}`;
      } catch (error) {
        if (error instanceof ApiError) showIssues(error);
        else general.textContent = String(error);
      }
    })();
  });
  drawFields();
  return () => {};
};
