/**
 * The public HTTP API, as any client calls it. With API_TOKEN set on the server, the token the
 * user typed is kept for this browser session (sessionStorage) and sent as a bearer header;
 * EventSource cannot send headers, so streams take it as ?access_token=.
 */
const TOKEN_KEY = 'agent-executor.token';

export interface Issue {
  path: string;
  message: string;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly issues: Issue[] = [],
  ) {
    super(message);
  }
}

let onUnauthorized: () => void = () => {};

/** Called when the server answers 401: the page asks for a (new) token. */
export function whenUnauthorized(handler: () => void): void {
  onUnauthorized = handler;
}

export function token(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value: string | null): void {
  if (value === null) sessionStorage.removeItem(TOKEN_KEY);
  else sessionStorage.setItem(TOKEN_KEY, value);
}

/** The API is served by the same server as the page: paths are absolute from its root. */
export function streamUrl(path: string, params: Record<string, string | undefined> = {}): string {
  const url = new URL(path, location.origin);
  for (const [key, value] of Object.entries(params)) if (value !== undefined) url.searchParams.set(key, value);
  const t = token();
  if (t !== null) url.searchParams.set('access_token', t);
  return url.toString();
}

export interface Answer<T> {
  body: T;
  headers: Headers;
}

export async function call<T>(method: string, path: string, body?: unknown): Promise<Answer<T>> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const t = token();
  if (t !== null) headers.authorization = `Bearer ${t}`;
  let res: Response;
  try {
    res = await fetch(path, { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  } catch {
    throw new ApiError(0, 'the server cannot be reached');
  }
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = text === '' ? undefined : JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  if (!res.ok) {
    const error = (parsed ?? {}) as { message?: string; issues?: Issue[] };
    if (res.status === 401) onUnauthorized();
    throw new ApiError(res.status, error.message ?? `${res.status} ${res.statusText}`, error.issues ?? []);
  }
  return { body: parsed as T, headers: res.headers };
}

export async function get<T>(path: string): Promise<T> {
  return (await call<T>('GET', path)).body;
}

export async function post<T>(path: string, body?: unknown): Promise<T> {
  return (await call<T>('POST', path, body)).body;
}

/** The URL of the next page from an RFC 8288 Link header, if there is one. */
export function nextPage(headers: Headers): string | undefined {
  const link = headers.get('link');
  return link === null ? undefined : /<([^>]+)>;\s*rel="next"/.exec(link)?.[1];
}
