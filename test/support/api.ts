import type { Hono } from 'hono';

export type ApiCall = (
  method: string,
  path: string,
  body?: unknown,
  headers?: Record<string, string>,
  contentType?: string,
) => Promise<{ status: number; body: any; headers: Headers }>;

/**
 * Calls the app in-process (`app.request`, no socket); objects are sent as
 * JSON, strings as they are with `contentType`.
 */
export function api(app: Hono<any>): ApiCall {
  return async (method, path, body, headers = {}, contentType) => {
    const init: RequestInit = { method, headers: { ...headers } };
    if (body !== undefined) {
      init.body = typeof body === 'string' ? body : JSON.stringify(body);
      (init.headers as Record<string, string>)['content-type'] = contentType ?? 'application/json';
    }
    const res = await app.request(path, init);
    if (res.headers.get('content-type')?.startsWith('text/event-stream')) {
      // A stream does not end: its status and headers are the answer.
      await res.body?.cancel();
      return { status: res.status, body: null, headers: res.headers };
    }
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // not JSON (the /docs page)
    }
    return { status: res.status, body: parsed, headers: res.headers };
  };
}

/** The secret part of an API key (`spool_<12-char prefix>_<secret>`): the secret itself may contain `_`. */
export const secretOf = (key: string): string => key.slice('spool_'.length + 12 + 1);
