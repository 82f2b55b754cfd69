import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { createApp, createLogger } from '../../src/index.js';
import { openApiDocument } from '../../src/api/openapi.js';
import { ROUTE_ACCESS } from '../../src/api/access.js';
import { api, type ApiCall } from '../support/api.js';
import { useTestDatabase } from '../support/database.js';

// Property-based fuzzing of every route of the OpenAPI document: requests
// built from each route's own schemas, with hostile values mixed in at any
// leaf. Properties: no answer is a 5xx, and an answer of 4xx stored no job.

const db = useTestDatabase();
let call: ApiCall;

type JsonSchema = {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  enum?: unknown[];
  const?: unknown;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  allOf?: JsonSchema[];
  format?: string;
  minimum?: number;
  maximum?: number;
  minItems?: number;
  maxItems?: number;
  maxLength?: number;
  pattern?: string;
  nullable?: boolean;
  additionalProperties?: boolean | JsonSchema;
};

/** UTF-16 code units, lone surrogates included (fc.string's default units are whole characters). */
const anyUnits = fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)), maxLength: 12 });

/** Values the fuzzing found, and more of their kind. */
const HOSTILE_STRINGS = [
  '', ' ', '\u0000', 'a\u0000b', '\ud800', 'x\udc00', '\ud83d\ude00', '%00', '..', '../../etc/passwd', '/etc/passwd',
  'constructor', '__proto__', 'toString', 'hasOwnProperty', 'null', 'true', '-1', '0', '1e309', '1.5',
  '9223372036854775807', '9223372036854775808', '9999999999999999999', '18446744073709551616', '9'.repeat(40),
  '0000-01-01T00:00:00Z', '2030-01-01T00:00:00+16:00', '2030-01-01T00:00:00-99:99', `2030-01-01T00:00:00.${'1'.repeat(200)}Z`,
  '2030-02-30T00:00:00Z', '9999-12-31T23:59:59.999999999-15:59', '275760-09-13T00:00:00Z', 'x'.repeat(5000), '* * * * *', '61 * * * *',
  '@every 0s', 'v1:desc:1', 'djE6ZGVzYzo5OTk5OTk5OTk5OTk5OTk5OTk5',
];
const hostileString = fc.oneof({ arbitrary: fc.constantFrom(...HOSTILE_STRINGS), weight: 3 }, { arbitrary: anyUnits, weight: 1 });
const hostileNumber = fc.oneof(
  fc.constantFrom(0, -1, 1.5, -0, 2 ** 31, 2 ** 53 + 2, 2 ** 63, 1e308, -1e308, 32768, -32769),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
);
const deep = (depth: number) => JSON.parse('['.repeat(depth) + ']'.repeat(depth)) as unknown;
const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  hostileString,
  hostileNumber,
  fc.constantFrom(null, true, false, [], {}, deep(70), deep(2000), { __proto__: 1 }, { constructor: 'x' }),
  fc.jsonValue({ maxDepth: 3 }),
);

/** A value for a JSON Schema, hostile at any leaf now and then. */
function arbitraryFor(schema: JsonSchema | undefined, depth = 0): fc.Arbitrary<unknown> {
  const own = valid(schema ?? {}, depth);
  // A leaf of the schema's own type goes wrong in its own way most often (a bad date where a date goes).
  const type = Array.isArray(schema?.type) ? schema.type[0] : schema?.type;
  const sameType = type === 'string' ? hostileString : type === 'integer' || type === 'number' ? hostileNumber : hostileValue;
  return fc.oneof(
    // About one hostile leaf per request: more, and the first bad field hides what the others would reach.
    { arbitrary: own, weight: depth === 0 ? 8 : 10 },
    { arbitrary: sameType, weight: 1 },
    { arbitrary: hostileValue, weight: depth === 0 ? 1 : 0 },
  );
}

