import { beforeAll, describe, expect, it } from 'vitest';
import { ValidationError, type Job } from '../../src/index.js';
import { useTestDatabase } from '../support/database.js';

const db = useTestDatabase();
let ids: string[] = [];

beforeAll(async () => {
  const results = await db.spool.enqueueMany([
    { job: 'list.a', queue: 'q1', tags: ['red'] },
    { job: 'list.b', queue: 'q1', tags: ['red', 'blue'] },
    { job: 'list.a', queue: 'q2' },
    { job: 'list.b', queue: 'q2', delayMs: 60_000 },
    { job: 'list.a', queue: 'q1', tags: ['blue'] },
  ]);
  ids = results.map((r) => r.id);
  await db.sql`UPDATE spool.jobs SET created_at = '2020-01-01' WHERE id = ${ids[0]!}`;
});

const idsOf = (jobs: Job[]) => jobs.map((j) => j.id);

describe('listJobs', () => {
  it('lists newest first by default, oldest first with order asc', async () => {
    expect(idsOf((await db.spool.listJobs()).jobs)).toEqual([...ids].reverse());
    expect(idsOf((await db.spool.listJobs({ order: 'asc' })).jobs)).toEqual(ids);
  });

  it('filters by state, queue, kind, tag and created range, combined with AND', async () => {
    expect(idsOf((await db.spool.listJobs({ state: 'scheduled' })).jobs)).toEqual([ids[3]]);
    expect(idsOf((await db.spool.listJobs({ queue: 'q1', order: 'asc' })).jobs)).toEqual([ids[0], ids[1], ids[4]]);
    expect(idsOf((await db.spool.listJobs({ kind: ['list.b'], order: 'asc' })).jobs)).toEqual([ids[1], ids[3]]);
    expect(idsOf((await db.spool.listJobs({ tag: 'blue', order: 'asc' })).jobs)).toEqual([ids[1], ids[4]]);
    expect(idsOf((await db.spool.listJobs({ createdBefore: new Date('2021-01-01') })).jobs)).toEqual([ids[0]]);
    expect(idsOf((await db.spool.listJobs({ createdAfter: new Date('2021-01-01'), queue: 'q1', tag: 'red' })).jobs)).toEqual([ids[1]]);
    expect(idsOf((await db.spool.listJobs({ state: ['scheduled', 'available'], queue: 'q2', order: 'asc' })).jobs)).toEqual([
      ids[2],
      ids[3],
    ]);
  });

  it('pages by keyset with a cursor until the last page', async () => {
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await db.spool.listJobs({ limit: 2, order: 'asc', ...(cursor ? { cursor } : {}) });
      seen.push(...idsOf(page.jobs));
      cursor = page.nextCursor ?? undefined;
      pages++;
    } while (cursor);
    expect(seen).toEqual(ids);
    expect(pages).toBe(3);
  });

  it('refuses a malformed cursor, a cursor of the other order, an unknown state and a bad limit', async () => {
    const fail = async (filter: object) => {
      const error = await db.spool.listJobs(filter as never).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ValidationError);
      return (error as ValidationError).issues[0]!;
    };
    expect(await fail({ cursor: 'not-a-cursor' })).toMatchObject({ path: 'cursor', message: expect.stringMatching(/malformed/) });
    const { nextCursor } = await db.spool.listJobs({ limit: 1 });
    expect(await fail({ cursor: nextCursor, order: 'asc' })).toMatchObject({ path: 'cursor' });
    expect(await fail({ state: 'finished' })).toMatchObject({ path: 'state', message: expect.stringMatching(/scheduled, available/) });
    expect(await fail({ limit: 0 })).toMatchObject({ path: 'limit' });
    expect(await fail({ limit: 5000 })).toMatchObject({ path: 'limit' });
    expect(await fail({ colour: 'red' })).toMatchObject({ path: 'colour', message: expect.stringMatching(/unknown key/) });
  });
});
