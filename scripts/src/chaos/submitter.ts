/**
 * Submits the planned commands through server downtime. Every submit carries its own
 * Idempotency-Key, so a retry of a submit whose answer was lost (the server died after the commit,
 * before the answer) is answered 200 `Idempotent-Replayed` with the first command, never a second
 * one. A 201 is what counts as acknowledged; so does such a replay.
 */
import type { SubmitRecord } from './evidence.js';
import type { PlannedCommand } from './plan.js';

export interface SubmitterOptions {
  /** Every replica; submits are spread over them, and a retry goes to the next one. */
  serverUrls: string[];
  urlFor: (key: string) => string;
  maxAttempts: number;
  /** Requests in flight at once. */
  inFlight: number;
  /** Resolves when another command may be submitted (the drill's backlog limit). */
  gate: () => Promise<void>;
  /** Submits stop retrying at this time (ms since the epoch). */
  deadline: number;
  stopped: () => boolean;
}

const REQUEST_TIMEOUT_MS = 10_000;
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export class Submitter {
  readonly records: SubmitRecord[];
  /** Acknowledged: 201, or 200 replayed. */
  acknowledged = 0;
  done = false;

  constructor(
    private readonly plan: PlannedCommand[],
    private readonly options: SubmitterOptions,
  ) {
    this.records = plan.map((p) => ({ key: p.key, type: p.type, answer: 'unanswered', id: null, tries: 0, detail: null }));
  }

  async run(): Promise<void> {
    let next = 0;
    const worker = async () => {
      while (next < this.plan.length && !this.options.stopped()) {
        await this.options.gate();
        const i = next++;
        if (i >= this.plan.length) break;
        await this.submit(this.plan[i] as PlannedCommand, this.records[i] as SubmitRecord, i);
      }
    };
    await Promise.all(Array.from({ length: this.options.inFlight }, worker));
    this.done = true;
  }

  private async submit(p: PlannedCommand, record: SubmitRecord, index: number): Promise<void> {
    const urls = this.options.serverUrls;
    const body = JSON.stringify({
      type: p.type,
      payload: p.type === 'DELAY' ? { ms: p.delayMs } : { url: this.options.urlFor(p.key) },
      maxAttempts: this.options.maxAttempts,
      queue: p.queue,
      priority: p.priority,
      ...(p.concurrencyKey === undefined ? {} : { concurrencyKey: p.concurrencyKey, concurrencyLimit: p.concurrencyLimit }),
    });
    for (let retry = 0; Date.now() < this.options.deadline && !this.options.stopped(); retry++) {
      record.tries++;
      try {
        const res = await fetch(`${urls[(index + retry) % urls.length]}/commands`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'idempotency-key': p.key },
          body,
          signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
        });
        const text = await res.text();
        if (res.status === 201 || (res.status === 200 && res.headers.get('idempotent-replayed') === 'true')) {
          record.answer = res.status === 201 ? 'created' : 'replayed';
          record.id = (JSON.parse(text) as { id: string }).id;
          this.acknowledged++;
          return;
        }
        record.detail = `${res.status} ${text.slice(0, 300)}`;
        if (res.status < 500 && res.status !== 429) {
          record.answer = 'rejected';
          return;
        }
      } catch (err) {
        // The server is down or died mid-request: the answer is unknown, so retry with the same key.
        record.detail = (err as Error).message;
      }
      await sleep(Math.min(1000, 50 * 2 ** retry));
    }
  }
}
