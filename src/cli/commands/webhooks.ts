import type { Command } from 'commander';
import { EVENT_TYPES } from '../../queries/events.js';
import { WEBHOOK_QUEUE } from '../../webhooks/delivery.js';
import { WebhookNotFoundError, type Webhook, type WebhookWithSecret } from '../../webhooks/store.js';
import { SpoolError } from '../../errors.js';
import { table, writeJson, writeText } from '../output.js';
import { withSpool } from '../settings.js';
import { cliAudit } from '../audit.js';

const when = (d: Date | null) => (d ? d.toISOString().replace(/\.\d{3}Z$/, 'Z') : '-');

function printSecret(made: WebhookWithSecret, json: boolean | undefined, verb: string): void {
  if (json) return writeJson(made);
  writeText(`${verb} webhook ${made.webhook.id}${made.webhook.url ? ` → ${made.webhook.url}` : ''} (${made.webhook.events.join(', ')}).
Its signing secret, shown this once (verifyWebhook(secret, headers, body) checks deliveries):
${made.secret}`);
}

/** `spool webhooks add|list|remove|rotate|pause|resume|deliveries|replay` (docs/events.md, "Webhooks"). */
export function registerWebhooks(program: Command): void {
  const webhooks = program.command('webhooks').description('outgoing webhooks: signed POSTs of job events (docs/events.md)');
  webhooks
    .command('add')
    .description('subscribe a URL to events; prints its signing secret once')
    .requiredOption('--url <url>', 'where to POST (http or https)')
    .requiredOption('--events <types>', `comma-separated: ${EVENT_TYPES.join(', ')}`)
    .option('--queue <queue>', 'only jobs of this queue')
    .option('--kind <kind>', 'only jobs of this kind')
    .option('--tenant <tenant>', 'only jobs of this tenant')
    .option('--allow-private', 'let it reach private and loopback addresses (refused by default)')
    .option('--json', 'print { webhook, secret } as JSON')
    .action(async (options: { url: string; events: string; queue?: string; kind?: string; tenant?: string; allowPrivate?: boolean; json?: boolean }, command: Command) => {
      const made = await withSpool(command, async (spool) => {
        const created = await spool.webhooks.create({
          url: options.url,
          events: options.events.split(',').map((e) => e.trim()) as never,
          queue: options.queue,
          kind: options.kind,
          tenant: options.tenant,
          allowPrivate: options.allowPrivate === true,
        });
        await spool.audit.record(cliAudit('webhook.create', created.webhook.id, { url: created.webhook.url, events: created.webhook.events }));
        return created;
      });
      printSecret(made, options.json, 'created');
    });
  webhooks
    .command('list')
    .description('webhooks (never their secrets)')
    .option('--json', 'print { webhooks } as JSON')
    .action(async (options: { json?: boolean }, command: Command) => {
      const rows = await withSpool(command, (spool) => spool.webhooks.list());
      if (options.json) return writeJson({ webhooks: rows });
      writeText(table([
        { header: 'id', cell: (w: Webhook) => w.id },
        { header: 'url', cell: (w) => w.url ?? '(per-job URLs)' },
        { header: 'events', cell: (w) => w.events.join(',') },
        { header: 'filter', cell: (w) => [w.queue && `queue=${w.queue}`, w.kind && `kind=${w.kind}`, w.tenant && `tenant=${w.tenant}`].filter(Boolean).join(' ') || '-' },
        { header: 'state', cell: (w) => (w.paused ? 'paused' : 'active') },
        { header: 'created', cell: (w) => when(w.createdAt) },
      ], rows));
    });
  webhooks
    .command('remove <id>')
    .description('remove a webhook (deliveries already queued for it are skipped)')
    .action(async (id: string, _options: unknown, command: Command) => {
      await withSpool(command, async (spool) => {
        if (!(await spool.webhooks.remove(id))) throw new WebhookNotFoundError(id);
        await spool.audit.record(cliAudit('webhook.remove', id, {}));
      });
      writeText(`removed webhook ${id}`);
    });
  webhooks
    .command('rotate <id>')
    .description('a new signing secret; the old one still signs for 24 h (a second v1 in Spool-Signature). `job` signs per-job webhooks')
    .option('--json', 'print { webhook, secret } as JSON')
    .action(async (id: string, options: { json?: boolean }, command: Command) => {
      const made = await withSpool(command, async (spool) => {
        const rotated = await spool.webhooks.rotate(id);
        await spool.audit.record(cliAudit('webhook.rotate', id, {}));
        return rotated;
      });
      printSecret(made, options.json, 'rotated');
    });
  for (const [name, paused] of [['pause', true], ['resume', false]] as const) {
    webhooks
      .command(`${name} <id>`)
      .description(paused ? 'hold deliveries (they retry until resumed or dead)' : 'deliver again')
      .action(async (id: string, _options: unknown, command: Command) => {
        await withSpool(command, async (spool) => {
          await spool.webhooks.setPaused(id, paused);
          await spool.audit.record(cliAudit(`webhook.${name}`, id, {}));
        });
        writeText(`${paused ? 'paused' : 'resumed'} webhook ${id}`);
      });
  }
  webhooks
    .command('deliveries <id>')
    .description(`a webhook's deliveries (jobs of queue ${WEBHOOK_QUEUE}, grouped by webhook), newest first`)
    .option('--state <states>', 'comma-separated, e.g. dead (its dead-letter queue)')
    .option('--json', 'print the page as JSON')
    .action(async (id: string, options: { state?: string; json?: boolean }, command: Command) => {
      const page = await withSpool(command, async (spool) => {
        if (!(await spool.webhooks.get(id))) throw new WebhookNotFoundError(id);
        return spool.listJobs({ queue: WEBHOOK_QUEUE, group: id, state: options.state?.split(',') as never });
      });
      if (options.json) return writeJson(page);
      writeText(table([
        { header: 'job', cell: (j: (typeof page.jobs)[number]) => j.id, align: 'right' },
        { header: 'state', cell: (j) => j.state },
        { header: 'attempt', cell: (j) => `${j.attempt}/${j.maxAttempts}`, align: 'right' },
        { header: 'event', cell: (j) => `${(j.payload as { event?: { type?: string; id?: string } }).event?.type ?? '?'} ${(j.payload as { event?: { id?: string } }).event?.id ?? ''}` },
        { header: 'last error', cell: (j) => (j.errors.at(-1)?.message ?? '-').slice(0, 60) },
      ], page.jobs));
    });
  webhooks
    .command('replay <id>')
    .description('run a webhook\'s dead deliveries again')
    .action(async (id: string, _options: unknown, command: Command) => {
      const { ids } = await withSpool(command, async (spool) => {
        if (!(await spool.webhooks.get(id))) throw new WebhookNotFoundError(id);
        const replayed = await spool.replayDead({ queue: WEBHOOK_QUEUE, group: id });
        await spool.audit.record(cliAudit('webhook.replay', id, { replayed: replayed.ids.length }));
        return replayed;
      });
      if (ids.length === 0) throw new SpoolError('not_found', `webhook ${id} has no dead deliveries`);
      writeText(`replayed ${ids.length} dead deliveries of webhook ${id}`);
    });
}
