/**
 * The OpenAPI document as a client generator sees it: it lints clean under Redocly's recommended
 * rules, and a client generated from it (openapi-typescript types + openapi-fetch) typechecks
 * and walks submit → get → next → result → events against the server listening on a port.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createConfig, lintFromString } from '@redocly/openapi-core';
import createClient from 'openapi-fetch';
import openapiTS, { astToString } from 'openapi-typescript';
import { describe, expect, test } from 'vitest';
import { REPO_ROOT, tempDir } from '../../test-support/processes.js';
import { useApp } from './helpers.js';

const { build } = useApp();

const API_TOKEN = 'client-token-0123456789';
const AGENT_TOKEN = 'agent-token-0123456789';

interface Operation {
  operationId?: string;
  security?: Array<Record<string, string[]>>;
  responses: Record<string, { content?: Record<string, unknown>; headers?: Record<string, unknown> }>;
}
interface Document {
  servers?: Array<{ url: string }>;
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, unknown>; securitySchemes: Record<string, unknown> };
}

async function servedDocument(): Promise<{ doc: Document; baseUrl: string }> {
  const { app } = await build({ env: { API_TOKEN, AGENT_TOKEN } });
  const baseUrl = await app.listen({ port: 0, host: '127.0.0.1' });
  const res = await fetch(`${baseUrl}/openapi.json`);
  expect(res.status).toBe(200);
  return { doc: (await res.json()) as Document, baseUrl };
}

const operations = (doc: Document) =>
  Object.entries(doc.paths).flatMap(([path, ops]) => Object.entries(ops).map(([method, op]) => ({ route: `${method} ${path}`, op })));

describe('OpenAPI document for client generators', () => {
  test('lints with 0 errors under Redocly recommended', async () => {
    const { doc } = await servedDocument();
    const problems = await lintFromString({
      source: JSON.stringify(doc),
      absoluteRef: 'openapi.json',
      config: await createConfig({ extends: ['recommended'] }),
    });
    const errors = problems.filter((p) => p.severity === 'error').map((p) => `${p.ruleId}: ${p.message} at ${p.location[0]?.pointer}`);
    expect(errors).toEqual([]);
  });

  test('every operation has an operationId and the security of its token; media types, headers and 204s are true', async () => {
    const { doc } = await servedDocument();
    expect(doc.servers?.length).toBeGreaterThan(0);
    const ops = operations(doc);
    const ids = ops.map(({ op }) => op.operationId);
    expect(ids.every((id) => typeof id === 'string' && id.length > 0), JSON.stringify(ids)).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);

    const schemesOf = (route: string) => ops.find((o) => o.route === route)?.op.security?.flatMap((s) => Object.keys(s));
    expect(schemesOf('post /commands')).toEqual(['clientToken']);
    expect(schemesOf('get /events')).toEqual(['clientToken']);
    expect(schemesOf('get /commands/next')).toEqual(['agentToken']);
    expect(schemesOf('put /commands/{id}/result')).toEqual(['agentToken']);
    expect(schemesOf('get /metrics')).toEqual(['metricsToken', 'clientToken']);
    expect(schemesOf('get /health')).toEqual([]);
    expect(Object.keys(doc.components.securitySchemes).sort()).toEqual(['agentToken', 'clientToken', 'metricsToken']);

    const op = (method: string, path: string) => doc.paths[path]?.[method] as Operation;
    expect(Object.keys(op('get', '/events').responses['200']?.content ?? {})).toEqual(['text/event-stream']);
    expect(Object.keys(op('get', '/commands/{id}/events').responses['200']?.content ?? {})).toEqual(['text/event-stream']);
    expect(Object.keys(op('get', '/metrics').responses['200']?.content ?? {})).toEqual(['text/plain']);
    expect(Object.keys(op('get', '/commands/{id}/events').responses['400']?.content ?? {})).toEqual(['application/json']);
    for (const { route, op: operation } of ops) {
      if (operation.responses['204']) expect(operation.responses['204'].content, route).toBeUndefined();
      for (const [status, response] of Object.entries(operation.responses)) {
        expect(Object.keys(response.headers ?? {}), `${route} ${status}`).toContain('X-Request-Id');
      }
    }
    expect(Object.keys(op('post', '/commands').responses['201']?.headers ?? {})).toContain('Location');
    expect(Object.keys(op('post', '/commands').responses['200']?.headers ?? {})).toContain('Idempotent-Replayed');
    expect(Object.keys(op('get', '/commands').responses['200']?.headers ?? {})).toContain('Link');
    expect(Object.keys(op('get', '/commands/next').responses['204']?.headers ?? {})).toContain('Preference-Applied');

    // Named schemas, and only those the document uses.
    expect(Object.keys(doc.components.schemas)).toEqual(
      expect.arrayContaining(['Command', 'ClaimedCommand', 'SubmittedCommand', 'CommandStatus', 'ErrorResponse', 'SubmitBodyInput']),
    );
    const text = JSON.stringify(doc.paths);
    for (const name of Object.keys(doc.components.schemas)) {
      const referred = JSON.stringify(doc).split(`"#/components/schemas/${name}"`).length - 1;
      expect(referred, `${name} is referred to`).toBeGreaterThan(0);
    }
    expect(text).toContain('"#/components/schemas/Command"');
  });

  test('a client generated from it typechecks and walks submit → get → next → result → events', { timeout: 90_000 }, async () => {
    const { doc, baseUrl } = await servedDocument();
    const dir = tempDir('openapi-client');
    let passed = false;
    try {
      writeFileSync(join(dir.path, 'api.d.ts'), astToString(await openapiTS(doc as never)));
      writeFileSync(join(dir.path, 'walk.ts'), WALK_SOURCE);
      writeFileSync(join(dir.path, 'tsconfig.json'), JSON.stringify(clientTsconfig(dir.path)));
      const tsc = spawnSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', dir.path], { encoding: 'utf8' });
      expect(tsc.stdout + tsc.stderr, 'tsc on the generated client').toBe('');
      expect(tsc.status).toBe(0);

      // The typed walk, compiled by tsc above, drives the real server through openapi-fetch.
      const { walk } = (await import(pathToFileURL(join(dir.path, 'walk.js')).href)) as { walk: Walk };
      const seen = await walk(createClient, baseUrl, { client: API_TOKEN, agent: AGENT_TOKEN });
      expect(seen.submitted).toMatchObject({ status: 201, commandStatus: 'PENDING' });
      expect(seen.submitted.location).toBe(`/commands/${seen.id}`);
      expect(seen.got).toBe('PENDING');
      expect(seen.claimedLease).toMatch(/.+/);
      expect(seen.reported).toBe('COMPLETED');
      expect(seen.events).toContain('event: status');
      expect(seen.events).toContain(`"id":"${seen.id}"`);
      expect(seen.events).toContain('"status":"COMPLETED"');
      expect(seen.unauthorized).toBe(401);
      passed = true;
    } finally {
      dir.cleanup(passed);
    }
  });
});

const require = createRequire(import.meta.url);

type Walk = (
  create: typeof createClient,
  baseUrl: string,
  tokens: { client: string; agent: string },
) => Promise<{
  id: string;
  submitted: { status: number; commandStatus: string; location: string | null };
  got: string;
  claimedLease: string;
  reported: string;
  events: string;
  unauthorized: number;
}>;

/** Type-only imports of the client library, so the compiled file needs nothing from the temp dir's node_modules. */
function clientTsconfig(dir: string): object {
  return {
    compilerOptions: {
      target: 'ES2023',
      lib: ['ES2023', 'DOM'],
      module: 'NodeNext',
      moduleResolution: 'NodeNext',
      strict: true,
      noUncheckedIndexedAccess: true,
      skipLibCheck: false,
      types: [],
      outDir: dir,
      rootDir: dir,
      paths: { 'openapi-fetch': [join(REPO_ROOT, 'node_modules/openapi-fetch')] },
    },
    files: [join(dir, 'walk.ts'), join(dir, 'api.d.ts')],
  };
}

