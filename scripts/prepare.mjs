// The root `prepare` (runs after `npm install` / `npm ci`): compile every workspace with tsc.
// A production install (`npm ci --omit=dev`) has no TypeScript; there the compiled dist/ of a
// previous build is used as it is, and a checkout that was never built stops with one line saying
// what to do, instead of a shell's "tsc: not found".
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';

const root = new URL('../', import.meta.url);
const entryPoints = ['common/dist/index.js', 'control-server/dist/main.js', 'agent/dist/main.js', 'scripts/dist/watch.js'];

let tsc;
try {
  tsc = createRequire(root).resolve('typescript/bin/tsc');
} catch {
  tsc = undefined;
}

if (tsc) {
  const result = spawnSync(process.execPath, [tsc, '-b'], { cwd: root, stdio: 'inherit' });
  process.exit(result.status ?? 1);
}
const missing = entryPoints.filter((path) => !existsSync(new URL(path, root)));
if (missing.length > 0) {
  console.error(
    `prepare: TypeScript is not installed (--omit=dev?) and ${missing.join(', ')} not built: ` +
      'run `npm ci && npm run build` first, or install the packed tarballs (docs/operations.md)',
  );
  process.exit(1);
}
console.log('prepare: no TypeScript here (production install): using the dist/ already built');