function valid(schema: JsonSchema, depth: number): fc.Arbitrary<unknown> {
  const options = schema.anyOf ?? schema.oneOf;
  if (options) return fc.oneof(...options.map((s) => arbitraryFor(s, depth)));
  if (schema.allOf?.length) return arbitraryFor(schema.allOf[0], depth);
  if (schema.const !== undefined) return fc.constant(schema.const);
  if (schema.enum) return fc.constantFrom(...schema.enum);
  const type = Array.isArray(schema.type) ? schema.type[0] : schema.type;
  switch (type) {
    case 'object': {
      if (depth > 4 || !schema.properties) return fc.dictionary(fc.string({ maxLength: 8 }), hostileValue, { maxKeys: 3 });
      const fields = Object.fromEntries(Object.entries(schema.properties).map(([name, s]) => [name, arbitraryFor(s, depth + 1)]));
      return fc.record(fields, { requiredKeys: schema.required ?? [] });
    }
    case 'array':
      return fc.array(arbitraryFor(schema.items, depth + 1), { minLength: Math.min(schema.minItems ?? 0, 3), maxLength: Math.min(schema.maxItems ?? 3, 3) });
    case 'string':
      if (schema.format === 'date-time') {
        return fc.oneof(fc.date({ noInvalidDate: true }).map((d) => d.toISOString()), fc.constantFrom(...HOSTILE_STRINGS.filter((t) => /^\d{4,}-/.test(t))));
      }
      if (schema.pattern) return fc.stringMatching(new RegExp(schema.pattern)).filter((t) => t.length >= 1 && t.length <= (schema.maxLength ?? 64));
      return fc.oneof(fc.stringMatching(/^[a-z][a-z0-9._-]{0,11}$/), fc.string({ minLength: 1, maxLength: 12 }));
    case 'integer':
      return fc.integer({ min: Math.max(schema.minimum ?? -1000, -(2 ** 31)), max: Math.min(schema.maximum ?? 100_000, 2 ** 31 - 1) });
    case 'number':
      return fc.double({ noNaN: true, noDefaultInfinity: true, min: schema.minimum ?? -1e6, max: schema.maximum ?? 1e6 });
    case 'boolean':
      return fc.boolean();
    default:
      return fc.jsonValue({ maxDepth: 2 });
  }
}

/** Percent-encodes text as its UTF-8 bytes (a lone surrogate becomes U+FFFD, as a browser sends it), or sends raw escapes. */
const pathPart = fc.oneof(
  { arbitrary: fc.stringMatching(/^[a-z0-9][a-z0-9._:-]{0,11}$/), weight: 1 },
  { arbitrary: hostileString.map((text) => [...Buffer.from(text, 'utf8')].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('')), weight: 3 },
  { arbitrary: fc.constantFrom('%ED%A0%80', '%FF', '%', '%zz', '1', '9223372036854775808'), weight: 1 },
);

interface Operation {
  method: string;
  path: string;
  parameters: { name: string; in: string }[];
  body?: JsonSchema;
}

/** Every route the API declares access for, with what the OpenAPI document says of it (the docs routes it leaves out too). */
function operations(): Operation[] {
  const doc = openApiDocument('fuzz') as { paths: Record<string, Record<string, { parameters?: { name: string; in: string }[]; requestBody?: { content: Record<string, { schema: JsonSchema }> } }>> };
  return Object.keys(ROUTE_ACCESS).map((route) => {
    const [method, template] = route.split(' ') as [string, string];
    const path = template.replace(/:(\w+)/g, '{$1}');
    const op = doc.paths[path]?.[method.toLowerCase()];
    const parameters = op?.parameters ?? [...path.matchAll(/\{(\w+)\}/g)].map((m) => ({ name: m[1]!, in: 'path' }));
    return { method, path, parameters, body: op?.requestBody?.content['application/json']?.schema };
  });
}

function requestFor(op: Operation): fc.Arbitrary<{ method: string; url: string; body: unknown }> {
  const pathParams = op.parameters.filter((p) => p.in === 'path');
  const queryParams = op.parameters.filter((p) => p.in === 'query');
  return fc.record({
    path: fc.tuple(...pathParams.map(() => pathPart)),
    query: fc.subarray(queryParams.map((p) => p.name)).chain((names) => fc.tuple(...names.map((name) => fc.tuple(fc.constant(name), pathPart)))),
    body: op.body ? arbitraryFor(op.body) : fc.constant(undefined),
  }).map(({ path, query, body }) => {
    let index = 0;
    const filled = op.path.replace(/\{\w+\}/g, () => path[index++] as string);
    const search = query.map(([name, value]) => `${name}=${value}`).join('&');
    return { method: op.method, url: search ? `${filled}?${search}` : filled, body };
  });
}

async function jobsStored(): Promise<string> {
  const [row] = await db.sql`SELECT count(*)::text || ':' || coalesce(max(id), 0)::text AS mark FROM spool.all_jobs`;
  return row!.mark as string;
}

beforeAll(() => {
  call = api(createApp({ spool: db.spool, logger: createLogger({ level: 'silent' }), auth: 'off', unknownKinds: 'allow' }));
});

