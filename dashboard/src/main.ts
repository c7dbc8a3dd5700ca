import './style.css';
import { ApiError, get, setToken, token, whenUnauthorized } from './api.js';
import { askForToken } from './token-prompt.js';
import { LiveStream, type StreamState } from './stream.js';
import type { Stats } from './types.js';
import { agentsPage } from './pages/agents.js';
import { commandPage } from './pages/command.js';
import { commandsPage } from './pages/commands.js';
import { overviewPage } from './pages/overview.js';
import { queuesPage } from './pages/queues.js';
import { submitPage } from './pages/submit.js';

/** A page draws itself into `main` and answers how to stop (close its streams and timers). */
export type Page = (main: HTMLElement, stream: LiveStream) => () => void;

const main = document.getElementById('main')!;
const connection = document.getElementById('connection')!;
const stream = new LiveStream();
let unmount: () => void = () => {};

const STATE_TEXT: Record<StreamState, string> = { connecting: 'connecting…', live: 'live', reconnecting: 'reconnecting…' };

function route(): { page: Page; name: string } {
  const path = location.hash.replace(/^#/, '') || '/';
  const command = /^\/commands\/([^/?]+)$/.exec(path);
  if (command) return { page: commandPage(decodeURIComponent(command[1]!)), name: 'commands' };
  if (path.startsWith('/commands')) return { page: commandsPage, name: 'commands' };
  if (path === '/submit') return { page: submitPage, name: 'submit' };
  if (path === '/agents') return { page: agentsPage, name: 'agents' };
  if (path === '/queues') return { page: queuesPage, name: 'queues' };
  return { page: overviewPage, name: 'overview' };
}

function show(): void {
  unmount();
  main.replaceChildren();
  const { page, name } = route();
  for (const link of document.querySelectorAll<HTMLAnchorElement>('nav a')) {
    if (link.dataset['page'] === name) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  unmount = page(main, stream);
}

/** The server's answer to /stats decides: open, ask for a token, or say it cannot be reached. */
async function boot(message?: string): Promise<void> {
  let stats: Stats;
  try {
    stats = await get<Stats>('/stats');
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      const wrong = token() !== null;
      setToken(null);
      const typed = await askForToken(message ?? (wrong ? 'The server refused that token (401 Unauthorized). Try again.' : undefined));
      setToken(typed);
      return boot();
    }
    connection.textContent = error instanceof Error ? error.message : String(error);
    setTimeout(() => void boot(), 2000);
    return;
  }
  whenUnauthorized(() => {
    // The token was changed on the server while the page was open.
    stream.stop();
    unmount();
    main.replaceChildren();
    setToken(null);
    void boot('The server no longer takes this token (401 Unauthorized).');
  });
  stream.start(stats.lastEventId, (state) => {
    connection.textContent = STATE_TEXT[state];
    connection.dataset['state'] = state;
  });
  window.onhashchange = show;
  show();
}

// For the browser tests: what the stream handed on, to check for duplicates and gaps.
(window as unknown as { dashboard: unknown }).dashboard = { stream };
void boot();
