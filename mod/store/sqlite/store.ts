/**
 * The SQLite store (node:sqlite). WAL mode so readers never block the run;
 * `BEGIN IMMEDIATE` as the run lock; one transaction per run.
 *
 * @module
 */
import {
  checkBookkeeping,
  DATA_COLUMNS_META,
  DATA_TABLES_META,
  dataColumnsValue,
  dataTablesValue,
  droppedDataTables,
  missingDataTables,
} from "../kit/tamper.ts";
import { dirname } from "node:path";
import { getLogger } from "@logtape/logtape";
import { DatabaseSync } from "node:sqlite";
import { DamagedDatabaseError, isCorruption, LockedError, UsageError } from "../../common/errors.ts";
import type { RecordType } from "../../records/mod.ts";
import { migrate, MIGRATIONS } from "../migrations.ts";
import type { StatusReport } from "../status.ts";
import { statusReport } from "../kit/status_query.ts";
import {
  hasRuns,
  readMeta,
  registeredAmong,
  registeredKeys,
  registryEntries,
  registrySince,
  RunBook,
  writeMeta,
} from "../kit/bookkeeping.ts";
import { hasColumn, hasTable, type SqlClient } from "../kit/client.ts";
import { forgetTableRows, recountTotals } from "../kit/summary.ts";
import type { BeginOptions, FileStatus, RegistryEntry, RegistrySince, Store } from "../store.ts";
import { sqliteClient } from "./client.ts";
import {
  fileInfo,
  holderAlive,
  liveHolder,
  openReadOnly,
  readLockInfo,
  removeDatabaseFiles,
  writeLockNote,
} from "./files.ts";
import { CACHE_KIB, type LoadMode, STAGE_ROWS } from "./rows.ts";
import { SqliteRun } from "./run.ts";
import { hasLegacyRows, registryEmpty, takeOverLegacyRows } from "./take_over.ts";

const logger = getLogger(["bucketload", "store"]);

/** Options of {@linkcode SqliteStore.open}. */
export interface SqliteStoreOptions {
  /** The record types whose tables to create. */
  readonly types: readonly RecordType[];
  /** How long to wait for another run's lock. @default {0} */
  readonly lockTimeoutMs?: number;
  /** Open read-only, e.g. for status. @default {false} */
  readonly readOnly?: boolean;
  /**
   * `staged` writes rows to an unconstrained temp table and merges them into
   * the data tables in key order every {@linkcode STAGE_ROWS} rows and at
   * commit; `direct` upserts them as they come; `auto` stages when the
   * database is larger than the page cache. Same tables either way.
   * @default {"auto"}
   */
  readonly loadMode?: LoadMode;
  /** Rows staged before a merge. @default {STAGE_ROWS} */
  readonly stageRows?: number;
  /** The rules the original's rows are re-derived with at a take-over. @default {DEFAULT_RULES} */
  readonly rules?: TakeOverRules;
  /**
   * How long a passed `PRAGMA quick_check` stands before a run checks again
   * (`INTEGRITY_CHECK_HOURS`); 0 checks at every run.
   * @default {DEFAULT_INTEGRITY_CHECK_MS}
   */
  readonly integrityCheckMs?: number;
  /** `DRIFT_KEEP_RUNS`: each commit keeps the drift rows of the last this many runs; 0 keeps all. @default {0} */
  readonly driftKeepRuns?: number;
}

/** `INTEGRITY_CHECK_HOURS`' default: a day. */
export const DEFAULT_INTEGRITY_CHECK_MS = 24 * 3600 * 1000;

/** Whether SQLite said the file is damaged or not a database. */
const isCorrupt = (error: unknown) => error instanceof Error && isCorruption(error.message);

/** The record types' settings derived columns depend on (`AWESOME_*`), for re-deriving the original's rows. */
export type TakeOverRules = Readonly<Record<string, number>>;

/** The types' defaults. */
export const DEFAULT_RULES: TakeOverRules = {};

function isBusy(error: unknown): boolean {
  return error instanceof Error && /database is locked|SQLITE_BUSY/i.test(error.message);
}

/**
 * Puts the database in WAL mode. A writer leaves it in rollback-journal mode
 * (see `close`), and leaving that mode needs the database to itself: SQLite
 * answers "busy" at once rather than waiting, so the wait for a lock another
 * process holds is done here, up to the lock timeout, as `BEGIN IMMEDIATE`
 * does it. Returns how long it waited (0 without contention).
 */
