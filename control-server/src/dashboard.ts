import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';

/** Vite names every built asset by its content hash: a changed file is a new URL. */
const IMMUTABLE = 'public, max-age=31536000, immutable';
/** index.html names the current assets: the browser asks again each time (a 304 when unchanged). */
const REVALIDATE = 'no-cache';
/** No script or style from elsewhere, no framing; uPlot sets inline styles on its elements. */
const CSP = "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'";

/** Where the built dashboard is: `dist/` of the @agent-executor/dashboard package, if installed. */
export function dashboardDir(): string | undefined {
  try {
    const manifest = createRequire(import.meta.url).resolve('@agent-executor/dashboard/package.json');
    return join(dirname(manifest), 'dist');
  } catch {
    return undefined;
  }
}

/**
 * The dashboard at `/ui/`: static files only, the page then speaks the public API like any client
 * (it asks for API_TOKEN itself, so the files need none). When it was not built, `/ui/` answers
 * 503 with a page that says how to build it, rather than a bare 404.
 */
export async function serveDashboard(app: FastifyInstance, dir: string | undefined = dashboardDir()): Promise<void> {
  app.get('/ui', { schema: { hide: true } }, async (_request, reply) => reply.redirect('/ui/', 301));
  if (dir === undefined || !existsSync(join(dir, 'index.html'))) {
    const notBuilt = async (_request: unknown, reply: import('fastify').FastifyReply) =>
      reply.code(503).header('Cache-Control', 'no-store').type('text/html; charset=utf-8').send(NOT_BUILT_PAGE);
    app.get('/ui/', { schema: { hide: true } }, notBuilt);
    app.get('/ui/*', { schema: { hide: true } }, notBuilt);
    return;
  }
  await app.register(fastifyStatic, {
    root: dir,
    prefix: '/ui/',
    wildcard: true,
    cacheControl: false,
    // Only the built files: never a listing, never a dotfile.
    list: false,
    dotfiles: 'deny',
    index: ['index.html'],
    schemaHide: true,
    setHeaders: (res, path) => {
      const isAsset = /[\\/]assets[\\/]/.test(path);
      res.setHeader('Cache-Control', isAsset ? IMMUTABLE : REVALIDATE);
      res.setHeader('X-Content-Type-Options', 'nosniff');
      if (path.endsWith('.html')) res.setHeader('Content-Security-Policy', CSP);
    },
  });
}

const NOT_BUILT_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Dashboard not built</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40em; margin: 4em auto">
<h1>The dashboard was not built</h1>
<p>This server found no built dashboard (<code>dashboard/dist/index.html</code>).
Build it with <code>npm install</code> (its <code>prepare</code> step) or <code>npm run build</code>, then restart the server.</p>
<p>The API itself works: see <a href="/docs">/docs</a>.</p>
</body></html>
`;
