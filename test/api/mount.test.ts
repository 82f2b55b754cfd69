import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import { createApp, createLogger, startApiServer } from '../../src/index.js';
import { api } from '../support/api.js';
import { useTestDatabase } from '../support/database.js';

const db = useTestDatabase();

describe('createApp mounted in your own Hono app', () => {
  it('serves the Spool API under a prefix beside your routes: jobs, errors, OpenAPI and the docs page with relative links', async () => {
    const app = new Hono();
    app.get('/', (c) => c.text('my app'));
    app.route('/spool', createApp({ auth: 'off', spool: db.spool, logger: createLogger({ level: 'silent' }), unknownKinds: 'allow' }));
    const call = api(app);

    expect((await call('GET', '/')).body).toBe('my app');
    const posted = await call('POST', '/spool/jobs', { kind: 'mounted.job', payload: { n: 1 } });
    expect(posted.status).toBe(201);
    expect((await call('GET', `/spool/jobs/${posted.body.job.id}`)).body.job).toMatchObject({ kind: 'mounted.job', payload: { n: 1 } });
    const missing = await call('GET', '/spool/jobs/999999999');
    expect(missing.status).toBe(404);
    expect(missing.body.error.code).toBe('not_found');
    expect((await call('GET', '/spool/openapi.json')).body.paths['/jobs']).toBeDefined();
    const page = await call('GET', '/spool/docs');
    expect(page.body).toContain('href="docs/swagger-ui.css"');
    expect((await call('GET', '/spool/docs/swagger-ui.css')).status).toBe(200);
    expect((await call('GET', '/spool/docs/init.js')).body).toContain("'../openapi.json'");
  });

  it('over a real socket with startApiServer', async () => {
    const app = new Hono();
    app.route('/queue', createApp({ auth: 'off', spool: db.spool, logger: createLogger({ level: 'silent' }) }));
    const server = await startApiServer(app, { host: '127.0.0.1', port: 0 });
    try {
      const res = await fetch(`http://127.0.0.1:${server.port}/queue/healthz`);
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ status: 'ok' });
    } finally {
      await server.close();
    }
  });
});
