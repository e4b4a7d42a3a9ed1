/**
 * A SQLite run: one `BEGIN IMMEDIATE` transaction, the run lock itself.
 * What every store's run shares is the kit's ({@linkcode KitRun}); its rows
 * are {@linkcode SqliteRows}'. It keeps the take-over's import, the missing
 * streaks, deletions, the commit and the rollbacks.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { DatabaseSync } from "node:sqlite";
import type { RecordType } from "../../records/mod.ts";
import { type RunBook, writeMeta } from "../kit/bookkeeping.ts";
import type { SqlClient } from "../kit/client.ts";
import { KitRun } from "../kit/run.ts";
import { addTableRows } from "../kit/summary.ts";
import type { ImportOutcome, RowCounts, RunCounts } from "../store.ts";
import { type RowsMark, SqliteRows } from "./rows.ts";

const logger = getLogger(["bucketload", "store"]);

/** What {@linkcode SqliteStore.begin} learnt before the run started. */
export interface SqliteRunOptions {
  /** How rows reach the tables (`LOAD_MODE`, `auto` decided). */
  readonly loadMode: "direct" | "staged";
  /** With `staged`: the stage is merged each time it holds this many rows. */
  readonly stageRows: number;
  /** This run takes over the original's database: its rows are here and the registry was empty at the start. */
  readonly takingOver: boolean;
  /** The registry was empty at the start of the run. */
  readonly emptyRegistry: boolean;
  /** How long the run waited for another run's lock. */
  readonly lockWaitMs: number;
  /** When this run's `PRAGMA quick_check` passed (recorded with the run, or with a no-op run's check). */
  readonly quickCheckedAt: string | undefined;
  /**
   * The `PRAGMA quick_check` that is due (`INTEGRITY_CHECK_HOURS`) but was
   * left out of the lock: a run that finds nothing to do runs it once its
   * lock is released, in a read transaction of its own; returns its time.
   * Throws `DamagedDatabaseError` on damage.
   */
  readonly idleCheck?: (() => string) | undefined;
}

/** A SQLite run over the kit. */
export class SqliteRun extends KitRun<RowsMark, SqliteRows> {
  readonly #db: DatabaseSync;
  readonly #o: SqliteRunOptions;
  readonly #release: () => void;
  #open = true;

  /** A run on `db` (through `client`), holding the lock until `release`; `book` writes its bookkeeping. */
  constructor(
    db: DatabaseSync,
    client: SqlClient,
    book: RunBook,
    types: readonly RecordType[],
    options: SqliteRunOptions,
    release: () => void,
  ) {
    super({
      client,
      book,
      types,
      rows: new SqliteRows(db, types, options.loadMode, options.stageRows),
      lockWaitMs: options.lockWaitMs,
    });
    this.#db = db;
    this.#o = options;
    this.#release = release;
  }

  /** The rows written so far: new, replacing and removed. */
  rowCounts(): Promise<RowCounts> {
    return Promise.resolve(this.rows.counts());
  }

  /** At a take-over, registers `keys` as loaded; otherwise imports nothing, and `skipped` says why. */
  async importKeys(keys: readonly string[], processedAt: Date): Promise<ImportOutcome> {
    if (!this.#o.takingOver) return { imported: 0, skipped: this.#o.emptyRegistry ? "no-rows" : "registry" };
    let added = 0;
    for (const key of keys) {
      added += await this.c.run(
        `INSERT INTO processed_files (key, status, run_id, processed_at, records, rejected, ignored, bytes, origin)
         VALUES ($1, 'loaded', $2, $3, 0, 0, 0, 0, 'imported') ON CONFLICT (key) DO NOTHING`,
        [key, this.runId, processedAt.toISOString()],
      );
    }
    return { imported: added, skipped: undefined };
  }

  /** One run at a time: every key not missing now ends its missing streak. */
  async noteMissing(keys: readonly { key: string; reason: string }[], giveUpRuns: number, at: Date): Promise<string[]> {
    await this.c.run(
      `DELETE FROM missing_keys WHERE key NOT IN (SELECT k.value FROM ${this.c.dialect.textList(1, "k")})`,
      [keys.map((k) => k.key)],
    );
    const gaveUp: string[] = [];
    for (const { key, reason } of keys) {
      if (await this.book.missing(key, reason, giveUpRuns, at)) gaveUp.push(key);
    }
    return gaveUp;
  }

  /** Marks `keys` deleted; with `prune`, their rows go too (staged rows merged first). */
  async markDeleted(keys: readonly string[], at: Date, prune: boolean): Promise<string[]> {
    const marked = await this.book.markDeleted(keys, at);
    if (prune) {
      // Staged rows are merged first, so that no row of a pruned object comes back with a merge.
      this.rows.merge();
      this.rows.removeRowsOf(marked);
    }
    return marked;
  }

  /** Merges the staged rows, writes the run row and the recorded settings, and commits. */
  async commit(c: RunCounts): Promise<void> {
    this.rows.merge();
    await this.keepList();
    await this.book.finish(c);
    await addTableRows(this.c, this.types.map((t) => t.table), this.rows.tableDeltas());
    await writeMeta(this.c, this.settingsRecord);
    if (this.#o.quickCheckedAt !== undefined) {
      await writeMeta(this.c, { last_quick_check_at: this.#o.quickCheckedAt });
    }
    this.#db.exec("COMMIT");
    this.#open = false;
    this.#release();
  }

  /**
   * Rolls back, then writes the check (and `meta`) in a transaction of its
   * own. When the daily `PRAGMA quick_check` is due ({@linkcode SqliteRunOptions.idleCheck}),
   * it runs first, after the lock is released, in a read transaction that
   * holds up no other run; damage throws before anything is written. The
   * notes then wait for the lock; should another run hold it past
   * `LOCK_TIMEOUT_SECONDS`, they are left out (the check is due again).
   */
  async rollbackAsCheck(at: Date, result: string, meta: Readonly<Record<string, string>> = {}): Promise<void> {
    if (!this.#open) return;
    this.#db.exec("ROLLBACK");
    let quick = this.#o.quickCheckedAt;
    const idle = quick === undefined ? this.#o.idleCheck : undefined;
    if (idle !== undefined) {
      this.#open = false;
      this.#release();
      const from = performance.now();
      quick = idle();
      logger.debug("The database passed PRAGMA quick_check in {seconds} s, after the run's lock was released", {
        seconds: ((performance.now() - from) / 1000).toFixed(2),
      });
      try {
        this.#db.exec("BEGIN IMMEDIATE");
      } catch (error) {
        if (!(error instanceof Error) || !/database is locked|SQLITE_BUSY/i.test(error.message)) throw error;
        logger.debug("Another run holds the lock: the check's notes are left for the next run");
        return;
      }
    } else {
      this.#db.exec("BEGIN IMMEDIATE");
    }
    try {
      await this.keepList(true);
      await writeMeta(this.c, {
        ...meta,
        last_check_at: at.toISOString(),
        last_check_result: result,
        ...(quick === undefined ? {} : { last_quick_check_at: quick }),
      });
      this.#db.exec("COMMIT");
    } finally {
      if (this.#db.isTransaction) this.#db.exec("ROLLBACK");
      if (this.#open) {
        this.#open = false;
        this.#release();
      }
    }
  }

  /** Rolls back and releases the lock. Safe to call twice. */
  rollback(): Promise<void> {
    if (this.#open) {
      this.#open = false;
      if (this.#db.isTransaction) this.#db.exec("ROLLBACK");
      this.#release();
    }
    return Promise.resolve();
  }
}
