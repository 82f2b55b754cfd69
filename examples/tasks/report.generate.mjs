// Writes a CSV summary of jobs by queue and state to SPOOL_REPORTS_DIR
// (./.spool/reports): queue,state,jobs,oldest_created_at.
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { z } from 'zod';

const csvField = (value) => (/[",\n]/.test(value) ? `"${value.replaceAll('"', '""')}"` : value);

export default {
  schema: z.object({ queues: z.array(z.string()).optional() }),
  async handler({ queues }, ctx) {
    const { sql, quotedSchema } = ctx.spool;
    const rows = await sql.unsafe(
      `SELECT queue, state::text AS state, count(*)::bigint AS jobs, min(created_at) AS oldest
         FROM ${quotedSchema}.all_jobs
        WHERE $1::text[] IS NULL OR queue = ANY($1::text[])
        GROUP BY queue, state
        ORDER BY queue, state`,
      [queues ?? null],
    );
    const lines = ['queue,state,jobs,oldest_created_at'];
    for (const row of rows) lines.push([row.queue, row.state, String(row.jobs), row.oldest.toISOString()].map(csvField).join(','));
    const folder = resolve(process.env.SPOOL_REPORTS_DIR ?? '.spool/reports');
    await mkdir(folder, { recursive: true });
    const file = join(folder, `jobs-by-queue-${ctx.job.id}.csv`);
    await writeFile(file, `${lines.join('\n')}\n`);
    return { file, rows: rows.length };
  },
};
