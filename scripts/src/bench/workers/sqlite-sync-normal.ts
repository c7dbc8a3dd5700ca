/**
 * A what-if, never the shipped configuration: preloaded into the control server with
 * `node --import` by `--sqlite-sync=normal`, it turns the store's `PRAGMA synchronous = FULL` into
 * NORMAL. In WAL mode NORMAL still writes every commit to the WAL file before the answer (so a
 * SIGKILLed server loses nothing it acknowledged) but does not fsync each commit (so a power cut
 * may lose the last ones). It measures what the per-commit fsync costs.
 */
import { createRequire } from 'node:module';
import type BetterSqlite3 from 'better-sqlite3';

// The copy of better-sqlite3 the control server loads, wherever npm placed it.
const Database = createRequire(new URL('../../../../control-server/package.json', import.meta.url))(
  'better-sqlite3',
) as typeof BetterSqlite3;

const original = Database.prototype.pragma;
Database.prototype.pragma = function pragma(this: BetterSqlite3.Database, source: string, options?: BetterSqlite3.PragmaOptions) {
  const patched = /^\s*synchronous\s*=\s*(full|2)\s*$/i.test(source) ? 'synchronous = NORMAL' : source;
  return original.call(this, patched, options);
} as typeof original;
