import type { Command } from 'commander';
import type { DoctorReport } from '../../health/doctor.js';
import { details, timestamp, writeJson, writeText } from '../output.js';
import { withSpool } from '../settings.js';
import { durationSchema, optionalFlag } from '../flags.js';

const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

/** `spool doctor`: storage health and plain-language warnings; exits 1 when there are warnings. */
export function registerDoctor(program: Command): void {
  program
    .command('doctor')
    .description('storage health: table sizes, dead rows, vacuum, snapshots holding back cleanup, history partitions; warnings with what to do (exit 1 if any)')
    .option('--json', 'print the report as JSON')
    .option('--snapshot-warn <duration>', 'warn about a transaction holding back cleanup this long (default 5m)')
    .action(async (options: { json?: boolean; snapshotWarn?: string }, command: Command) => {
      const warnMs = optionalFlag('--snapshot-warn', durationSchema, options.snapshotWarn);
      const report = await withSpool(command, (spool) => spool.doctor(warnMs === undefined ? {} : { xminWarnSeconds: warnMs / 1000 }));
      if (options.json) writeJson(report);
      else writeText(describe(report));
      if (report.warnings.length > 0) process.exitCode = 1;
    });
}

function describe(r: DoctorReport): string {
  const snapshot = r.oldestSnapshot
    ? `pid ${r.oldestSnapshot.pid} (${r.oldestSnapshot.backend ?? '?'}, ${r.oldestSnapshot.state ?? '?'}), ${Math.round(r.oldestSnapshot.ageSeconds)} s`
    : 'none';
  const text = details([
    ['hot table', `${mb(r.hot.bytes)}, ${r.hot.liveRows} live rows, ${r.hot.deadRows} dead`],
    ['last vacuum', `${timestamp(r.hot.lastVacuum)} (auto ${timestamp(r.hot.lastAutovacuum)})`],
    ['last analyze', `${timestamp(r.hot.lastAnalyze)} (auto ${timestamp(r.hot.lastAutoanalyze)})`],
    ['autovacuum', r.autovacuum ? 'on' : 'off'],
    ['history', `${mb(r.history.bytes)}, about ${r.history.rows} rows in ${r.history.partitions} partitions`],
    ['next to drop', r.history.nextDrop ? `${r.history.nextDrop} at ${timestamp(r.history.nextDropAt)}` : '-'],
    ['oldest snapshot', snapshot],
  ]);
  const warnings = r.warnings.length === 0 ? 'no warnings\n' : r.warnings.map((w) => `warning: ${w}`).join('\n') + '\n';
  return text + warnings;
}
