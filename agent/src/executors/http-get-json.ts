import { HttpGetJsonPayload } from '@agent-executor/common';
import { request, type Dispatcher } from 'undici';
import { AttemptAborted, ExecutionError, PermanentError } from '../outcome.js';
import { fitText } from '../result-fit.js';
import { AddressRefused, type SsrfGuard } from '../ssrf-guard.js';
import type { Executor } from './index.js';
import { parsePayload } from './payload.js';

/** The most of a response body that is read; the rest is never received. */
export const MAX_BODY_BYTES = 102_400;
export const MAX_REDIRECTS = 5;
/**
 * `text` is cut to this much JSON so that a result with a text fits the server's 256 KiB limit;
 * a parsed body that re-serialises larger is cut down after the attempt (result-fit.ts).
 */
const MAX_TEXT_JSON_BYTES = 200 * 1024;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

export interface HttpGetJsonResult {
  /** The final response's status; null when no response came. */
  status: number | null;
  /** status is 2xx, as fetch's Response.ok. */
  ok: boolean;
  /** The parsed JSON body; null when there is none, it is not JSON, or it was truncated. */
  body: unknown;
  /** The raw text, present only when `body` is null. */
  text?: string;
  truncated: boolean;
  bytesReturned: number;
  tookMs: number;
  /** Why the attempt failed; null when it completed. */
  error: string | null;
}

export interface HttpGetJsonOptions {
  guard: SsrfGuard;
}

/**
 * GET a URL and parse its JSON. Failures keep what was learnt in the result. Network errors,
 * timeouts, 429 and 5xx are retryable; other statuses, bodies that are not JSON, refused
 * addresses and redirect loops are not.
 */
export function httpGetJson({ guard }: HttpGetJsonOptions): Executor<HttpGetJsonResult> {
  const dispatcher = guard.dispatcher();
  // `context.log` is read only where a line is written: it makes the command's child logger.
  return async (payload, context) => {
    const { signal } = context;
    const started = performance.now();
    const finish = (fields: Partial<HttpGetJsonResult>): HttpGetJsonResult => {
      const status = fields.status ?? null;
      return {
        status,
        ok: status !== null && status >= 200 && status < 300,
        body: null,
        truncated: false,
        bytesReturned: 0,
        ...fields,
        tookMs: Math.round(performance.now() - started),
        error: fields.error ?? null,
      };
    };
    let url = new URL(parsePayload(HttpGetJsonPayload, payload).url);
    let status: number | null = null;
    try {
      for (let redirects = 0; ; redirects++) {
        const response = await request(url, { method: 'GET', dispatcher, signal, headers: { accept: 'application/json' } });
        status = response.statusCode;
        const location = response.headers.location;
        if (!REDIRECT_STATUSES.has(status) || typeof location !== 'string') {
          return judge(await readCapped(response.body), status, finish);
        }
        // Read a little of a redirect's body (so the connection can be reused), then let it go.
        await response.body.dump({ limit: 16 * 1024, signal });
        if (redirects === MAX_REDIRECTS) {
          const error = `too many redirects (more than ${MAX_REDIRECTS})`;
          throw new PermanentError(error, finish({ status, error }));
        }
        url = redirectTarget(location, url, status, finish);
        context.log.debug({ status, to: url.href }, 'following redirect');
      }
    } catch (err) {
      if (err instanceof ExecutionError) throw err;
      if (signal.aborted && signal.reason instanceof AttemptAborted) {
        throw new ExecutionError(signal.reason.reportedError, finish({ status, error: signal.reason.reportedError }));
      }
      const refused = addressRefused(err);
      if (refused) throw new PermanentError(refused.message, finish({ status, error: refused.message }));
      const error = describeError(err);
      throw new ExecutionError(error, finish({ status, error }));
    }
  };
}

interface Body {
  bytes: Buffer;
  truncated: boolean;
}

/** Reads at most MAX_BODY_BYTES, then destroys the stream, so the rest is never received. */
async function readCapped(body: Dispatcher.ResponseData['body']): Promise<Body> {
  const chunks: Buffer[] = [];
  let size = 0;
  let truncated = false;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    const room = MAX_BODY_BYTES - size;
    if (chunk.length > room) {
      if (room > 0) chunks.push(chunk.subarray(0, room));
      size += room;
      truncated = true;
      break;
    }
    chunks.push(chunk);
    size += chunk.length;
  }
  // Stops the transfer (or frees the socket); the 'error' that destroying emits is expected.
  body.on('error', () => {}).destroy();
  return { bytes: Buffer.concat(chunks, size), truncated };
}

function judge(
  { bytes, truncated }: Body,
  status: number,
  finish: (fields: Partial<HttpGetJsonResult>) => HttpGetJsonResult,
): HttpGetJsonResult {
  const raw = new TextDecoder().decode(bytes);
  let body: unknown = null;
  let parseError: string | undefined;
  if (truncated) parseError = `body larger than ${MAX_BODY_BYTES} bytes; truncated, not parsed`;
  else {
    try {
      body = JSON.parse(raw);
    } catch (err) {
      parseError = `invalid JSON: ${(err as Error).message}`;
    }
  }
  const fields: Partial<HttpGetJsonResult> = { status, body, truncated, bytesReturned: bytes.length };
  if (body === null) fields.text = fitText(raw, MAX_TEXT_JSON_BYTES);
  const statusError = status < 200 || status >= 300 ? `HTTP ${status}` : undefined;
  const error = statusError ?? parseError;
  if (error === undefined) return finish(fields);
  const result = finish({ ...fields, error });
  if (statusError !== undefined && (status === 429 || status >= 500)) throw new ExecutionError(error, result);
  throw new PermanentError(error, result);
}

function redirectTarget(
  location: string,
  from: URL,
  status: number,
  finish: (fields: Partial<HttpGetJsonResult>) => HttpGetJsonResult,
): URL {
  const target = URL.canParse(location, from.href) ? new URL(location, from) : undefined;
  if (target && (target.protocol === 'http:' || target.protocol === 'https:')) return target;
  const error = `redirect to an unsupported location: ${location.slice(0, 200)}`;
  throw new PermanentError(error, finish({ status, error }));
}

/** The SSRF guard's refusal, as thrown by the connector or wrapped by undici. */
function addressRefused(err: unknown): AddressRefused | undefined {
  if (err instanceof AddressRefused) return err;
  return err instanceof Error && err.cause instanceof AddressRefused ? err.cause : undefined;
}

function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = (err as { code?: unknown }).code;
  const cause = err.cause instanceof Error ? `: ${err.cause.message}` : '';
  return `${typeof code === 'string' && !err.message.includes(code) ? `${code}: ` : ''}${err.message}${cause}`;
}
