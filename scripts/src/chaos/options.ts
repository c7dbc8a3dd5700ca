/** The drill's command line, parsed once with node:util parseArgs; a bad value stops the run. */
import { parseArgs } from 'node:util';

export interface ChaosOptions {
  commands: number;
  /** `sqlite`: one temp file; `postgres`: an embedded PostgreSQL the drill starts and stops. */
  database: 'sqlite' | 'postgres';
  /** Server processes on the one database (more than one needs PostgreSQL). */
  replicas: number;
  agents: number;
  serverKills: number;
  agentKills: number;
  seed: number;
  /** Agents also run with --random-failures (and kill themselves at random moments)… */
  randomFailures: boolean;
  /** …each life of an agent with this chance (a life with the flag lasts a few commands). */
  randomFailureShare: number;
  /** CONCURRENCY of each agent. */
  concurrency: number;
  /** LEASE_MS of the server. */
  leaseMs: number;
  /** Share of HTTP_GET_JSON commands (the rest are DELAYs). */
  httpShare: number;
  /** DELAY commands wait 0…this many ms. */
  delayMaxMs: number;
  /** The counting target answers after 0…this many ms, so kills land mid-request too. */
  targetDelayMaxMs: number;
  maxAttempts: number;
  /** At most this many commands acknowledged but not yet terminal: submits go on all run long. */
  backlog: number;
  /** The whole run (submits, kills, settling) must end within this. */
  deadlineS: number;
  /** Give up early when no command became terminal for this long while some are not. */
  stallS: number;
  json: string | undefined;
  keep: boolean;
  quiet: boolean;
}

export const USAGE = `usage: npm run chaos -- [options]
       npm run chaos -- --database postgres --replicas 2 --commands 10000
  --commands N          commands to submit (2000)
  --agents N            agents in the fleet (3)
  --database D          sqlite (a temp file) or postgres (an embedded PostgreSQL 17 in the run's
                        temp dir, started and stopped by the drill) (sqlite)
  --replicas N          server processes on the one database; agents get every URL in SERVER_URL;
                        more than 1 needs --database postgres (1)
  --server-kills N      SIGKILLs of the control server, each followed by a restart (10); with
                        replicas, of one replica, or of all at once for about one kill in four
  --agent-kills N       SIGKILLs of agents by the drill, each followed by a restart (10)
  --seed N              seed of every random choice; the same seed gives the same schedule (random)
  --no-random-failures  agents run without --random-failures (they then die only by the drill)
  --random-failure-share X  chance that an agent life runs with --random-failures, 0…1 (0.75);
                        such a life dies after a few commands, so 1 makes runs very long
  --concurrency N       CONCURRENCY of each agent (4)
  --lease-ms N          LEASE_MS of the server (6000)
  --http-share X        share of HTTP_GET_JSON commands, 0…1 (0.7)
  --delay-max-ms N      DELAY commands wait 0…N ms (200)
  --target-delay-max-ms N  the counting target answers after 0…N ms (80)
  --max-attempts N      maxAttempts of every command (10)
  --backlog N           at most N submitted commands not yet terminal (200)
  --deadline-s N        the whole run must end within N s (120 + commands / 10)
  --stall-s N           fail early when nothing became terminal for N s (180)
  --json FILE           also write the report as JSON to FILE
  --keep                keep the temp directory even when the run passes
  --quiet               no progress lines on stderr`;

export class UsageError extends Error {}

export function parseOptions(argv: string[]): ChaosOptions | 'help' {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      allowNegative: true,
      strict: true,
      options: {
        commands: { type: 'string', default: '2000' },
        database: { type: 'string', default: 'sqlite' },
        replicas: { type: 'string', default: '1' },
        agents: { type: 'string', default: '3' },
        'server-kills': { type: 'string', default: '10' },
        'agent-kills': { type: 'string', default: '10' },
        seed: { type: 'string' },
        'random-failures': { type: 'boolean', default: true },
        'random-failure-share': { type: 'string', default: '0.75' },
        concurrency: { type: 'string', default: '4' },
        'lease-ms': { type: 'string', default: '6000' },
        'http-share': { type: 'string', default: '0.7' },
        'delay-max-ms': { type: 'string', default: '200' },
        'target-delay-max-ms': { type: 'string', default: '80' },
        'max-attempts': { type: 'string', default: '10' },
        backlog: { type: 'string', default: '200' },
        'deadline-s': { type: 'string' },
        'stall-s': { type: 'string', default: '180' },
        json: { type: 'string' },
        keep: { type: 'boolean', default: false },
        quiet: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (values.help) return 'help';
  const int = (name: string, raw: string | undefined, min: number, max: number): number => {
    const n = Number(raw);
    if (raw === undefined || raw.trim() === '' || !Number.isInteger(n) || n < min || n > max) {
      throw new UsageError(`--${name}=${String(raw)}: expected an integer in ${min}…${max}`);
    }
    return n;
  };
  const fraction = (name: string, raw: string): number => {
    const n = Number(raw);
    if (raw.trim() === '' || !(n >= 0 && n <= 1)) throw new UsageError(`--${name}=${raw}: expected a number in 0…1`);
    return n;
  };
  const commands = int('commands', values.commands, 1, 1_000_000);
  const database = values.database;
  if (database !== 'sqlite' && database !== 'postgres') throw new UsageError(`--database=${database}: expected sqlite or postgres`);
  const replicas = int('replicas', values.replicas, 1, 16);
  if (replicas > 1 && database !== 'postgres') throw new UsageError(`--replicas=${replicas}: several replicas share one database: add --database postgres`);
  return {
    commands,
    database,
    replicas,
    agents: int('agents', values.agents, 1, 64),
    serverKills: int('server-kills', values['server-kills'], 0, 10_000),
    agentKills: int('agent-kills', values['agent-kills'], 0, 10_000),
    seed: values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : int('seed', values.seed, 0, 2 ** 31 - 1),
    randomFailures: values['random-failures'],
    randomFailureShare: fraction('random-failure-share', values['random-failure-share']),
    concurrency: int('concurrency', values.concurrency, 1, 256),
    leaseMs: int('lease-ms', values['lease-ms'], 100, 3_600_000),
    httpShare: fraction('http-share', values['http-share']),
    delayMaxMs: int('delay-max-ms', values['delay-max-ms'], 0, 60_000),
    targetDelayMaxMs: int('target-delay-max-ms', values['target-delay-max-ms'], 0, 10_000),
    maxAttempts: int('max-attempts', values['max-attempts'], 1, 20),
    backlog: int('backlog', values.backlog, 1, 1_000_000),
    deadlineS:
      values['deadline-s'] === undefined ? 120 + Math.ceil(commands / 10) : int('deadline-s', values['deadline-s'], 1, 86_400),
    stallS: int('stall-s', values['stall-s'], 1, 86_400),
    json: values.json,
    keep: values.keep,
    quiet: values.quiet,
  };
}
