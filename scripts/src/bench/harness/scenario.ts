/** What a scenario file exports, and typed access to its parsed command-line options. */
import type { FigureSummary, RunResult } from './report.js';

export interface OptionSpec {
  type: 'string' | 'boolean';
  default?: string | boolean;
  description: string;
}

export interface RunContext {
  /** 0-based index of this run among --runs. */
  run: number;
  runs: number;
  outDir: string;
}

export interface Scenario {
  name: string;
  summary: string;
  defaultRuns: number;
  options: Record<string, OptionSpec>;
  run: (options: Options, context: RunContext) => Promise<RunResult>;
  /** After the runs and the JSON: a scenario's own summary (a table, charts beside the JSON file). */
  afterRuns?: (summary: FigureSummary[], runs: RunResult[], jsonFile: string) => void;
}

export class Options {
  constructor(readonly values: Record<string, unknown>) {}

  str(name: string): string {
    const value = this.values[name];
    if (typeof value !== 'string') throw new Error(`--${name} is required`);
    return value;
  }

  num(name: string): number {
    const raw = this.str(name);
    const value = Number(raw);
    if (!Number.isFinite(value)) throw new Error(`--${name}: not a number: ${raw}`);
    return value;
  }

  bool(name: string): boolean {
    return this.values[name] === true;
  }

  list(name: string): string[] {
    return this.str(name)
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
  }

  oneOf<T extends string>(name: string, allowed: readonly T[]): T {
    const value = this.str(name);
    if (!allowed.includes(value as T)) throw new Error(`--${name}: one of ${allowed.join(', ')}, not ${value}`);
    return value as T;
  }
}

/** Reads `Max open files` of this process (children inherit it). */
export async function openFilesLimit(): Promise<number> {
  const { readFileSync } = await import('node:fs');
  const match = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
  return match?.[1] === undefined || match[1] === 'unlimited' ? Number.POSITIVE_INFINITY : Number(match[1]);
}

export async function requireOpenFiles(needed: number): Promise<void> {
  const limit = await openFilesLimit();
  if (limit < needed) {
    throw new Error(
      `this run needs about ${needed} open files per process but the limit is ${limit}: raise it first (ulimit -n ${needed + 1000})`,
    );
  }
}

export const SQLITE_SYNC_OPTION: OptionSpec = {
  type: 'string',
  default: 'full',
  description: 'SQLITE_SYNCHRONOUS of the server: full (its default: a 201 survives a power cut) or normal (survives a killed process)',
};

/** The server setting of --sqlite-sync, and the suffix that labels figures measured with NORMAL. */
export function sqliteSync(o: Options): { sqliteSync: 'full' | 'normal'; label: string } {
  const value = o.oneOf('sqlite-sync', ['full', 'normal'] as const);
  return { sqliteSync: value, label: value === 'normal' ? ' [SQLITE_SYNCHRONOUS=NORMAL]' : '' };
}
