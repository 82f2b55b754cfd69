/**
 * Spool: a durable job queue for TypeScript that needs nothing but PostgreSQL.
 * This file is the whole public surface; everything here is documented in docs/.
 */
export { createSpool, Spool, type SpoolOptions, type EnqueueItem, type Kind } from './client.js';
export {
  defineJob,
  isJobDefinition,
  JOB_STATES,
  FINISHED_STATES,
  type Job,
  type JobState,
  type JobError,
  type JobContext,
  type JobDefinition,
  type JobDefinitionInput,
  type AnyJobDefinition,
  type PayloadOf,
} from './job.js';
export { type JobOptions, type WriteOptions } from './job-options.js';
export { MAX_ATTEMPTS_DEFAULT, QUEUE_DEFAULT, PRIORITY_DEFAULT } from './job-fields.js';
export { type EnqueueResult } from './queries/enqueue.js';
export { type ListFilter, type JobPage, LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX } from './queries/list.js';
export { type Transaction } from './db/executor.js';
export { SCHEMA_DEFAULT } from './db/identifier.js';
export { POOL_SIZE_DEFAULT } from './db/pool.js';
export { migrate } from './migrate/index.js';
export { type MigrationReport } from './migrate/migrate.js';
export {
  SpoolError,
  ValidationError,
  JobNotFoundError,
  IllegalTransitionError,
  UniqueConflictError,
  MigrationError,
  type SpoolErrorCode,
  type FieldIssue,
} from './errors.js';
export { PermanentError } from './errors.js';
export {
  Worker,
  type WorkerOptions,
  type WorkerStats,
  CONCURRENCY_DEFAULT,
  POLL_INTERVAL_DEFAULT,
  POLL_INTERVAL_IDLE_MAX_DEFAULT,
  ABANDON_AFTER_MS_DEFAULT,
  SHUTDOWN_GRACE_MS_DEFAULT,
} from './worker/worker.js';
export { LEASE_MS_DEFAULT, HEARTBEAT_MS_DEFAULT } from './worker/heartbeat.js';
export { BACKOFF_DEFAULT, backoffDelay, type Backoff, type BackoffPolicy } from './worker/backoff.js';
export { createLogger, type Logger, type LoggerOptions, type LogFormat } from './observability/logger.js';
export { SpoolMetrics, OTHER, LABEL_VALUES_MAX_DEFAULT, GAUGE_REFRESH_MS_DEFAULT, type MetricsOptions } from './observability/metrics.js';
export { startTracingFromEnv } from './observability/otel-sdk.js';
export { createApp, type ApiOptions } from './api/app.js';
export { type PruneReport } from './maintenance/pruner.js';
export { type DoctorReport } from './health/doctor.js';
export { startApiServer, type ApiServer } from './api/server.js';
export {
  defineSchedule,
  isScheduleDefinition,
  CATCH_UP_GRACE_MS,
  type ScheduleInput,
  type ScheduleDefinition,
} from './schedules/schedule.js';
export { type Schedule, ScheduleNotFoundError } from './schedules/store.js';
export { type Limit, type LimitScope, type LimitSettings, type LimitsConfig, type GroupInfo, LIMIT_SCOPES, parseRate } from './flow/limits.js';
export { type ApiKey, type CreatedKey, type CreateKeyOptions, type Role, type Permission, ROLES, ROLE_GRANTS } from './auth/keys.js';
export {
  type SpoolEvent,
  type EventFilter,
  type EventType,
  EVENT_TYPES,
  EVENT_RESULT_MAX_BYTES,
  compareEventIds,
} from './events/event.js';
export { type Subscription, SUBSCRIBER_BUFFER_DEFAULT } from './events/hub.js';
export { type WaitOptions, type WaitResult, type EventStreamOptions, WAIT_MS_DEFAULT, WAIT_MS_MAX } from './events/options.js';
export { verifyWebhook, WebhookVerificationError, SIGNATURE_HEADER, SIGNATURE_TOLERANCE_S } from './webhooks/signature.js';
export { webhookDeliveryJob, WEBHOOK_KIND, WEBHOOK_QUEUE, type WebhookDeliveryOptions } from './webhooks/delivery.js';
export { type Webhook, type WebhookWithSecret, type CreateWebhookInput, JOB_WEBHOOK_ID } from './webhooks/store.js';
export { PROGRESS_INTERVAL_MS_DEFAULT } from './worker/worker.js';
