import type { Command } from 'commander';
import type { PruneReport } from '../../maintenance/pruner.js';
import { writeJson, writeText } from '../output.js';
import { withSpool } from '../settings.js';
import { audited } from '../audit.js';

/** `spool prune [--dry-run]`: keep history in shape now (the leader does it every minute). */
export function registerPrune(program: Command): void {
  program
    .command('prune')
    .description('drop expired history partitions, delete other expired history in batches, create partitions ahead, move leftover finished rows out of the hot table')
    .option('--dry-run', 'change nothing; print what would be dropped and how many rows are expired')
    .option('--json', 'print the report as JSON')
    .action(async (options: { dryRun?: boolean; json?: boolean }, command: Command) => {
      const report = await withSpool(command, (spool) =>
        audited(spool, 'maintenance.prune', null, () => spool.prune({ dryRun: options.dryRun === true }), (r) => ({ dryRun: r.dryRun, deleted: r.deleted, dropped: r.dropped.length })));
      if (options.json) writeJson(report);
      else writeText(describe(report));
    });
}

function describe(report: PruneReport): string {
  const would = report.dryRun ? 'would drop' : 'dropped';
  const lines = [
    ...report.dropped.map((d) => `${would} ${d.partition} (${d.state}, about ${d.rows} rows)`),
    ...report.deferred.map((name) => `deferred ${name}: its lock was busy; the next run drops it`),
    report.dryRun ? `${report.deleted} expired rows would be deleted in batches` : `deleted ${report.deleted} expired rows in batches`,
  ];
  if (!report.dryRun) lines.push(`moved ${report.moved} finished rows from the hot table into history`, `created ${report.created.length} partitions ahead`);
  const keep = Object.entries(report.retentionSeconds).map(([state, s]) => `${state} ${Math.round(s / 3600)}h`).join(', ');
  lines.push(`retention (longest per state): ${keep}`);
  return lines.join('\n');
}
