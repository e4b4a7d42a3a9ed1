/**
 * The commit section's advisory lock: only a run that holds it writes the
 * data tables and the shared bookkeeping rows, so that runs side by side
 * never wait on each other's row locks (nor deadlock on them). A run takes
 * it when it enters its commit section, and keeps it to the end of its
 * transaction.
 *
 * @module
 */
import type { Reserved } from "./connection.ts";

/** The advisory lock of the commit section (see `store.ts` for the namespace). */
export const COMMIT_LOCK: bigint = 0x6275636b_6c6f6164n + 1n;

/** A run's hold on {@linkcode COMMIT_LOCK}, transaction-scoped. */
export class CommitLock {
  readonly #conn: Reserved;
  #held = false;

  /** The lock as taken on the run's connection `conn`. */
  constructor(conn: Reserved) {
    this.#conn = conn;
  }

  /** Whether the run holds the lock. */
  get held(): boolean {
    return this.#held;
  }

  /** Takes the lock, waiting for the run that holds it to end. */
  async enter(): Promise<void> {
    if (this.#held) return;
    await this.#conn`SELECT pg_advisory_xact_lock(${COMMIT_LOCK.toString()}::bigint)`;
    this.#held = true;
  }

  /** Takes the lock if no other run holds it; whether this run holds it now. */
  async try(): Promise<boolean> {
    if (this.#held) return true;
    const [row] = await this.#conn<{ held: boolean }[]>`
      SELECT pg_try_advisory_xact_lock(${COMMIT_LOCK.toString()}::bigint) AS held`;
    this.#held = row?.held === true;
    return this.#held;
  }

  /**
   * After a rollback to a savepoint: a lock taken since the savepoint was
   * released with it (`held` is whether the run held it at the savepoint).
   */
  rolledBack(held: boolean): void {
    this.#held = held;
  }
}