describe('the API under property-based fuzzing', () => {
  const all = operations();

  it('covers every route of the OpenAPI document', () => {
    expect(all.length).toBeGreaterThan(30);
  });

  // One property per route, so a finding names its route; each bounded in runs and in time.
  for (const op of all) {
    it(`${op.method} ${op.path}: no 5xx, and a 4xx stores no job`, async () => {
      await fc.assert(
        fc.asyncProperty(requestFor(op), async (request) => {
          const before = await jobsStored();
          const serialised = request.body === undefined ? undefined : safeStringify(request.body);
          const res = await call(request.method, request.url, serialised);
          if (res.status >= 500) throw new Error(`${request.method} ${request.url} answered ${res.status}: ${JSON.stringify(res.body)}`);
          if (res.status >= 400) {
            expect(await jobsStored(), `${request.method} ${request.url} answered ${res.status} but stored a job`).toBe(before);
            expect(res.body.error.code, 'a 4xx carries an error code').toEqual(expect.any(String));
          }
        }),
        { numRuns: 300, interruptAfterTimeLimit: 15_000, seed: Number(process.env.SPOOL_FUZZ_SEED ?? Date.now() % 2 ** 31) },
      );
    }, 60_000);
  }
});

/** JSON text for a body; a value JSON.stringify cannot write (too deep for the stack) is sent as its own text. */
function safeStringify(value: unknown): string {
  try {
    return JSON.stringify(value) ?? 'null';
  } catch {
    return '['.repeat(100_000) + ']'.repeat(100_000);
  }
}

describe('the fuzzing findings, each a 4xx naming the field', () => {
  const post = (body: string) => call('POST', '/jobs', body);
  const cases: [string, () => ReturnType<ApiCall>, number, string][] = [
    ['runAt offset past +15:59', () => post('{"kind":"a","runAt":"2030-01-01T00:00:00+16:00"}'), 400, 'runAt'],
    ['runAt in year 0000', () => post('{"kind":"a","runAt":"0000-01-01T00:00:00Z"}'), 400, 'runAt'],
    ['runAt with 200 fractional digits', () => post(`{"kind":"a","runAt":"2030-01-01T00:00:00.${'1'.repeat(200)}Z"}`), 400, 'runAt'],
    ['a lone surrogate in the payload', () => post('{"kind":"a","payload":{"x":"\\ud800"}}'), 400, 'payload.x'],
    ['a lone surrogate in a payload key', () => post('{"kind":"a","payload":{"\\udc00":1}}'), 400, 'payload.\udc00'],
    ['a lone surrogate in a tag', () => post('{"kind":"a","tags":["ok","\\ud800"]}'), 400, 'tags.1'],
    ['a lone surrogate in the unique key', () => post('{"kind":"a","uniqueKey":"\\udc00"}'), 400, 'uniqueKey'],
    ['a lone surrogate in metadata', () => post('{"kind":"a","metadata":{"m":["\\ud800"]}}'), 400, 'metadata.m.0'],
    ['a NUL in the payload', () => post('{"kind":"a","payload":"\\u0000"}'), 400, 'payload'],
    ['a payload nested 10,000 deep', () => post(`{"kind":"a","payload":${'['.repeat(10_000)}${']'.repeat(10_000)}}`), 400, 'payload'],
    ['a payload nested 64 deep', () => post(`{"kind":"a","payload":${'['.repeat(65)}${']'.repeat(65)}}`), 400, 'payload'],
    ['?tag=%00', () => call('GET', '/jobs?tag=%00'), 400, 'tag'],
    ['an id past 2^63-1 to purge', () => call('DELETE', '/dead?ids=9223372036854775808'), 400, 'ids'],
    ['an id of 10^19 to replay', () => call('POST', '/dead/replay', { ids: ['9999999999999999999'] }), 400, 'ids.0'],
    ['an id past 2^63-1 to read', () => call('GET', '/jobs/9223372036854775808'), 400, 'id'],
    ['a cursor past 2^63-1', () => call('GET', `/jobs?cursor=${Buffer.from('v1:desc:9999999999999999999').toString('base64url')}`), 400, 'cursor'],
    ['finishedBefore with a bad offset', () => call('POST', '/dead/replay', { finishedBefore: '2030-01-01T00:00:00+16:00' }), 400, 'finishedBefore'],
  ];
  for (const [name, send, status, field] of cases) {
    it(name, async () => {
      const before = await jobsStored();
      const res = await send();
      expect(res.status).toBe(status);
      const paths: string[] = res.body.error.details.map((d: { path: string }) => d.path);
      // A too-deep value is named down to where it goes too deep (payload.0.0…).
      expect(paths.some((path) => path === field || path.startsWith(`${field}.0.0`)), `${paths.join(', ')} names ${field}`).toBe(true);
      expect(await jobsStored()).toBe(before);
    });
  }

  it('a payload nested 63 deep is stored', async () => {
    const res = await post(`{"kind":"a","payload":${'['.repeat(64)}${']'.repeat(64)}}`);
    expect(res.status).toBe(201);
  });

  it('object prototype names are not asset names: GET /docs/constructor, /docs/__proto__ answer 404', async () => {
    for (const name of ['constructor', '__proto__', 'toString', 'hasOwnProperty']) {
      const res = await call('GET', `/docs/${name}`);
      expect(res.status, name).toBe(404);
    }
  });
});
