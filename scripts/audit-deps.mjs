#!/usr/bin/env node
// npm run audit:deps: fails on known high or critical advisories in the
// dependencies Spool ships (dev tools left out), and says plainly when the
// registry's audit endpoint cannot be asked, instead of passing in silence.
// --strict: an audit that cannot run fails too (for release pipelines).
import { spawnSync } from 'node:child_process';

const strict = process.argv.includes('--strict');
const run = spawnSync('npm', ['audit', '--omit=dev', '--json'], { encoding: 'utf8', shell: process.platform === 'win32' });
let report;
try {
  report = JSON.parse(run.stdout);
} catch {
  report = undefined;
}

const counts = report?.metadata?.vulnerabilities;
if (!counts) {
  const why = report?.message ?? (run.stderr.trim().split('\n').find((line) => /error|ERR/.test(line)) ?? `npm audit exited ${run.status}`);
  process.stderr.write(
    `audit:deps: NOT RUN: the registry did not answer the audit request (${why}).\n` +
      'No advisory was checked. Run it where the registry serves /-/npm/v1/security/advisories/bulk (registry.npmjs.org does).\n',
  );
  process.exit(strict ? 2 : 0);
}

const { low = 0, moderate = 0, high = 0, critical = 0 } = counts;
process.stdout.write(`audit:deps: ${critical} critical, ${high} high, ${moderate} moderate, ${low} low (production dependencies)\n`);
if (high + critical > 0) {
  for (const [name, v] of Object.entries(report.vulnerabilities ?? {})) {
    if (v.severity === 'high' || v.severity === 'critical') process.stdout.write(`  ${v.severity}: ${name} ${v.range ?? ''}${v.fixAvailable ? ' (fix available: npm audit fix)' : ''}\n`);
  }
  process.exit(1);
}
