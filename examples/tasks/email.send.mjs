// Sends an email. With SMTP_URL set (smtp://user:pass@host:587) it is
// delivered over SMTP, but only from the senders SPOOL_EMAIL_FROM allows
// (addresses, or @domains, comma-separated): without that list it relays
// nothing, since anyone who may enqueue would otherwise send mail as anyone.
// Without SMTP_URL the message is written as an .eml file to
// SPOOL_OUTBOX_DIR (./.spool/outbox), which any mail client opens.
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import nodemailer from 'nodemailer';
import { z } from 'zod';

const permanent = (message) => Object.assign(new Error(message), { name: 'PermanentError' });

/** The senders SMTP may send as: exact addresses and @domains, lower-cased. */
function allowedSenders() {
  return (process.env.SPOOL_EMAIL_FROM ?? '').split(',').map((s) => s.trim().toLowerCase()).filter(Boolean);
}

/** The address of a From value (`Name <a@b.c>` or `a@b.c`), lower-cased. */
function addressOf(from) {
  return (/<([^<>]+)>\s*$/.exec(from)?.[1] ?? from).trim().toLowerCase();
}

export default {
  schema: z.object({
    to: z.email(),
    subject: z.string().min(1).max(998),
    text: z.string().default(''),
    from: z.string().default('Spool <spool@localhost>'),
  }),
  maxAttempts: 5,
  timeoutMs: 30_000,
  async handler(mail, ctx) {
    if (process.env.SMTP_URL) {
      const allowed = allowedSenders();
      if (allowed.length === 0) {
        throw permanent('SMTP relay is off: set SPOOL_EMAIL_FROM to the senders this task may send as (addresses or @domains, comma-separated)');
      }
      const sender = addressOf(mail.from);
      if (!allowed.some((entry) => (entry.startsWith('@') ? sender.endsWith(entry) : sender === entry))) {
        throw permanent(`from: ${JSON.stringify(sender)} is not an allowed sender (SPOOL_EMAIL_FROM)`);
      }
      const transport = nodemailer.createTransport(process.env.SMTP_URL);
      const info = await transport.sendMail(mail);
      ctx.log.info({ message_id: info.messageId }, 'email sent over SMTP');
      return { messageId: info.messageId, via: 'smtp' };
    }
    const transport = nodemailer.createTransport({ streamTransport: true, buffer: true, newline: 'unix' });
    const info = await transport.sendMail(mail);
    const outbox = resolve(process.env.SPOOL_OUTBOX_DIR ?? '.spool/outbox');
    await mkdir(outbox, { recursive: true });
    const file = join(outbox, `${ctx.job.id}.eml`);
    await writeFile(file, info.message);
    ctx.log.info({ file }, 'email written to the outbox (SMTP_URL is not set)');
    return { messageId: info.messageId, via: 'outbox', file };
  },
};
