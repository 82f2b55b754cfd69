import postgres from 'postgres';
import type { TestProject } from 'vitest/node';
import { runMigrations } from '../../src/migrate/migrate.js';
import { SCHEMA_DEFAULT } from '../../src/db/identifier.js';
import { startTestServer } from './server.js';
import { buildCli } from './cli.js';
import { databaseUrl, dropDatabase } from './database-admin.js';
import './context.js';

/**
 * Starts (or finds) the test PostgreSQL once per run and migrates a template
 * database; each test file clones it (test/support/database.ts).
 */
export default async function setup(project: TestProject) {
  // Once per run, before any file: files that run the built CLI at the same time must not race two compilers on dist/.
  buildCli();
  const server = await startTestServer();
  const template = `spool_tpl_${process.pid}_${Date.now().toString(36)}`;
  const admin = postgres(server.url, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`CREATE DATABASE "${template}"`);
  } finally {
    await admin.end();
  }
  const sql = postgres(databaseUrl(server.url, template), { max: 1, onnotice: () => {} });
  try {
    await runMigrations(sql, SCHEMA_DEFAULT);
  } finally {
    await sql.end();
  }
  project.provide('postgresAdminUrl', server.url);
  project.provide('templateDatabase', template);
  project.provide('postgresSource', server.source);

  return async () => {
    await dropDatabase(server.url, template);
    await server.stop();
  };
}
