import pg from 'pg';
import { CHANNEL } from './postgres-statements.js';
import { parseNotice, type Notice } from './postgres-notice.js';
import { pgTypes } from './postgres-rows.js';

export interface ListenerOptions {
  connectionString: string;
  onNotice: (notice: Notice) => void;
  /**
   * The connection was lost and is back: notifications sent meanwhile are gone, so the store
   * re-reads what it may have missed. The only re-check there is; nothing polls while the
   * connection holds.
   */
  onReconnected: () => void;
  onError: (err: unknown, what: string) => void;
}

/** Checks the listening connection this often, so a connection that died silently is replaced. */
const PING_MS = 30_000;
const RETRY_MIN_MS = 100;
const RETRY_MAX_MS = 5_000;

/**
 * The one connection of this replica that LISTENs (not from the pool: a pooled connection would
 * be handed to queries and its LISTEN lost). Re-established after a drop, with backoff.
 */
export class PgListener {
  private client: pg.Client | undefined;
  private closed = false;
  private retryMs = RETRY_MIN_MS;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private readonly pinger: NodeJS.Timeout;

  constructor(private readonly options: ListenerOptions) {
    this.pinger = setInterval(() => void this.ping(), PING_MS);
    this.pinger.unref();
  }

  /** Connects and LISTENs; rejects when the first connection fails. */
  async start(): Promise<void> {
    await this.connect();
  }

  private async connect(): Promise<void> {
    const client = new pg.Client({ connectionString: this.options.connectionString, types: pgTypes, keepAlive: true });
    client.on('notification', (message) => {
      const notice = message.channel === CHANNEL ? parseNotice(message.payload) : undefined;
      if (notice) this.options.onNotice(notice);
    });
    const lost = (err?: unknown) => {
      if (this.client !== client) return;
      this.client = undefined;
      client.removeAllListeners('notification');
      void client.end().catch(() => undefined);
      if (err) this.options.onError(err, 'the LISTEN connection was lost; reconnecting');
      this.scheduleReconnect();
    };
    client.on('error', lost);
    client.on('end', () => lost());
    await client.connect();
    await client.query(`LISTEN ${CHANNEL}`);
    if (this.closed) {
      await client.end();
      return;
    }
    this.client = client;
    this.retryMs = RETRY_MIN_MS;
  }

  private scheduleReconnect(): void {
    if (this.closed || this.reconnectTimer) return;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      this.connect().then(
        () => {
          if (!this.closed) this.options.onReconnected();
        },
        (err: unknown) => {
          this.options.onError(err, `could not LISTEN again; retrying in ${this.retryMs} ms`);
          this.retryMs = Math.min(RETRY_MAX_MS, this.retryMs * 2);
          this.scheduleReconnect();
        },
      );
    }, this.retryMs);
  }

  private async ping(): Promise<void> {
    const client = this.client;
    if (!client) return;
    try {
      await client.query('SELECT 1');
    } catch (err) {
      client.emit('error', err);
    }
  }

  /** Breaks the connection as a network failure would (for tests of the reconnect). */
  dropConnection(): void {
    const socket = (this.client as unknown as { connection?: { stream?: { destroy: () => void } } } | undefined)?.connection?.stream;
    socket?.destroy();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.pinger);
    clearTimeout(this.reconnectTimer);
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }
}
