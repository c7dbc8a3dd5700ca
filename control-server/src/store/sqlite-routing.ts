import type Database from 'better-sqlite3';
import type { Route } from './store.js';

/** `ready` of a PENDING row (migration 003): where it stands on its way to the claim index. */
export const SCHEDULED = 0;
export const READY = 1;
export const HELD = 2;
export type Readiness = typeof SCHEDULED | typeof READY | typeof HELD;


/** At most this many scheduled commands promoted per pass; a full pass leaves the reaper due again. */
const PROMOTE_BATCH = 1_000;

/**
 * Per-key concurrency (SPEC §9), kept in `concurrency_keys` by the transitions of each write, in
 * its own transaction. `active` counts a key's commands RUNNING or ready; a command of the key
 * becomes ready only by taking a slot while active < lim. A claim moves ready → RUNNING and
 * leaves `active` alone, so it never reads this table: the limit is enforced before a command
 * enters the claim index, and a key at its limit keeps its backlog held, out of the claim's way.
 */
export class KeySlots {
  private readonly setLimit: Database.Statement;
  private readonly take: Database.Statement;
  private readonly give: Database.Statement;
  private readonly promoteHeld: Database.Statement<{ key: string }, { seq: number }>;
  private readonly addActive: Database.Statement;
  private readonly anyDue: Database.Statement<[number], { found: number }>;
  private readonly dueUnkeyed: Database.Statement;
  private readonly dueKeyed: Database.Statement<[number, number], { key: string }>;
  private readonly runningOf: Database.Statement<[string], { n: number }>;
  private readonly keyOf: Database.Statement<[string], { lim: number; active: number }>;

  constructor(db: Database.Database) {
    this.setLimit = db.prepare(`INSERT INTO concurrency_keys (key, lim, active) VALUES (?, ?, 0)
      ON CONFLICT (key) DO UPDATE SET lim = excluded.lim WHERE lim != excluded.lim`);
    this.take = db.prepare('UPDATE concurrency_keys SET active = active + 1 WHERE key = ? AND active < lim');
    this.give = db.prepare('UPDATE concurrency_keys SET active = active - 1 WHERE key = ? AND active > 0');
    // The key's held commands in claim order, as many as it has free slots: one index range.
    this.promoteHeld = db.prepare(`UPDATE commands SET ready = ${READY}
      WHERE seq IN (SELECT seq FROM commands INDEXED BY commands_held
                    WHERE status = 'PENDING' AND ready = ${HELD} AND concurrency_key = @key
                    ORDER BY priority DESC, seq
                    LIMIT max(0, (SELECT lim - active FROM concurrency_keys WHERE key = @key)))
      RETURNING seq`);
    this.addActive = db.prepare('UPDATE concurrency_keys SET active = active + ? WHERE key = ?');
    // A claim calls promoteDue in every transaction; nearly always nothing is due, and this probe
    // (~1 µs) spares the two UPDATEs below, whose IN (SELECT …) each build a temporary table
    // (~15 µs each, measured).
    this.anyDue = db.prepare<[number], { found: number }>(`SELECT 1 AS found FROM commands INDEXED BY commands_scheduled
      WHERE status = 'PENDING' AND ready = ${SCHEDULED} AND available_at <= ? LIMIT 1`);
    this.dueUnkeyed = db.prepare(`UPDATE commands SET ready = ${READY}
      WHERE seq IN (SELECT seq FROM commands INDEXED BY commands_scheduled
                    WHERE status = 'PENDING' AND ready = ${SCHEDULED} AND available_at <= ?
                      AND concurrency_key IS NULL LIMIT ?)`);
    // Due keyed commands join their key's held ones, then each key promotes as many as it may.
    this.dueKeyed = db.prepare<[number, number], { key: string }>(`UPDATE commands SET ready = ${HELD}
      WHERE seq IN (SELECT seq FROM commands INDEXED BY commands_scheduled
                    WHERE status = 'PENDING' AND ready = ${SCHEDULED} AND available_at <= ?
                      AND concurrency_key IS NOT NULL LIMIT ?)
      RETURNING concurrency_key AS key`);
    this.runningOf = db.prepare<[string], { n: number }>(
      `SELECT count(*) AS n FROM commands INDEXED BY commands_key_running WHERE status = 'RUNNING' AND concurrency_key = ?`,
    );
    this.keyOf = db.prepare<[string], { lim: number; active: number }>('SELECT lim, active FROM concurrency_keys WHERE key = ?');
  }

  /** A submit gives the key its limit (the most recent submit's wins); a raised limit frees slots. */
  limit(key: string, lim: number): number {
    return this.setLimit.run(key, lim).changes > 0 ? this.promote(key) : 0;
  }

  /**
   * Where a command that is PENDING from now on stands: scheduled while `availableAt` is ahead,
   * else ready (taking one of its key's slots) or held when the key has none free.
   */
  readiness(key: string | null, availableAt: number, now: number): Readiness {
    if (availableAt > now) return SCHEDULED;
    if (key === null) return READY;
    return this.take.run(key).changes === 1 ? READY : HELD;
  }