function setWal(db: DatabaseSync, lockTimeoutMs: number): number {
  const from = performance.now();
  const deadline = Date.now() + lockTimeoutMs;
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (let tries = 0;; tries++) {
    try {
      db.exec("PRAGMA journal_mode = WAL");
      return tries === 0 ? 0 : performance.now() - from;
    } catch (error) {
      if (!isBusy(error) || Date.now() >= deadline) throw error;
      Atomics.wait(pause, 0, 0, 20);
    }
  }
}

/** Opens the database file (creating it), or says in one line why it cannot. */
function openFile(
  path: string,
  lockTimeoutMs: number,
  readOnly: boolean,
): { db: DatabaseSync; created: boolean; waitedMs: number } {
  let db: DatabaseSync | undefined;
  let created = false;
  let waitedMs = 0;
  try {
    if (!readOnly) {
      Deno.mkdirSync(dirname(path), { recursive: true });
      const stat = fileInfo(path);
      if (stat?.isDirectory) throw new Error("it is a folder");
      created = stat === undefined;
      // Fail early (and without touching the file) when it is not writable.
      Deno.openSync(path, { read: true, write: true, create: true }).close();
      db = new DatabaseSync(path, { timeout: Math.round(lockTimeoutMs) });
      db.prepare("SELECT count(*) FROM sqlite_schema").get();
      waitedMs = setWal(db, lockTimeoutMs);
      db.exec("PRAGMA synchronous = FULL");
    } else {
      db = openReadOnly(path);
    }
    // 64 MiB of page cache (see CACHE_KIB).
    db.exec(`PRAGMA cache_size = -${CACHE_KIB}`);
    db.exec("PRAGMA foreign_keys = ON");
    return { db, created, waitedMs };
  } catch (error) {
    db?.close();
    if (created) removeDatabaseFiles(path);
    if (isBusy(error)) throw new LockedError(path, liveHolder(`${path}.lock-info`));
    if (error instanceof Deno.errors.NotCapable) throw error;
    // A damaged database is named so; a file that is not a database at all keeps the plain message below.
    if (/malformed/i.test((error as Error).message)) throw new DamagedDatabaseError(path, (error as Error).message);
    throw new UsageError(`Cannot open database ${path}: ${(error as Error).message}`, {
      subject: "DATABASE_NAME",
      cause: error,
    });
  }
}

/** The store's settings, defaults filled in. */
type Settings = Required<Omit<SqliteStoreOptions, "readOnly">>;

/** A SQLite database file holding the data tables and the bookkeeping. */
export class SqliteStore implements Store {
  readonly display: string;
  readonly holdsNul = true;
  readonly #db: DatabaseSync;
  readonly #c: SqlClient;
  readonly #path: string;
  readonly #lockFile: string;
  readonly #created: boolean;
  readonly #readOnly: boolean;
  /** Time the open waited for another process's lock (to set WAL): counted in the first run's lock wait. */
  #openWaitMs: number;
  readonly #o: Settings;
  /** The lock note's open file: its flock tells a live holder from a dead one. */
  #lockNote: Deno.FsFile | undefined;

  private constructor(
    db: DatabaseSync,
    path: string,
    created: boolean,
    readOnly: boolean,
    openWaitMs: number,
    options: Settings,
  ) {
    this.#db = db;
    this.#readOnly = readOnly;
    this.#openWaitMs = openWaitMs;
    this.#c = sqliteClient(db);
    this.#created = created;
    this.#o = options;
    this.#path = path;
    this.display = path;
    this.#lockFile = `${path}.lock-info`;
  }

  /**
   * Opens (creating if needed) the database at `path`.
   *
   * @throws {UsageError} when the path is not a SQLite database or cannot be opened for writing
   */
  static open(path: string, options: SqliteStoreOptions): SqliteStore {
    const { db, created, waitedMs } = openFile(path, options.lockTimeoutMs ?? 0, options.readOnly ?? false);
    return new SqliteStore(db, path, created, options.readOnly ?? false, waitedMs, {
      types: options.types,
      lockTimeoutMs: options.lockTimeoutMs ?? 0,
      loadMode: options.loadMode ?? "auto",
      stageRows: options.stageRows ?? STAGE_ROWS,
      rules: options.rules ?? DEFAULT_RULES,
      integrityCheckMs: options.integrityCheckMs ?? DEFAULT_INTEGRITY_CHECK_MS,
      driftKeepRuns: options.driftKeepRuns ?? 0,
    });
  }