/**
 * The walk a user of the generated client writes. The `@ts-expect-error` lines fail the
 * typecheck if the types do not know the wire format (schemas typed as `never` or `any`).
 */
const WALK_SOURCE = `
import type createClient from 'openapi-fetch';
import type { components, paths } from './api.js';

type Command = components['schemas']['Command'];
const status: components['schemas']['CommandStatus'] = 'PENDING';
// @ts-expect-error not a status
const wrong: components['schemas']['CommandStatus'] = 'DONE';

export async function walk(create: typeof createClient, baseUrl: string, tokens: { client: string; agent: string }) {
  const client = create<paths>({ baseUrl, headers: { authorization: 'Bearer ' + tokens.client } });
  const agent = create<paths>({ baseUrl, headers: { authorization: 'Bearer ' + tokens.agent } });

  // @ts-expect-error a DELAY payload needs ms
  void (() => client.POST('/commands', { body: { type: 'DELAY', payload: {} } }));

  const submit = await client.POST('/commands', { body: { type: 'DELAY', payload: { ms: 1 } } });
  if (!submit.data) throw new Error('submit: ' + submit.response.status);
  const id: string = submit.data.id;

  const got = await client.GET('/commands/{id}', { params: { path: { id } } });
  if (!got.data) throw new Error('get: ' + got.response.status);
  const before: Command = got.data;

  const next = await agent.GET('/commands/next', { params: { query: { agentId: 'openapi-walk' } } });
  if (!next.data) throw new Error('next: ' + next.response.status);
  const leaseId: string = next.data.leaseId;

  const result = await agent.PUT('/commands/{id}/result', {
    params: { path: { id } },
    body: { agentId: 'openapi-walk', leaseId, status: 'COMPLETED', result: { ok: true } },
  });
  if (!result.data) throw new Error('result: ' + result.response.status);
  const after: Command = result.data.command;

  const events = await client.GET('/commands/{id}/events', { params: { path: { id }, query: {} }, parseAs: 'text' });
  const refused = await agent.GET('/commands/{id}', { params: { path: { id } } });

  return {
    id,
    submitted: { status: submit.response.status, commandStatus: submit.data.status, location: submit.response.headers.get('location') },
    got: before.status,
    claimedLease: leaseId,
    reported: after.status,
    events: typeof events.data === 'string' ? events.data : '',
    unauthorized: refused.response.status,
    unused: [status, wrong],
  };
}
`;
