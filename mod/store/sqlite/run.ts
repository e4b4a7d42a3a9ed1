/**
 * A SQLite run: one `BEGIN IMMEDIATE` transaction, the run lock itself.
 * Its bookkeeping is the kit's; its rows are {@linkcode SqliteRows}'.
 *
 * @module
 */
import type { DatabaseSync } from "node:sqlite";
import type { RecordType } from "../../records/mod.ts";
import type { Validators } from "../../source/source.ts";
import { registeredAmong, type RunBook, unregisteredAmong, writeMeta } from "../kit/bookkeeping.ts";
import type { SqlClient } from "../kit/client.ts";
import { FileParts } from "../kit/file_parts.ts";
import { kitReplayer } from "../kit/quarantine.ts";
import { rederiveRows } from "../kit/rederive.ts";
import type {
  FilePart,
  FileStatus,
  FileWrite,
  ImportOutcome,
  ListedFingerprint,
  PartOptions,
  PlannedKey,
  Rederived,
  Replayer,
  RowCounts,
  RunCounts,
  RunTransaction,
} from "../store.ts";
import { type RowsMark, SqliteRows } from "./rows.ts";

/** What {@linkcode SqliteStore.begin} learnt before the run started. */
export interface SqliteRunOptions {
  readonly loadMode: "direct" | "staged";
  readonly stageRows: number;
  /** This run takes over the original's database: its rows are here and the registry was empty at the start. */
  readonly takingOver: boolean;
  readonly emptyRegistry: boolean;
  readonly lockWaitMs: number;
  /** When this run's `PRAGMA quick_check` passed (recorded with the run, or with a no-op run's check). */
  readonly quickCheckedAt: string | undefined;
}

export class SqliteRun implements RunTransaction {
  readonly runId: number;
  readonly lockWaitMs: number;
  readonly #db: DatabaseSync;
  readonly #c: SqlClient;
  readonly #book: RunBook;
  readonly #rows: SqliteRows;
  readonly #files: FileParts<RowsMark>;
  readonly #o: SqliteRunOptions;
  readonly #release: () => void;
  readonly #types: readonly RecordType[];
  #open = true;
  /** The derived columns' settings to record at commit (see `rederive`). */
  #settingsRecord: Readonly<Record<string, string>> = {};

  constructor(
    db: DatabaseSync,
    client: SqlClient,
    book: RunBook,
    types: readonly RecordType[],
    options: SqliteRunOptions,
    release: () => void,
  ) {
    this.#db = db;
    this.#c = client;
    this.#book = book;
    this.runId = book.runId;
    this.lockWaitMs = options.lockWaitMs;
    this.#o = options;
    this.#release = release;
    this.#types = types;
    this.#rows = new SqliteRows(db, types, options.loadMode, options.stageRows);
    this.#files = new FileParts(this.#rows, book);
  }

  registered(keys: readonly string[], statuses?: readonly FileStatus[]): Promise<ReadonlySet<string>> {
    return registeredAmong(this.#c, keys, statuses);
  }

  unregistered(keys: readonly string[], statuses?: readonly FileStatus[]): Promise<string[]> {
    return unregisteredAmong(this.#c, keys, statuses);
  }

  rowCounts(): Promise<RowCounts> {
    return Promise.resolve(this.#rows.counts());
  }

  async importKeys(keys: readonly string[], processedAt: Date): Promise<ImportOutcome> {
    if (!this.#o.takingOver) return { imported: 0, skipped: this.#o.emptyRegistry ? "no-rows" : "registry" };
    let added = 0;
    for (const key of keys) {
      added += await this.#c.run(
        `INSERT INTO processed_files (key, status, run_id, processed_at, records, rejected, ignored, bytes, origin)
         VALUES ($1, 'loaded', $2, $3, 0, 0, 0, 0, 'imported') ON CONFLICT (key) DO NOTHING`,
        [key, this.runId, processedAt.toISOString()],
      );
    }
    return { imported: added, skipped: undefined };
  }

  /** One run at a time: every key not missing now ends its missing streak. */
  async noteMissing(keys: readonly { key: string; reason: string }[], giveUpRuns: number, at: Date): Promise<string[]> {
    await this.#c.run(
      `DELETE FROM missing_keys WHERE key NOT IN (SELECT k.value FROM ${this.#c.dialect.textList(1, "k")})`,
      [keys.map((k) => k.key)],
    );
    const gaveUp: string[] = [];
    for (const { key, reason } of keys) {
      if (await this.#book.missing(key, reason, giveUpRuns, at)) gaveUp.push(key);
    }
    return gaveUp;
  }

  async rollbackAsCheck(at: Date, result: string, meta: Readonly<Record<string, string>> = {}): Promise<void> {
    if (!this.#open) return;
    this.#db.exec("ROLLBACK");
    this.#db.exec("BEGIN IMMEDIATE");
    const quick = this.#o.quickCheckedAt;
    await writeMeta(this.#c, {
      ...meta,
      last_check_at: at.toISOString(),
      last_check_result: result,
      ...(quick === undefined ? {} : { last_quick_check_at: quick }),
    });
    this.#db.exec("COMMIT");
    this.#open = false;
    this.#release();
  }

  cachedList(key: string): Promise<{ text: string; validators: Validators } | undefined> {
    return this.#book.cachedList(key);
  }

  cacheList(key: string, text: string, validators: Validators): Promise<void> {
    return this.#book.cacheList(key, text, validators);
  }

  addListed(objects: readonly ListedFingerprint[], firstPosition: number): Promise<void> {
    return this.#book.addListed(objects, firstPosition);
  }

  listedPlan(options: { all: boolean; loadedOnly: boolean; detect: boolean }): Promise<PlannedKey[]> {
    return this.#book.listedPlan(options);
  }

  unlisted(): Promise<string[]> {
    return this.#book.unlisted();
  }

  async markDeleted(keys: readonly string[], at: Date, prune: boolean): Promise<string[]> {
    const marked = await this.#book.markDeleted(keys, at);
    if (prune) {
      // Staged rows are merged first, so that no row of a pruned object comes back with a merge.
      this.#rows.merge();
      this.#rows.removeRowsOf(marked);
    }
    return marked;
  }

  writePart(key: string, part: FilePart, options?: PartOptions): Promise<void> {
    return this.#files.writePart(key, part, options);
  }

  abortFile(key: string): Promise<void> {
    return this.#files.abortFile(key);
  }

  writeFile(file: FileWrite): Promise<void> {
    return this.#files.writeFile(file);
  }

  replayer(): Replayer {
    return kitReplayer(this.#c, this.#types, (key, part, position) => this.#rows.write(key, part, position));
  }

  async rederive(settings: Readonly<Record<string, number>>): Promise<Rederived> {
    const rederived = await rederiveRows(this.#c, this.#types, settings);
    this.#settingsRecord = rederived.record;
    return rederived;
  }

  async commit(c: RunCounts): Promise<void> {
    this.#rows.merge();
    await this.#book.finish(c);
    await writeMeta(this.#c, this.#settingsRecord);
    if (this.#o.quickCheckedAt !== undefined) {
      await writeMeta(this.#c, { last_quick_check_at: this.#o.quickCheckedAt });
    }
    this.#db.exec("COMMIT");
    this.#open = false;
    this.#release();
  }

  rollback(): Promise<void> {
    if (this.#open) {
      this.#open = false;
      if (this.#db.isTransaction) this.#db.exec("ROLLBACK");
      this.#release();
    }
    return Promise.resolve();
  }
}
