/**
 * npm run chaos -- --commands 2000 --agents 3 --server-kills 10 --agent-kills 10 --seed 42
 *
 * Exit 0 when every check held, 1 when a guarantee was broken (the report says which command
 * broke which and why), 2 on bad usage or when the drill itself could not run.
 */
import { rmSync, writeFileSync } from 'node:fs';
import { runDrill } from './drill.js';
import { parseOptions, USAGE, UsageError } from './options.js';
import { installExitHandlers, stopAll } from './processes.js';
import { details, passed, summary, toJson } from './report.js';

async function main(): Promise<number> {
  let options;
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    console.error(`chaos: ${err.message}\n\n${USAGE}`);
    return 2;
  }
  if (options === 'help') {
    console.log(USAGE);
    return 0;
  }
  installExitHandlers(() => console.error('chaos: interrupted; the run\'s files are kept (see the path above)'));
  const say = (line: string) => console.error(line);
  const result = await runDrill(options, say);
  console.log(summary(result));
  const more = details(result);
  if (more) console.log(more);
  if (options.json !== undefined) writeFileSync(options.json, JSON.stringify(toJson(result), null, 2));
  if (passed(result) && !options.keep) rmSync(result.dir, { recursive: true, force: true });
  return passed(result) ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  async (err: unknown) => {
    console.error(`chaos: the drill could not run: ${(err as Error).stack ?? String(err)}`);
    await stopAll();
    process.exit(2);
  },
);
