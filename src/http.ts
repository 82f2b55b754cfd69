/** `spool-queue/http`: the typed HTTP client, without the rest of Spool. */
export { SpoolHttpClient, SpoolHttpError, type SpoolHttpClientOptions, type HttpJob, type HttpEvent, type HttpJobPage, type HttpEnqueueOptions, type HttpEventOptions } from './http/client.js';
export { verifyWebhook, WebhookVerificationError, SIGNATURE_HEADER, SIGNATURE_TOLERANCE_S } from './webhooks/signature.js';
