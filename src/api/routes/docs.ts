import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { Hono } from 'hono';
import type { ApiEnv } from '../app.js';
import { openApiDocument } from '../openapi.js';
import { packageVersion } from '../../package.js';

const require = createRequire(import.meta.url);
const VERSION = packageVersion();

// Swagger UI served from the swagger-ui-dist package, not a CDN: /docs works
// offline and behind a strict Content-Security-Policy. Links are relative, so
// the page also works where the API is mounted under a prefix (createApp).
const ASSETS: Record<string, string> = {
  'swagger-ui.css': 'text/css; charset=utf-8',
  'swagger-ui-bundle.js': 'text/javascript; charset=utf-8',
};

const PAGE = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Spool API</title><link rel="stylesheet" href="docs/swagger-ui.css"></head>
<body><div id="ui"></div><script src="docs/swagger-ui-bundle.js"></script>
<script src="docs/init.js"></script></body>
</html>`;

/** GET /openapi.json (OpenAPI 3) and GET /docs (Swagger UI over it). */
export function registerDocsRoutes(app: Hono<ApiEnv>): void {
  app.get('/openapi.json', (c) => c.json(openApiDocument(VERSION)));
  app.get('/docs', (c) => c.html(PAGE));
  app.get('/docs/init.js', (c) =>
    c.body("window.ui = SwaggerUIBundle({ url: new URL('../openapi.json', document.currentScript.src).href, dom_id: '#ui' });\n", 200, { 'Content-Type': 'text/javascript; charset=utf-8' }),
  );
  app.get('/docs/:asset', (c) => {
    const asset = c.req.param('asset');
    // Own keys only: "constructor" or "__proto__" are names on every object.
    const type = Object.hasOwn(ASSETS, asset) ? ASSETS[asset] : undefined;
    if (!type) return c.notFound();
    return c.body(readAsset(asset), 200, { 'Content-Type': type, 'Cache-Control': 'public, max-age=86400' });
  });
}

const assetCache = new Map<string, string>();
function readAsset(name: string): string {
  let text = assetCache.get(name);
  if (text === undefined) {
    const dir: string = require('swagger-ui-dist').getAbsoluteFSPath();
    text = readFileSync(join(dir, name), 'utf8');
    assetCache.set(name, text);
  }
  return text;
}
