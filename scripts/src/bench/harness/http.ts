/** HTTP from the bench process: keep-alive undici pools, JSON calls, /metrics readings. */
import { Pool } from 'undici';

export class Api {
  readonly pool: Pool;

  constructor(
    readonly url: string,
    connections = 8,
  ) {
    this.pool = new Pool(url, { connections, pipelining: 1, keepAliveTimeout: 60_000 });
  }

  /** One request; throws unless the status is one of `expect`. Answers the parsed body (or null). */
  async call<T = unknown>(
    method: 'GET' | 'POST' | 'PUT',
    path: string,
    body?: unknown,
    expect: number[] = [200, 201],
  ): Promise<{ status: number; body: T; headers: Record<string, string | string[] | undefined> }> {
    const res = await this.pool.request({
      method,
      path,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? null : JSON.stringify(body),
    });
    const text = await res.body.text();
    if (!expect.includes(res.statusCode)) {
      throw new Error(`${method} ${path} answered ${res.statusCode}: ${text.slice(0, 500)}`);
    }
    return { status: res.statusCode, body: (text === '' ? null : JSON.parse(text)) as T, headers: res.headers };
  }

  async metrics(): Promise<Metrics> {
    const res = await this.pool.request({ method: 'GET', path: '/metrics' });
    return parseMetrics(await res.body.text());
  }

  async close(): Promise<void> {
    await this.pool.destroy();
  }
}

export type Metrics = Map<string, number>;

/** Prometheus text → `name{labels}` → value (labels as the server prints them). */
export function parseMetrics(text: string): Metrics {
  const values: Metrics = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const cut = line.lastIndexOf(' ');
    values.set(line.slice(0, cut), Number(line.slice(cut + 1)));
  }
  return values;
}

export function metric(metrics: Metrics, name: string): number {
  return metrics.get(name) ?? 0;
}

/** Wall-clock milliseconds with sub-millisecond resolution, comparable across processes of one machine. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}
