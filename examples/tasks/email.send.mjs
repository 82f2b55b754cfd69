// Sends an email. With SMTP_URL set (smtp://user:pass@host:587) it is
// delivered over SMTP; otherwise the message is written as an .eml file to
// SPOOL_OUTBOX_DIR (./.spool/outbox), which any mail client opens.
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import nodemailer from 'nodemailer';
import { z } from 'zod';

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