  /** A command of `key` left RUNNING or ready: its slot goes to the key's next held command. */
  release(key: string | null): number {
    if (key === null) return 0;
    this.give.run(key);
    return this.promote(key);
  }

  /** Promotes held commands of `key` into its free slots; answers how many became ready. */
  promote(key: string): number {
    const promoted = this.promoteHeld.all({ key }).length;
    if (promoted > 0) this.addActive.run(promoted, key);
    return promoted;
  }

  /** Scheduled commands whose time has come become ready (or held); answers how many became ready. */
  promoteDue(now: number): { ready: number; more: boolean } {
    if (this.anyDue.get(now) === undefined) return { ready: 0, more: false };
    const unkeyed = this.dueUnkeyed.run(now, PROMOTE_BATCH).changes;
    const keyed = this.dueKeyed.all(now, PROMOTE_BATCH).map((row) => row.key);
    let ready = unkeyed;
    for (const key of new Set(keyed)) ready += this.promote(key);
    return { ready, more: unkeyed >= PROMOTE_BATCH || keyed.length >= PROMOTE_BATCH };
  }

  /** The key's RUNNING count and limit, for waitingFor. */
  state(key: string): { running: number; limit: number } | undefined {
    const row = this.keyOf.get(key);
    return row && { running: this.runningOf.get(key)?.n ?? 0, limit: row.lim };
  }
}

/** One range of commands_ready: a (queue, type) pair's ready commands in claim order, cut at `max`. */
const RANGE = `SELECT seq, priority FROM commands INDEXED BY commands_ready
  WHERE status = 'PENDING' AND ready = ${READY} AND queue = @q0 AND type = @t0
  ORDER BY priority DESC, seq LIMIT @max`;
/**
 * Up to this many pairs, a claim reads each range with its own statement and merges them here
 * (~6 µs per range, measured); past it, one statement merges them (a UNION ALL under ORDER BY:
 * ~21 µs for two ranges, as its sort builds a temporary table, but less than many statements).
 */
const SEPARATE_RANGES_UP_TO = 3;

type Ranged = { seq: number; priority: number };
type Picked = { seq: number };
const pickStatements = new WeakMap<Database.Database, Map<string, Database.Statement<[Record<string, unknown>], Ranged | Picked>>>();

function statementFor<R extends Ranged | Picked>(db: Database.Database, shape: string, sql: () => string): Database.Statement<[Record<string, unknown>], R> {
  let cache = pickStatements.get(db);
  if (!cache) pickStatements.set(db, (cache = new Map()));
  let statement = cache.get(shape);
  if (!statement) cache.set(shape, (statement = db.prepare<[Record<string, unknown>], R>(sql())));
  return statement as Database.Statement<[Record<string, unknown>], R>;
}

/**
 * The statement that picks for a route of `pairs` (queue, type) pairs at once: one range of
 * commands_ready per pair, each already in claim order and cut at `max`, merged and cut again —
 * O(pairs × max) whatever the backlog.
 */
export function pickStatement(db: Database.Database, route: Route): Database.Statement<[Record<string, unknown>], Picked> {
  return statementFor<Picked>(db, `${route.queues.length}x${route.types.length}`, () => {
    const ranges: string[] = [];
    for (let q = 0; q < route.queues.length; q++) {
      for (let t = 0; t < route.types.length; t++) {
        ranges.push(`SELECT * FROM (${RANGE.replace('@q0', `@q${q}`).replace('@t0', `@t${t}`)})`);
      }
    }
    // Only seq out: selecting priority too turned SQLite's plan into a merge that sorts each range.
    return `SELECT seq FROM (${ranges.join('\n UNION ALL ')}) ORDER BY priority DESC, seq LIMIT @max`;
  });
}

/** One pair's range (RANGE), read by a claim of a few pairs. */
export function rangeStatement(db: Database.Database): Database.Statement<[Record<string, unknown>], Ranged> {
  return statementFor<Ranged>(db, 'range', () => RANGE);
}

/**
 * The seqs a claim for `route` takes, in claim order (priority, then submission). The store moves
 * each to RUNNING with a guarded UPDATE by seq in the same write transaction, so no other claim
 * can take it in between. (One `UPDATE … WHERE seq IN (pick) RETURNING *` cost ~100 µs for one
 * command: its IN list and its RETURNING each build a temporary table.)
 */
export function pick(db: Database.Database, route: Route, max: number): number[] {
  const pairs = route.queues.length * route.types.length;
  if (pairs > SEPARATE_RANGES_UP_TO) return pickStatement(db, route).all({ max, ...routeParams(route) }).map((row) => row.seq);
  const range = rangeStatement(db);
  const found: Ranged[] = [];
  for (const q0 of route.queues) for (const t0 of route.types) found.push(...range.all({ q0, t0, max }));
  if (pairs > 1) found.sort((a, b) => b.priority - a.priority || a.seq - b.seq);
  return found.slice(0, max).map((row) => row.seq);
}

/** The claim's named parameters for `route`. */
export function routeParams(route: Route): Record<string, string> {
  const params: Record<string, string> = {};
  route.queues.forEach((queue, i) => (params[`q${i}`] = queue));
  route.types.forEach((type, i) => (params[`t${i}`] = type));
  return params;
}
