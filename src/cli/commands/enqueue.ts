import type { Command } from 'commander';
import { ValidationError } from '../../errors.js';
import { jobOptionsSchema } from '../../job-options.js';
import { optionalFlag } from '../flags.js';
import { writeJson, writeText } from '../output.js';
import { commandConfig, withSpool } from '../settings.js';
import { KindCatalog } from '../../kinds/catalog.js';
import { postgresExecutor } from '../../db/executor.js';

interface EnqueueFlags {
  queue?: string;
  runAt?: string;
  priority?: string;
  group?: string;
  json?: boolean;
}

/** `spool enqueue <kind> [payload]`: one job with a JSON payload; prints its id. */
export function registerEnqueue(program: Command): void {
  program
    .command('enqueue')
    .description('enqueue one job and print its id')
    .argument('<kind>', 'which handler runs it, e.g. email.send')
    .argument('[payload]', 'the payload as one JSON argument, e.g. \'{"to":"a@b.c"}\'', '{}')
    .option('--queue <queue>', 'where it waits (default: the kind\'s registered queue, else "default")')
    .option('--run-at <iso>', 'run no earlier than this ISO 8601 time with a zone, e.g. 2030-01-01T09:00:00Z')
    .option('--priority <n>', 'lower runs first, -32768..32767 (default: the kind\'s, else 0)')
    .option('--group <group>', 'its group (tenant, customer) for fair share and group limits')
    .option('--json', 'print { id, duplicate } as JSON')
    .action(async (kind: string, payloadText: string, flags: EnqueueFlags, command: Command) => {
      const payload = parsePayload(payloadText);
      const options = {
        queue: optionalFlag('--queue', jobOptionsSchema.shape.queue, flags.queue),
        runAt: optionalFlag('--run-at', jobOptionsSchema.shape.runAt, flags.runAt),
        priority: optionalFlag('--priority', jobOptionsSchema.shape.priority, flags.priority, { integer: true }),
        group: optionalFlag('--group', jobOptionsSchema.shape.group, flags.group),
      };
      const { config } = commandConfig(command);
      const result = await withSpool(command, async (spool) => {
        // As POST /jobs does: an unknown kind (unless allowed) or a payload its schema refuses is an error naming the field.
        const catalog = new KindCatalog(postgresExecutor(spool.sql), spool.quotedSchema);
        const issues = await catalog.check([{ kind, payload, at: '' }], config.unknownKinds);
        if (issues.length > 0) throw new ValidationError(issues);
        return spool.enqueue(kind, payload, options);
      });
      if (flags.json) writeJson(result);
      else writeText(result.id);
    });
}

function parsePayload(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new ValidationError([
      {
        path: 'payload',
        message: `is not valid JSON (${(error as Error).message}): give one JSON value, quoted for the shell, e.g. '{"to":"a@b.c"}'`,
      },
    ]);
  }
}
