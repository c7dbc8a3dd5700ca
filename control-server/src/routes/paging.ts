import { BadRequest } from '../errors.js';

/** Cursors are opaque to clients: base64url of the last row's sequence number. */
export function encodeCursor(seq: number): string {
  return Buffer.from(`c${seq}`).toString('base64url');
}

export function decodeCursor(cursor: string): number {
  const match = /^c(\d{1,15})$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (!match?.[1]) throw new BadRequest('cursor: not a cursor this server issued');
  return Number(match[1]);
}

/** The `Link` header pointing at the next page: the same query with the new cursor. */
export function nextLink(path: string, query: Record<string, unknown>, cursor: string): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (key !== 'cursor' && value !== undefined) params.set(key, String(value));
  }
  params.set('cursor', cursor);
  return `<${path}?${params.toString()}>; rel="next"`;
}
