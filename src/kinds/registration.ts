import { hostname } from 'node:os';
import { z } from 'zod';
import type { AnyJobDefinition } from '../job.js';
import { MAX_ATTEMPTS_DEFAULT, PRIORITY_DEFAULT, QUEUE_DEFAULT } from '../job-fields.js';
import type { KindRegistration } from '../queries/kinds.js';

/** Who registers when it is not a worker: `client:<host>:<pid>`. */
export function clientRegistrant(): string {
  return `client:${hostname()}:${process.pid}`;
}

/**
 * A job definition as a row of the kind registry: its defaults (where it
 * sets none: the registering worker's first queue and removeOnComplete, then
 * the named defaults) and its payload schema as JSON Schema, as
 * the caller sends the payload (zod's input side: fields with a default
 * are optional). Parts of a schema that JSON Schema cannot say (a
 * transform, a refine, a custom check) are left open, so the API accepts
 * what the worker may still refuse, never the other way round; a schema
 * zod cannot convert at all is registered as null (any JSON).
 */
export function kindRegistration(
  definition: AnyJobDefinition,
  worker: { removeOnComplete?: boolean; queue?: string } = {},
): KindRegistration {
  return {
    kind: definition.kind,
    queue: definition.queue ?? worker.queue ?? QUEUE_DEFAULT,
    priority: definition.priority ?? PRIORITY_DEFAULT,
    max_attempts: definition.maxAttempts ?? MAX_ATTEMPTS_DEFAULT,
    timeout_ms: definition.timeoutMs ?? null,
    remove_on_complete: definition.removeOnComplete ?? worker.removeOnComplete ?? null,
    tags: definition.tags ?? [],
    payload_schema: payloadJsonSchema(definition.schema),
  };
}

function payloadJsonSchema(schema: z.ZodType): unknown {
  try {
    const json = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
    // z.unknown() and z.any() become {} (plus $schema): nothing to check.
    const { $schema: _, ...rest } = json;
    return Object.keys(rest).length === 0 ? null : json;
  } catch {
    return null;
  }
}
