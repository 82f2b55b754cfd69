import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';

export interface CliRun {
  child: ChildProcess;
  /** Resolves with the exit code once the process ends. */
  exited: Promise<number | null>;
  output: () => { stdout: string; stderr: string };
}

/**
 * Runs `spool <args>` from source (tsx), with extra environment. `group`
 * makes it the leader of its own process group, as a shell does with a
 * foreground command, so a test can signal the whole group as Ctrl-C does.
 */
export function runCli(args: string[], env: Record<string, string | undefined> = {}, options: { group?: boolean } = {}): CliRun {
  return spawnNode(['--import', 'tsx', 'src/cli/main.ts', ...args], env, options.group);
}

/** Where `npm run build` puts the CLI: what `npx spool` runs once installed (built once per run by the global setup). */
export const BUILT_CLI = 'dist/src/cli/main.js';

/**
 * Compiles src/ to dist/ as `npm run build` does. Type errors are `npm run
 * typecheck`'s to report: tsc still emits with them (exit code 2); this fails
 * when nothing was emitted (exit code 1, or tsc did not run).
 */
export function buildCli(): void {
  const build = spawnSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'], { encoding: 'utf8' });
  if (build.error || (build.status !== 0 && build.status !== 2) || !existsSync(BUILT_CLI)) {
    throw new Error(`tsc -p tsconfig.build.json did not emit ${BUILT_CLI}:\n${build.error?.message ?? ''}${build.stdout}${build.stderr}`);
  }
}

/** Runs `spool <args>` from the build (`buildCli` first), with extra environment. */
export function runBuiltCli(args: string[], env: Record<string, string | undefined> = {}): CliRun {
  return spawnNode([BUILT_CLI, ...args], env);
}

function spawnNode(nodeArgs: string[], env: Record<string, string | undefined>, group = false): CliRun {
  const child = spawn(process.execPath, nodeArgs, {
    detached: group,
    // Port 0 for `spool work`'s metrics: test files run at once, and a fixed port would collide.
    env: { ...process.env, SPOOL_LOG_LEVEL: 'warn', SPOOL_METRICS_PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk) => (stdout += chunk));
  child.stderr!.on('data', (chunk) => (stderr += chunk));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return { child, exited, output: () => ({ stdout, stderr }) };
}

/** `spool <args>` from the build against the database at `url`, awaited: exit code, stdout and stderr. */
export function builtCliOn(url: () => string) {
  return async (args: string[]) => {
    const run = runBuiltCli(args, { DATABASE_URL: url(), SPOOL_CONFIG: undefined });
    const code = await run.exited;
    return { code, ...run.output() };
  };
}
