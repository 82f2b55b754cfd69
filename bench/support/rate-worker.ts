/**
 * One worker process of bench/fairness.ts's rate-limit run: no-op handlers
 * for `bench.rated` in queue `rated`, at CONCURRENCY. Prints "ready" once started;
 * stops on SIGTERM.
 */
import { z } from 'zod';
import { spoolModule } from './spool.js';

const { createLogger, createSpool, defineJob } = spoolModule;
const spool = createSpool({ connectionString: process.env.DATABASE_URL!, poolSize: 4 });
const rated = defineJob({ kind: 'bench.rated', queue: 'rated', schema: z.object({}).passthrough(), handler: () => undefined });
const worker = await spool.work({ jobs: [rated], concurrency: Number(process.env.CONCURRENCY ?? 50), logger: createLogger({ level: 'warn' }), handleSignals: false });
process.stdout.write('ready\n');
process.once('SIGTERM', () => void worker.stop({ graceMs: 5_000 }).then(() => spool.close()).then(() => process.exit(0)));
