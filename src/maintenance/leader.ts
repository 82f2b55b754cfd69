import type { Executor } from '../db/executor.js';
import { acquireLeaderSql, releaseLeaderSql } from '../queries/maintenance.js';
import type { Logger } from '../observability/logger.js';
import { Service } from './service.js';

/** The leader lease of the maintenance role. */
export const LEADER_NAME = 'maintenance';

/**
 * Elects one maintenance leader among all processes through a lease row
 * (`leader` table): renewed every ttl/3; others take over once it expires,
 * so a leader that dies is replaced within one ttl. A leader that cannot
 * renew steps down before its lease could have expired.
 */
export class LeaderElector extends Service {
  #leader = false;
  #renewedAt = 0;
  readonly #executor: Executor;
  readonly #statements: { acquire: string; release: string };
  readonly #workerId: string;
  readonly #ttlMs: number;
  readonly #onChange: (leader: boolean) => void;

  constructor(options: {
    executor: Executor;
    quotedSchema: string;
    workerId: string;
    ttlMs: number;
    log: Logger;
    onChange: (leader: boolean) => void;
  }) {
    super('leader', { intervalMs: options.ttlMs / 3, log: options.log });
    this.#executor = options.executor;
    this.#statements = { acquire: acquireLeaderSql(options.quotedSchema), release: releaseLeaderSql(options.quotedSchema) };
    this.#workerId = options.workerId;
    this.#ttlMs = options.ttlMs;
    this.#onChange = options.onChange;
  }

  get isLeader(): boolean {
    return this.#leader;
  }

  protected async runOnce(): Promise<undefined> {
    try {
      const rows = await this.#executor.query(this.#statements.acquire, [LEADER_NAME, this.#workerId, this.#ttlMs]);
      if (rows.length > 0) {
        this.#renewedAt = performance.now();
        this.#set(true);
      } else {
        this.#set(false);
      }
    } catch (error) {
      // Without a renewal the lease lapses at ttl: stop leading before then.
      if (this.#leader && performance.now() - this.#renewedAt > this.#ttlMs * 0.8) this.#set(false);
      throw error;
    }
    return undefined;
  }

  /** Stops electing and gives the lease up, so another process takes over at once. */
  async resign(): Promise<void> {
    await this.stop();
    if (!this.#leader) return;
    this.#set(false);
    await this.#executor.query(this.#statements.release, [LEADER_NAME, this.#workerId]).catch((error: Error) => {
      this.log.warn({ err: error }, 'could not release the leader lease; it will expire');
    });
  }

  #set(leader: boolean): void {
    if (leader === this.#leader) return;
    this.#leader = leader;
    this.log.info(leader ? 'elected maintenance leader' : 'no longer the maintenance leader');
    this.#onChange(leader);
  }
}
