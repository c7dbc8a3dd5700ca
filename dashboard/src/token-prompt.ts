import { h } from './dom.js';

/**
 * Asks for API_TOKEN in a modal form; resolves with what was typed. The token is kept for this
 * browser session only (sessionStorage, by the caller).
 */
export function askForToken(message?: string): Promise<string> {
  return new Promise((resolve) => {
    const input = h('input', { id: 'token', name: 'token', type: 'password', autocomplete: 'current-password', required: true });
    const dialog = h(
      'dialog',
      { class: 'token-dialog', 'aria-labelledby': 'token-title' },
      h(
        'form',
        {
          method: 'dialog',
          onsubmit: (event: Event) => {
            event.preventDefault();
            if (input.value.trim() === '') return;
            dialog.close();
            dialog.remove();
            resolve(input.value.trim());
          },
        },
        h('h2', { id: 'token-title' }, 'API token'),
        h('p', null, 'This server requires its API_TOKEN. It is kept for this browser session only.'),
        message ? h('p', { class: 'error', role: 'alert' }, message) : null,
        h('label', { for: 'token' }, 'Token'),
        input,
        h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Continue')),
      ),
    );
    // Escape must not leave the page without a token.
    dialog.addEventListener('cancel', (event) => event.preventDefault());
    document.body.append(dialog);
    dialog.showModal();
    input.focus();
  });
}