  /**
   * Closes the database and, when this store created the file and no run
   * committed anything into it, removes it again: a failed first run leaves
   * no empty database behind.
   */
  closeAndTidy(): boolean {
    const empty = this.#created && this.#db.isOpen &&
      (this.#db.prepare("SELECT count(*) AS n FROM sqlite_schema").get() as { n: number }).n === 0;
    this.close();
    if (empty) removeDatabaseFiles(this.#path);
    return empty;
  }

  /**
   * The load mode of the next run. `auto` stages when the database is larger
   * than the page cache, where upserts in random key order miss the cache on
   * every row; a smaller database takes direct upserts, which are cheaper
   * there (and on near-sequential keys).
   */
  #resolveLoadMode(): "direct" | "staged" {
    if (this.#o.loadMode !== "auto") return this.#o.loadMode;
    const pages = (this.#db.prepare("PRAGMA page_count").get() as { page_count: number }).page_count;
    const pageSize = (this.#db.prepare("PRAGMA page_size").get() as { page_size: number }).page_size;
    return pages * pageSize > CACHE_KIB * 1024 ? "staged" : "direct";
  }

  async begin(startedAt: Date, options: BeginOptions): Promise<SqliteRun> {
    const mode = this.#resolveLoadMode();
    // Direct upserts: each statement's journal stays in memory instead of a temp file (1.4 M pwrite calls a run
    // otherwise). Staged: the stage and the merge's sort go to temp files, so that memory stays bounded.
    // (temp_store can only change outside a transaction, and drops the temp tables.)
    this.#db.exec(`PRAGMA temp_store = ${mode === "direct" ? "MEMORY" : "DEFAULT"}`);
    const lockWaitMs = this.#lock() + this.#openWaitMs;
    this.#openWaitMs = 0;
    this.#lockNote = writeLockNote(this.#lockFile, startedAt);
    try {
      const { checkedAt: quickCheckedAt, due } = await this.#integrityCheck(startedAt);
      // A data table dropped by hand would be made anew, empty, below: refused unless every file is loaded again.
      if (!options.reload && await hasTable(this.#c, "meta")) {
        const recorded = await readMeta(this.#c, DATA_TABLES_META);
        const missing = await missingDataTables(recorded, (t) => hasTable(this.#c, t));
        if (missing.length > 0) throw droppedDataTables(missing, "DATABASE_NAME");
      }
      const changes = await migrate(this.#db, this.#c, this.#o.types, startedAt);
      // Every file is loaded again: the totals are counted afresh too (a hand edit the triggers never saw goes).
      if (options.reload) await recountTotals(this.#c);
      const tables = dataTablesValue(this.#o.types.map((t) => t.table));
      if ((await readMeta(this.#c, DATA_TABLES_META)) !== tables) {
        await writeMeta(this.#c, { [DATA_TABLES_META]: tables });
      }
      const columns = dataColumnsValue(this.#o.types);
      if ((await readMeta(this.#c, DATA_COLUMNS_META)) !== columns) {
        await writeMeta(this.#c, { [DATA_COLUMNS_META]: columns });
      }
      // A bookkeeping table dropped by hand: one line and exit 2 now, not a failure after every file was fetched.
      await checkBookkeeping(this.#c, "DATABASE_NAME", MIGRATIONS);
      if (changes.length > 0) {
        logger.info("Migrating {database} (in this run's transaction): {changes}", {
          database: this.display,
          changes: changes.join("; "),
        });
      }
      const previous = await readMeta(this.#c, "bucket");
      if (previous !== undefined && previous !== options.bucket) {
        options.onBucketChange?.(previous, options.bucket);
        await writeMeta(this.#c, { previous_bucket: previous, bucket_changed_at: startedAt.toISOString() });
      }
      await writeMeta(this.#c, { bucket: options.bucket });
      const book = await RunBook.start(this.#c, startedAt, options.bucket, { driftKeepRuns: this.#o.driftKeepRuns });
      // The original's rows take today's rules: once, in this run's transaction. Looked for only while that can
      // matter (not yet taken over, or an empty registry), so that a run on a large database does not scan it.
      const emptyRegistry = await registryEmpty(this.#c);
      const notTakenOver = (await readMeta(this.#c, "taken_over_at")) === undefined;
      const legacy = (emptyRegistry || notTakenOver) && await hasLegacyRows(this.#db, this.#c, this.#o.types);
      if (legacy && notTakenOver) await this.#takeOver(book.runId, startedAt);
      const run = {
        loadMode: mode,
        stageRows: this.#o.stageRows,
        lockWaitMs,
        quickCheckedAt,
        idleCheck: due ? () => this.#quickCheck(new Date()) : undefined,
      };
      return new SqliteRun(this.#db, this.#c, book, this.#o.types, {
        ...run,
        takingOver: legacy && emptyRegistry,
        emptyRegistry,
      }, () => this.#unlock());
    } catch (error) {
      this.#db.exec("ROLLBACK");
      this.#unlock();
      throw error;
    }
  }

  /**
   * Takes the run lock (`BEGIN IMMEDIATE`): at once when no run holds it,
   * else waiting up to `LOCK_TIMEOUT_SECONDS`. Returns how long it waited
   * (0 without contention), so that a wait is only reported when there was one.
   *
   * @throws {LockedError} when another run holds it past the timeout
   */
  #lock(): number {
    const begin = (timeoutMs: number) => {
      this.#db.exec(`PRAGMA busy_timeout = ${Math.round(timeoutMs)}`);
      this.#db.exec("BEGIN IMMEDIATE");
    };
    try {
      begin(0);
      return 0;
    } catch (error) {
      if (!isBusy(error)) throw error;
    }
    const waitFrom = performance.now();
    try {
      if (this.#o.lockTimeoutMs === 0) throw new Error("database is locked");
      begin(this.#o.lockTimeoutMs);
      return performance.now() - waitFrom;
    } catch (error) {
      if (isBusy(error)) throw new LockedError(this.#path, liveHolder(this.#lockFile));
      throw error;
    } finally {
      this.#db.exec(`PRAGMA busy_timeout = ${Math.round(this.#o.lockTimeoutMs)}`);
    }
  }

  /** Re-derives the Python original's rows with today's rules (see `take_over.ts`) and logs what changed. */
  async #takeOver(runId: number, at: Date) {
    const reject = this.#db.prepare(
      "INSERT INTO rejected_records (run_id, key, record_index, type, reason, raw) VALUES (?, ?, NULL, ?, ?, ?)",
    );
    const context = { ingestionTime: "", settings: this.#o.rules };
    const results = await takeOverLegacyRows(this.#db, this.#c, this.#o.types, context, (r) => {
      reject.run(runId, `(taken over: ${r.table})`, r.type, `taken over from the original, ${r.reason}`, r.raw);
    });
    await writeMeta(this.#c, { taken_over_at: at.toISOString() });
    // The original's rows were re-derived and merged: this run's commit counts the tables whole.
    await forgetTableRows(this.#c);
    for (const r of results) {
      logger.info(
        "Took over {table} from the original: {rows} rows, {rederived} re-derived by today's rules, {merged} merged " +
          "into a row that now has the same key, {rejected} rejected (kept in rejected_records)",
        { ...r },
      );
    }
  }

  /**
   * Whether `PRAGMA quick_check` is due. A new, empty file passes without
   * being read, so that the run that writes it counts as its check (the next
   * run does not read a fresh database through). A check passed longer ago
   * than `INTEGRITY_CHECK_HOURS` is `due`: the next run that finds nothing to
   * do runs it after its lock is released ({@linkcode SqliteRun.rollbackAsCheck}),
   * so that it holds up no other run. Passed longer ago than twice that
   * (runs that always load, a database never checked, or `0`), the check runs
   * now, in the lock, before the run writes anything (`checkedAt` says when).
   *
   * @throws {DamagedDatabaseError} when the database is damaged
   */
  async #integrityCheck(at: Date): Promise<{ checkedAt: string | undefined; due: boolean }> {
    const db = this.#db;
    if ((db.prepare("SELECT count(*) AS n FROM sqlite_schema").get() as { n: number }).n === 0) {
      return { checkedAt: at.toISOString(), due: false };
    }
    const last = await hasTable(this.#c, "meta") ? await readMeta(this.#c, "last_quick_check_at") : undefined;
    const age = last === undefined ? Number.POSITIVE_INFINITY : at.getTime() - Date.parse(last);
    const every = this.#o.integrityCheckMs;
    // An unreadable time counts as never checked.
    if (!(age < 2 * every)) {
      const from = performance.now();
      const checkedAt = this.#quickCheck(at);
      logger.debug("The database passed PRAGMA quick_check in {seconds} s, in the run's lock", {
        seconds: ((performance.now() - from) / 1000).toFixed(2),
      });
      return { checkedAt, due: false };
    }
    return { checkedAt: undefined, due: age >= every };
  }

  /**
   * `PRAGMA quick_check` (inside the caller's transaction, or as a read
   * transaction of its own); returns `at` as the check's time.
   *
   * @throws {DamagedDatabaseError} when the database is damaged
   */
  #quickCheck(at: Date): string {
    let problems: string[];
    try {
      problems = (this.#db.prepare("PRAGMA quick_check").all() as { quick_check: string }[]).map((r) => r.quick_check);
    } catch (error) {
      if (isCorrupt(error)) throw new DamagedDatabaseError(this.#path, (error as Error).message);
      throw error;
    }
    if (problems[0] !== "ok") {
      // One line: a problem SQLite reports may hold several.
      throw new DamagedDatabaseError(this.#path, problems.slice(0, 3).join("; ").replace(/\s*\n\s*/g, "; "));
    }
    return at.toISOString();
  }

  /** Whether a run would take over the original's database now: its rows are there and the registry is empty. */
  async takesOver(): Promise<boolean> {
    return await registryEmpty(this.#c) && await hasLegacyRows(this.#db, this.#c, this.#o.types);
  }

  #unlock() {
    try {
      Deno.removeSync(this.#lockFile);
    } catch { /* already gone */ }
    this.#lockNote?.close();
    this.#lockNote = undefined;
  }

  hasRuns(): Promise<boolean> {
    return hasRuns(this.#c);
  }

  async registeredKeys(): Promise<string[]> {
    return await hasTable(this.#c, "processed_files") ? await registeredKeys(this.#c) : [];
  }

  async registrySince(after?: number): Promise<RegistrySince> {
    return await hasTable(this.#c, "processed_files")
      ? await registrySince(this.#c, after)
      : { keys: [], count: 0, lastRun: 0 };
  }

  async readNote(name: string): Promise<string | undefined> {
    return await hasTable(this.#c, "meta") ? await readMeta(this.#c, name) : undefined;
  }

  async writeNote(name: string, value: string): Promise<void> {
    this.#db.exec("BEGIN IMMEDIATE");
    try {
      await writeMeta(this.#c, { [name]: value });
      this.#db.exec("COMMIT");
    } catch (error) {
      if (this.#db.isTransaction) this.#db.exec("ROLLBACK");
      throw error;
    }
  }

  async peekRegistered(keys: readonly string[], statuses?: readonly FileStatus[]): Promise<ReadonlySet<string>> {
    return await hasTable(this.#c, "processed_files") ? await registeredAmong(this.#c, keys, statuses) : new Set();
  }

  async peekEntries(): Promise<ReadonlyMap<string, RegistryEntry>> {
    if (!(await hasColumn(this.#c, "processed_files", "etag"))) return new Map();
    return await registryEntries(this.#c);
  }

  /** The status report: last runs, registry totals, rows per table, problem keys, the bucket, the run in progress. */
  status(): Promise<StatusReport> {
    const note = readLockInfo(this.#lockFile);
    const alive = note === undefined ? undefined : holderAlive(this.#lockFile);
    return statusReport(this.#c, {
      display: this.display,
      types: this.#o.types,
      holder: {
        running: note !== undefined && alive !== false ? note : null,
        staleLock: note !== undefined && alive === false ? note : null,
      },
    });
  }

  /**
   * Closes the database. A writer leaves it in rollback-journal mode (the next
   * writer sets WAL again), so that a reader that may not write its folder (a
   * read-only filesystem, a monitoring user) can open it: a WAL database needs
   * its shared-memory file, and the immutable fallback cannot be reached
   * through Deno's permissions (`files.ts`). Best effort: a reader still
   * reading keeps WAL.
   */
  close(): void {
    if (!this.#db.isOpen) return;
    if (!this.#readOnly) {
      try {
        // Without waiting: a reader that holds it keeps WAL, and the run has ended.
        this.#db.exec("PRAGMA busy_timeout = 0");
        this.#db.exec("PRAGMA journal_mode = DELETE");
      } catch { /* busy, or not writable: WAL stays */ }
    }
    this.#db.close();
  }
}
