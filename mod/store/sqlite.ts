/**
 * The SQLite store (node:sqlite). WAL mode so readers never block the run;
 * `BEGIN IMMEDIATE` as the run lock; one transaction per run.
 *
 * @module
 */
import { dirname } from "node:path";
import { getLogger } from "@logtape/logtape";
import { DatabaseSync, type StatementSync } from "node:sqlite";
import { DamagedDatabaseError, isCorruption, UsageError } from "../errors.ts";
import type { RecordType, RowContext } from "../records/mod.ts";
import { hasLegacyRows, registryEmpty, takeOverLegacyRows } from "./take_over.ts";
import type { Validators } from "../source/source.ts";
import { hasTable, migrate } from "./migrations.ts";
import type { StatusReport } from "./status.ts";
import { type SqlReader, statusReport } from "./kit/status_query.ts";
import {
  type BeginOptions,
  type FilePart,
  type FileStatus,
  type FileWrite,
  type ImportOutcome,
  type ListedFingerprint,
  LockedError,
  type PartOptions,
  type PlannedKey,
  type RegistryEntry,
  type RowCounts,
  type RunCounts,
  type RunTransaction,
  type Store,
} from "./store.ts";
import { giveUpReason, quote } from "./kit/sql.ts";

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
}

/** `INTEGRITY_CHECK_HOURS`' default: a day. */
export const DEFAULT_INTEGRITY_CHECK_MS = 24 * 3600 * 1000;

/** Whether SQLite said the file is damaged or not a database. */
const isCorrupt = (error: unknown) => error instanceof Error && isCorruption(error.message);

/** The settings derived columns depend on, for re-deriving the original's rows. */
export type TakeOverRules = Pick<RowContext, "awesomeMinRating" | "awesomeMaxSizeBytes">;

/** The built-in `AWESOME_*` defaults. */
export const DEFAULT_RULES: TakeOverRules = { awesomeMinRating: 4.5, awesomeMaxSizeBytes: 100_000_000 };

/** Rows per multi-row upsert: fewer, larger statements bind faster than one per row. */
export const UPSERT_BATCH = 32;

/**
 * An upsert of `rows` rows. SQLite applies the rows of one statement in order,
 * so a later row with the same key still wins.
 */
function upsertSql(type: RecordType, rows: number): string {
  const names = [...type.columns.map((c) => c.name), "source_key", "source_pos"];
  const updates = names.filter((n) => !type.key.includes(n)).map((n) => `${quote(n)} = excluded.${quote(n)}`);
  return `INSERT INTO ${quote(type.table)} (${names.map(quote).join(", ")}) VALUES ${rowValues(type, rows)}
    ON CONFLICT (${type.key.map(quote).join(", ")}) DO UPDATE SET ${updates.join(", ")} ${LATER_WINS}`;
}

/**
 * `rows` value lists of a type's columns, `source_key` and `source_pos`.
 * (Numbered parameters binding the key and position once per statement
 * measured 25–55% slower than binding them with every row.)
 */
function rowValues(type: RecordType, rows: number): string {
  const row = `(${[...type.columns.map(() => "?"), "?", "?"].join(", ")})`;
  return Array(rows).fill(row).join(", ");
}

/** A row is replaced only from its file's list position or a later one (NULL: a row from before positions). */
const LATER_WINS = "WHERE source_pos IS NULL OR excluded.source_pos >= source_pos";

/** How rows reach the data tables: upserted as they come, or staged and merged in key order. */
export type LoadMode = "auto" | "direct" | "staged";

/**
 * Rows staged (all tables) before they are merged into the data tables. The
 * stage and the merge's sort live in temp files, so this bounds temp disk
 * (about 100 MB), not memory.
 */
export const STAGE_ROWS = 1_000_000;

/** The page cache, KiB. */
const CACHE_KIB = 16_384;
/** The page cache while a stage is merged, KiB. */
const MERGE_CACHE_KIB = 32_768;

/** The insert of `rows` rows into a type's stage: no constraints, so it never touches the table's B-tree. */
function stageSql(type: RecordType, rows: number): string {
  const names = [...type.columns.map((c) => c.name), "source_key", "source_pos"];
  return `INSERT INTO temp.${quote(`stage_${type.table}`)} (${names.map(quote).join(", ")}) VALUES ${
    rowValues(type, rows)
  }`;
}

/**
 * The merge of a stage into its table, in key order (the B-tree is walked
 * once, not at random), and within a key in arrival order (`rowid`), so that
 * the later file, and the later record of a file, still wins.
 */
function mergeSql(type: RecordType): string {
  const names = [...type.columns.map((c) => c.name), "source_key", "source_pos"];
  const updates = names.filter((n) => !type.key.includes(n)).map((n) => `${quote(n)} = excluded.${quote(n)}`);
  return `INSERT INTO main.${quote(type.table)} (${names.map(quote).join(", ")})
    SELECT ${names.map(quote).join(", ")} FROM temp.${quote(`stage_${type.table}`)} WHERE true
    ORDER BY ${type.key.map(quote).join(", ")}, rowid
    ON CONFLICT (${type.key.map(quote).join(", ")}) DO UPDATE SET ${updates.join(", ")} ${LATER_WINS}`;
}

function isBusy(error: unknown): boolean {
  return error instanceof Error && /database is locked|SQLITE_BUSY/i.test(error.message);
}

/** A SQLite database file holding the data tables and the bookkeeping. */
export class SqliteStore implements Store {
  readonly display: string;
  readonly holdsNul = true;
  readonly #db: DatabaseSync;
  readonly #path: string;
  readonly #types: readonly RecordType[];
  readonly #lockFile: string;

  readonly #created: boolean;
  readonly #load: { loadMode: LoadMode; stageRows: number };
  readonly #rules: TakeOverRules;
  readonly #lockTimeoutMs: number;
  readonly #integrityCheckMs: number;

  private constructor(
    db: DatabaseSync,
    path: string,
    types: readonly RecordType[],
    created: boolean,
    load: { loadMode: LoadMode; stageRows: number },
    rules: TakeOverRules,
    lockTimeoutMs: number,
    integrityCheckMs: number,
  ) {
    this.#db = db;
    this.#integrityCheckMs = integrityCheckMs;
    this.#lockTimeoutMs = lockTimeoutMs;
    this.#rules = rules;
    this.#created = created;
    this.#load = load;
    this.#path = path;
    this.display = path;
    this.#types = types;
    this.#lockFile = `${path}.lock-info`;
  }

  /**
   * Opens (creating if needed) the database at `path`.
   *
   * @throws {UsageError} when the path is not a SQLite database or cannot be opened for writing
   */
  static open(path: string, options: SqliteStoreOptions): SqliteStore {
    const {
      types,
      lockTimeoutMs = 0,
      readOnly = false,
      loadMode = "auto",
      stageRows = STAGE_ROWS,
      rules = DEFAULT_RULES,
      integrityCheckMs = DEFAULT_INTEGRITY_CHECK_MS,
    } = options;
    let db: DatabaseSync | undefined;
    let created = false;
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
        db.exec("PRAGMA journal_mode = WAL");
        db.exec("PRAGMA synchronous = FULL");
      } else {
        db = openReadOnly(path);
      }
      // 16 MiB of page cache: measured as fast as 64 MiB on the reference bucket, with 60 MB less RSS.
      db.exec(`PRAGMA cache_size = -${CACHE_KIB}`);
      db.exec("PRAGMA foreign_keys = ON");
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
    return new SqliteStore(db, path, types, created, { loadMode, stageRows }, rules, lockTimeoutMs, integrityCheckMs);
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
    if (this.#load.loadMode !== "auto") return this.#load.loadMode;
    const pages = (this.#db.prepare("PRAGMA page_count").get() as { page_count: number }).page_count;
    const pageSize = (this.#db.prepare("PRAGMA page_size").get() as { page_size: number }).page_size;
    return pages * pageSize > CACHE_KIB * 1024 ? "staged" : "direct";
  }

  begin(startedAt: Date, options: BeginOptions): Promise<RunTransaction> {
    const mode = this.#resolveLoadMode();
    // Direct upserts: each statement's journal stays in memory instead of a temp file (1.4 M pwrite calls a run
    // otherwise). Staged: the stage and the merge's sort go to temp files, so that memory stays bounded.
    // (temp_store can only change outside a transaction, and drops the temp tables.)
    this.#db.exec(`PRAGMA temp_store = ${mode === "direct" ? "MEMORY" : "DEFAULT"}`);
    const lockWaitMs = this.#lock();
    this.#lockNote = writeLockNote(this.#lockFile, startedAt);
    try {
      const quickCheckedAt = this.#integrityCheck(startedAt);
      const changes = migrate(this.#db, this.#types, startedAt);
      if (changes.length > 0) {
        logger.info("Migrating {database} (in this run's transaction): {changes}", {
          database: this.display,
          changes: changes.join("; "),
        });
      }
      const previous = readMeta(this.#db, "bucket");
      if (previous !== undefined && previous !== options.bucket) {
        options.onBucketChange?.(previous, options.bucket);
        writeMeta(this.#db, { previous_bucket: previous, bucket_changed_at: startedAt.toISOString() });
      }
      writeMeta(this.#db, { bucket: options.bucket });
      const { id } = this.#db
        .prepare("INSERT INTO runs (started_at, status, bucket) VALUES (?, 'running', ?) RETURNING id")
        .get(startedAt.toISOString(), options.bucket) as { id: number };
      // The original's rows take today's rules: once, in this run's transaction. Looked for only while that can
      // matter (not yet taken over, or an empty registry), so that a run on a large database does not scan it.
      const emptyRegistry = registryEmpty(this.#db);
      const notTakenOver = readMeta(this.#db, "taken_over_at") === undefined;
      const legacy = (emptyRegistry || notTakenOver) && hasLegacyRows(this.#db, this.#types);
      if (legacy && notTakenOver) this.#takeOver(id, startedAt);
      const takingOver = legacy && emptyRegistry;
      return Promise.resolve(
        new SqliteRun(
          this.#db,
          id,
          this.#types,
          {
            bucket: options.bucket,
            loadMode: mode,
            stageRows: this.#load.stageRows,
            takingOver,
            emptyRegistry,
            lockWaitMs,
            quickCheckedAt,
          },
          () => this.#unlock(),
        ),
      );
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
      if (this.#lockTimeoutMs === 0) throw new Error("database is locked");
      begin(this.#lockTimeoutMs);
      return performance.now() - waitFrom;
    } catch (error) {
      if (isBusy(error)) throw new LockedError(this.#path, liveHolder(this.#lockFile));
      throw error;
    } finally {
      this.#db.exec(`PRAGMA busy_timeout = ${Math.round(this.#lockTimeoutMs)}`);
    }
  }

  /** The lock note's open file: its flock tells a live holder from a dead one. */
  #lockNote: Deno.FsFile | undefined;

  /** Re-derives the Python original's rows with today's rules (see `take_over.ts`) and logs what changed. */
  #takeOver(runId: number, at: Date) {
    const reject = this.#db.prepare(
      "INSERT INTO rejected_records (run_id, key, record_index, type, reason, raw) VALUES (?, ?, NULL, ?, ?, ?)",
    );
    const results = takeOverLegacyRows(this.#db, this.#types, { ingestionTime: "", ...this.#rules }, (r) => {
      reject.run(runId, `(taken over: ${r.table})`, r.type, `taken over from the original, ${r.reason}`, r.raw);
    });
    writeMeta(this.#db, { taken_over_at: at.toISOString() });
    for (const r of results) {
      logger.info(
        "Took over {table} from the original: {rows} rows, {rederived} re-derived by today's rules, {merged} merged " +
          "into a row that now has the same key, {rejected} rejected (kept in rejected_records)",
        { ...r },
      );
    }
  }

  /**
   * `PRAGMA quick_check` when the last one passed longer ago than
   * `INTEGRITY_CHECK_HOURS` (never for a new, empty file). Returns when it ran.
   *
   * @throws {DamagedDatabaseError} when the database is damaged
   */
  #integrityCheck(at: Date): string | undefined {
    const db = this.#db;
    if ((db.prepare("SELECT count(*) AS n FROM sqlite_schema").get() as { n: number }).n === 0) return undefined;
    const last = hasTable(db, "meta") ? readMeta(db, "last_quick_check_at") : undefined;
    if (last !== undefined && at.getTime() - Date.parse(last) < this.#integrityCheckMs) return undefined;
    let problems: string[];
    try {
      problems = (db.prepare("PRAGMA quick_check").all() as { quick_check: string }[]).map((r) => r.quick_check);
    } catch (error) {
      if (isCorrupt(error)) throw new DamagedDatabaseError(this.#path, (error as Error).message);
      throw error;
    }
    if (problems[0] !== "ok") throw new DamagedDatabaseError(this.#path, problems.slice(0, 3).join("; "));
    return at.toISOString();
  }

  /** Whether a run would take over the original's database now: its rows are there and the registry is empty. */
  takesOver(): Promise<boolean> {
    return Promise.resolve(registryEmpty(this.#db) && hasLegacyRows(this.#db, this.#types));
  }

  #unlock() {
    try {
      Deno.removeSync(this.#lockFile);
    } catch { /* already gone */ }
    this.#lockNote?.close();
    this.#lockNote = undefined;
  }

  registeredKeys(): Promise<string[]> {
    if (!this.#hasTable("processed_files")) return Promise.resolve([]);
    const rows = this.#db.prepare("SELECT key FROM processed_files ORDER BY run_id, key").all() as { key: string }[];
    return Promise.resolve(rows.map((r) => r.key));
  }

  peekRegistered(keys: readonly string[], statuses?: readonly FileStatus[]): Promise<ReadonlySet<string>> {
    if (!this.#hasTable("processed_files")) return Promise.resolve(new Set());
    return Promise.resolve(registeredAmong(this.#db, keys, statuses));
  }

  peekEntries(): Promise<ReadonlyMap<string, RegistryEntry>> {
    if (!this.#hasTable("processed_files") || !this.#hasColumn("processed_files", "etag")) {
      return Promise.resolve(new Map());
    }
    const rows = this.#db.prepare("SELECT key, status, etag, size, deleted_at FROM processed_files").all() as {
      key: string;
      status: FileStatus;
      etag: string | null;
      size: number | null;
      deleted_at: string | null;
    }[];
    return Promise.resolve(
      new Map(rows.map((r) => [r.key, {
        status: r.status,
        fingerprint: r.etag === null ? null : { etag: r.etag, size: r.size ?? 0 },
        deleted: r.deleted_at !== null,
      }])),
    );
  }

  #hasTable(name: string): boolean {
    return hasTable(this.#db, name);
  }

  #hasColumn(table: string, column: string): boolean {
    return this.#db.prepare("SELECT 1 FROM pragma_table_info(?) WHERE name = ?").get(table, column) !== undefined;
  }

  /** The status report: last runs, registry totals, rows per table, problem keys, the bucket, the run in progress. */
  status(): Promise<StatusReport> {
    const db = this.#db;
    const note = readLockInfo(this.#lockFile);
    const alive = note === undefined ? undefined : holderAlive(this.#lockFile);
    const reader: SqlReader = {
      all: <T>(sql: string) => Promise.resolve(db.prepare(sql).all().map((r) => ({ ...r }) as T)),
      hasTable: (name) => Promise.resolve(this.#hasTable(name)),
      hasColumn: (table, column) => Promise.resolve(this.#hasColumn(table, column)),
    };
    return statusReport(reader, { position: (text, needle) => `instr(${text}, ${needle})` }, {
      display: this.display,
      types: this.#types,
      holder: {
        running: note !== undefined && alive !== false ? note : null,
        staleLock: note !== undefined && alive === false ? note : null,
      },
    });
  }

  close(): void {
    if (this.#db.isOpen) this.#db.close();
  }
}

/**
 * What is at `path`, or `undefined` when nothing is (or it cannot be seen).
 * Deno's call rather than node:fs, which costs ~40 ms to load at every start.
 *
 * @throws {Deno.errors.NotCapable} without read permission for `path`
 */
export function fileInfo(path: string): Deno.FileInfo | undefined {
  try {
    return Deno.statSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) throw error;
    return undefined;
  }
}

/**
 * Opens a database only to read. A file the user may not write (a monitoring
 * user's view of a WAL database) is opened immutable, since SQLite cannot
 * create its shared-memory file then.
 */
function openReadOnly(path: string): DatabaseSync {
  if (fileInfo(path) === undefined) throw new Error("no such file");
  const tryOpen = (target: string | URL) => {
    const db = new DatabaseSync(target, { readOnly: true });
    try {
      db.prepare("SELECT count(*) FROM sqlite_schema").get();
      return db;
    } catch (error) {
      db.close();
      throw error;
    }
  };
  try {
    return tryOpen(path);
  } catch (error) {
    if (!/readonly|read-only|unable to open|disk I\/O/i.test((error as Error).message)) throw error;
    const url = new URL(`file://${encodeURI(path).replaceAll("?", "%3F").replaceAll("#", "%23")}`);
    url.searchParams.set("immutable", "1");
    return tryOpen(url);
  }
}

/** A value of the `meta` table, or `undefined` when it is not set. */
function readMeta(db: DatabaseSync, name: string): string | undefined {
  return (db.prepare("SELECT value FROM meta WHERE name = ?").get(name) as { value: string } | undefined)?.value;
}

/** Sets values of the `meta` table. */
function writeMeta(db: DatabaseSync, values: Readonly<Record<string, string>>) {
  const set = db.prepare(
    "INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
  );
  for (const [name, value] of Object.entries(values)) set.run(name, value);
}

/** Removes a database file with its WAL, shared-memory and lock-info companions. */
function removeDatabaseFiles(path: string) {
  for (const file of [path, `${path}-wal`, `${path}-shm`, `${path}-journal`, `${path}.lock-info`]) {
    try {
      Deno.removeSync(file);
    } catch { /* not there */ }
  }
}

/** The `keys` registered with one of `statuses`: those {@linkcode unregisteredAmong} leaves out. */
function registeredAmong(db: DatabaseSync, keys: readonly string[], statuses?: readonly FileStatus[]): Set<string> {
  const unregistered = new Set(unregisteredAmong(db, keys, statuses));
  return new Set(keys.filter((k) => !unregistered.has(k)));
}

/** The `keys` not registered with one of `statuses`, in their order. */
function unregisteredAmong(
  db: DatabaseSync,
  keys: readonly string[],
  statuses: readonly FileStatus[] = ["loaded", "invalid"],
): string[] {
  const rows = db
    .prepare(
      `SELECT l.value AS key FROM json_each(?) AS l
       WHERE NOT EXISTS (SELECT 1 FROM processed_files AS p
         WHERE p.key = l.value AND p.status IN (SELECT value FROM json_each(?)))
       ORDER BY l.key`,
    )
    .all(JSON.stringify(keys), JSON.stringify(statuses)) as { key: string }[];
  return rows.map((r) => r.key);
}

/**
 * Writes the lock note (`<database>.lock-info`: pid and start) and holds an
 * exclusive flock on it while the run lasts. The kernel drops the flock when
 * the process dies, however it dies, so a reader can tell a note of a live
 * run from one a killed run left. `undefined` when it cannot be written: the
 * lock itself is SQLite's, the note only explains it.
 */
function writeLockNote(file: string, startedAt: Date): Deno.FsFile | undefined {
  let handle: Deno.FsFile | undefined;
  try {
    handle = Deno.openSync(file, { write: true, create: true, truncate: true });
    handle.lockSync(true);
    handle.writeSync(new TextEncoder().encode(JSON.stringify({ pid: Deno.pid, since: startedAt.toISOString() })));
    return handle;
  } catch {
    handle?.close();
    return undefined;
  }
}

/**
 * Whether the process that wrote the lock note still runs: its flock is
 * held. `undefined` when that cannot be told (the note cannot be opened).
 */
function holderAlive(file: string): boolean | undefined {
  let handle: Deno.FsFile;
  try {
    handle = Deno.openSync(file, { read: true });
  } catch {
    return undefined;
  }
  try {
    if (!handle.tryLockSync(false)) return true;
    handle.unlockSync();
    return false;
  } catch {
    return undefined;
  } finally {
    handle.close();
  }
}

/** The lock note of a live holder, for the "another run holds the lock" message. */
function liveHolder(file: string): string | undefined {
  return holderAlive(file) === false ? undefined : readLockInfo(file);
}

function readLockInfo(file: string): string | undefined {
  try {
    const info = JSON.parse(Deno.readTextFileSync(file)) as { since?: unknown; pid?: unknown };
    return typeof info.since === "string" ? `${info.since} (pid ${String(info.pid)})` : undefined;
  } catch {
    return undefined;
  }
}

class SqliteRun implements RunTransaction {
  readonly runId: number;
  readonly lockWaitMs: number;
  /** This run takes over the original's database: its rows are here and the registry was empty at the start. */
  readonly #takingOver: boolean;
  readonly #registryEmpty: boolean;
  /** When this run's `PRAGMA quick_check` passed (recorded with the run, or with a no-op run's check). */
  readonly #quickCheckedAt: string | undefined;
  readonly #db: DatabaseSync;
  readonly #upserts = new Map<string, StatementSync>();
  readonly #types: ReadonlyMap<string, RecordType>;
  readonly #register: StatementSync;
  readonly #reject: StatementSync;
  readonly #clearRejections: StatementSync;
  readonly #release: () => void;
  readonly #bucket: string;
  /**
   * Per table, the largest rowid that is not this run's: rows above it are
   * the rows this run inserted (SQLite gives a new row the largest rowid + 1),
   * which tells inserted from updated rows without counting the tables (a
   * `count(*)` reads every page of an index: ~0.5 s a table at 2 M rows, at
   * every run). Lowered when rows are removed, since their rowids come free.
   */
  #ownAbove = new Map<string, number>();
  /** Rows upserted so far (rows of aborted streamed parts taken out again). */
  #upserted = 0;
  /** Rows deleted by this run (a changed object's earlier rows, a pruned object's). */
  #removed = 0;
  #open = true;

  readonly #staged: boolean;
  readonly #stageRows: number;
  /** Rows in the stage, all tables together. */
  #stagedRows = 0;

  constructor(
    db: DatabaseSync,
    runId: number,
    types: readonly RecordType[],
    options: {
      bucket: string;
      loadMode: "direct" | "staged";
      stageRows: number;
      takingOver: boolean;
      emptyRegistry: boolean;
      lockWaitMs: number;
      quickCheckedAt: string | undefined;
    },
    release: () => void,
  ) {
    this.#db = db;
    this.runId = runId;
    this.#release = release;
    this.#bucket = options.bucket;
    this.#takingOver = options.takingOver;
    this.lockWaitMs = options.lockWaitMs;
    this.#quickCheckedAt = options.quickCheckedAt;
    this.#registryEmpty = options.emptyRegistry;
    this.#types = new Map(types.map((t) => [t.type, t]));
    for (const type of types) this.#ownAbove.set(type.table, this.#maxRowid(type.table));
    this.#staged = options.loadMode === "staged";
    if (this.#staged) logger.debug("Loading staged: rows are merged in key order");
    this.#stageRows = options.stageRows;
    if (this.#staged) {
      for (const type of types) {
        const cols = [
          ...type.columns.map((c) => `${quote(c.name)} ${c.sqlType}`),
          "source_key TEXT",
          "source_pos INTEGER",
        ];
        db.exec(`CREATE TEMP TABLE IF NOT EXISTS ${quote(`stage_${type.table}`)} (${cols.join(", ")})`);
        db.exec(`DELETE FROM temp.${quote(`stage_${type.table}`)}`);
      }
    }
    this.#register = db.prepare(
      `INSERT INTO processed_files (key, status, run_id, processed_at, records, rejected, ignored, bytes, etag, size)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (key) DO UPDATE SET status = excluded.status, run_id = excluded.run_id,
         processed_at = excluded.processed_at, records = excluded.records, rejected = excluded.rejected,
         ignored = excluded.ignored, bytes = excluded.bytes, etag = coalesce(excluded.etag, etag),
         size = coalesce(excluded.size, size), deleted_at = NULL, origin = 'run'`,
    );
    this.#reject = db.prepare(
      "INSERT INTO rejected_records (run_id, key, record_index, type, reason, raw) VALUES (?, ?, ?, ?, ?, ?)",
    );
    this.#clearRejections = db.prepare("DELETE FROM rejected_records WHERE key = ?");
  }

  registered(keys: readonly string[], statuses?: readonly FileStatus[]): Promise<ReadonlySet<string>> {
    return Promise.resolve(registeredAmong(this.#db, keys, statuses));
  }

  unregistered(keys: readonly string[], statuses?: readonly FileStatus[]): Promise<string[]> {
    return Promise.resolve(unregisteredAmong(this.#db, keys, statuses));
  }

  #maxRowid(table: string): number {
    return (this.#db.prepare(`SELECT coalesce(max(rowid), 0) AS m FROM main.${quote(table)}`).get() as { m: number })
      .m;
  }

  /** Merges the staged rows into the data tables, table by table, in key order. */
  #merge() {
    if (this.#stagedRows === 0) return;
    // A larger cache while merging: fewer dirty pages spilled to the WAL more than once (incremental run: 1.62× → 1.44×
    // the first load, 175 → 190 MB peak; 48 MiB measured no faster and passed 200 MB).
    this.#db.exec(`PRAGMA cache_size = -${MERGE_CACHE_KIB}`);
    for (const type of this.#types.values()) {
      const id = `merge/${type.table}`;
      let stmt = this.#upserts.get(id);
      if (stmt === undefined) this.#upserts.set(id, stmt = this.#db.prepare(mergeSql(type)));
      stmt.run();
      this.#db.exec(`DELETE FROM temp.${quote(`stage_${type.table}`)}`);
    }
    this.#stagedRows = 0;
    this.#db.exec(`PRAGMA cache_size = -${CACHE_KIB}`);
  }

  rowCounts(): Promise<RowCounts> {
    this.#merge();
    // Rows that replaced removed rows (a changed object's) are new rows again.
    let inserted = 0;
    for (const [table, above] of this.#ownAbove) {
      inserted += (this.#db.prepare(`SELECT count(*) AS n FROM main.${quote(table)} WHERE rowid > ?`).get(above) as {
        n: number;
      }).n;
    }
    return Promise.resolve({ inserted, updated: this.#upserted - inserted, removed: this.#removed });
  }

  importKeys(keys: readonly string[], processedAt: Date): Promise<ImportOutcome> {
    if (!this.#takingOver) {
      return Promise.resolve({ imported: 0, skipped: this.#registryEmpty ? "no-rows" : "registry" });
    }
    const insert = this.#db.prepare(
      `INSERT INTO processed_files (key, status, run_id, processed_at, records, rejected, ignored, bytes, origin)
       VALUES (?, 'loaded', ?, ?, 0, 0, 0, 0, 'imported') ON CONFLICT (key) DO NOTHING`,
    );
    let added = 0;
    for (const key of keys) added += Number(insert.run(key, this.runId, processedAt.toISOString()).changes);
    return Promise.resolve({ imported: added, skipped: undefined });
  }

  noteMissing(keys: readonly { key: string; reason: string }[], giveUpRuns: number, at: Date): Promise<string[]> {
    const db = this.#db;
    db.prepare("DELETE FROM missing_keys WHERE key NOT IN (SELECT value FROM json_each(?))").run(
      JSON.stringify(keys.map((k) => k.key)),
    );
    const bump = db.prepare(
      `INSERT INTO missing_keys (key, runs, last_reason) VALUES (?, 1, ?)
       ON CONFLICT (key) DO UPDATE SET runs = runs + 1, last_reason = excluded.last_reason RETURNING runs`,
    );
    const gaveUp: string[] = [];
    for (const { key, reason } of keys) {
      const { runs } = bump.get(key, reason) as { runs: number };
      if (giveUpRuns > 0 && runs >= giveUpRuns) gaveUp.push(key);
    }
    for (const key of gaveUp) {
      const reason = giveUpReason(giveUpRuns, keys.find((k) => k.key === key)!.reason);
      this.#clearRejections.run(key);
      this.#reject.run(this.runId, key, null, null, reason, null);
      this.#register.run(key, "invalid", this.runId, at.toISOString(), 0, 1, 0, 0, null, null);
      db.prepare("DELETE FROM missing_keys WHERE key = ?").run(key);
    }
    return Promise.resolve(gaveUp);
  }

  rollbackAsCheck(at: Date, result: string): Promise<void> {
    if (!this.#open) return Promise.resolve();
    this.#db.exec("ROLLBACK");
    this.#db.exec("BEGIN IMMEDIATE");
    writeMeta(this.#db, {
      last_check_at: at.toISOString(),
      last_check_result: result,
      ...(this.#quickCheckedAt === undefined ? {} : { last_quick_check_at: this.#quickCheckedAt }),
    });
    this.#db.exec("COMMIT");
    this.#open = false;
    this.#release();
    return Promise.resolve();
  }

  cachedList(key: string): Promise<{ text: string; validators: Validators } | undefined> {
    const row = this.#db.prepare("SELECT etag, last_modified, body FROM list_cache WHERE bucket = ? AND key = ?").get(
      this.#bucket,
      key,
    ) as
      | { etag: string | null; last_modified: string | null; body: string }
      | undefined;
    if (row === undefined || (row.etag === null && row.last_modified === null)) return Promise.resolve(undefined);
    return Promise.resolve({
      text: row.body,
      validators: { etag: row.etag ?? undefined, lastModified: row.last_modified ?? undefined },
    });
  }

  cacheList(key: string, text: string, validators: Validators): Promise<void> {
    this.#db.prepare(
      `INSERT INTO list_cache (bucket, key, etag, last_modified, body, run_id) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (bucket, key) DO UPDATE SET etag = excluded.etag, last_modified = excluded.last_modified,
         body = excluded.body, run_id = excluded.run_id`,
    ).run(this.#bucket, key, validators.etag ?? null, validators.lastModified ?? null, text, this.runId);
    return Promise.resolve();
  }

  /** The streamed file whose parts are being written, inside the savepoint `file_part`. */
  #streaming:
    | {
      key: string;
      records: number;
      rejected: number;
      ignored: number;
      upserted: number;
      removed: number;
      stagedRows: number;
      ownAbove: ReadonlyMap<string, number>;
    }
    | undefined = undefined;

  #writeRowsAndRejections(key: string, part: FilePart, position: number) {
    for (const [typeName, { cells }] of part.rows) {
      const type = this.#types.get(typeName);
      if (type === undefined) throw new TypeError(`No table for record type '${typeName}'`);
      this.#upsert(type, key, cells, position);
    }
    for (const r of part.rejections) this.#reject.run(this.runId, key, r.index, r.typeName, r.reason, r.raw);
  }

  /** Removes the rows an object loaded before (those whose `source_key` it is), e.g. when it changed. */
  #removeRowsOf(keys: readonly string[]) {
    if (keys.length === 0) return;
    for (const type of this.#types.values()) {
      this.#removed += Number(
        this.#db.prepare(`DELETE FROM main.${quote(type.table)} WHERE source_key IN (SELECT value FROM json_each(?))`)
          .run(JSON.stringify(keys)).changes,
      );
      // A row inserted after this gets the largest remaining rowid + 1, which may be below the old bound.
      this.#ownAbove.set(type.table, Math.min(this.#ownAbove.get(type.table)!, this.#maxRowid(type.table)));
    }
  }

  #listedReady = false;

  addListed(objects: readonly ListedFingerprint[], firstPosition: number): Promise<void> {
    if (!this.#listedReady) {
      this.#db.exec(`CREATE TEMP TABLE IF NOT EXISTS listed (
        position INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, etag TEXT NOT NULL, size INTEGER NOT NULL)`);
      this.#db.exec("DELETE FROM temp.listed");
      this.#listedReady = true;
    }
    this.#db.prepare(
      `INSERT INTO temp.listed (position, key, etag, size)
       SELECT ? + key, value ->> 0, value ->> 1, value ->> 2 FROM json_each(?)`,
    ).run(firstPosition, JSON.stringify(objects.map((o) => [o.key, o.etag, o.size])));
    return Promise.resolve();
  }

  listedPlan(options: { all: boolean; loadedOnly: boolean; detect: boolean }): Promise<PlannedKey[]> {
    if (!this.#listedReady) return Promise.resolve([]);
    const rows = this.#db.prepare(
      `SELECT l.key, l.position, l.etag, l.size,
         p.key IS NOT NULL AND (p.deleted_at IS NOT NULL
           OR (:detect AND p.etag IS NOT NULL AND (p.etag <> l.etag OR p.size <> l.size))) AS changed,
         p.key IS NULL OR (:loadedOnly AND p.status <> 'loaded') AS fresh
       FROM temp.listed AS l LEFT JOIN processed_files AS p ON p.key = l.key
       WHERE :all OR fresh OR changed
       ORDER BY l.position`,
    ).all({ all: options.all ? 1 : 0, loadedOnly: options.loadedOnly ? 1 : 0, detect: options.detect ? 1 : 0 }) as {
      key: string;
      position: number;
      etag: string;
      size: number;
      changed: number;
    }[];
    return Promise.resolve(
      rows.map((r) => ({ key: r.key, position: r.position, etag: r.etag, size: r.size, changed: r.changed === 1 })),
    );
  }

  unlisted(): Promise<string[]> {
    if (!this.#listedReady) return Promise.resolve([]);
    const rows = this.#db.prepare(
      `SELECT key FROM processed_files AS p WHERE deleted_at IS NULL
         AND NOT EXISTS (SELECT 1 FROM temp.listed AS l WHERE l.key = p.key)
       ORDER BY key`,
    ).all() as { key: string }[];
    return Promise.resolve(rows.map((r) => r.key));
  }

  markDeleted(keys: readonly string[], at: Date, prune: boolean): Promise<string[]> {
    if (keys.length === 0) return Promise.resolve([]);
    const marked = (this.#db.prepare(
      `UPDATE processed_files SET deleted_at = ?, run_id = ?
       WHERE key IN (SELECT value FROM json_each(?)) AND deleted_at IS NULL RETURNING key`,
    ).all(at.toISOString(), this.runId, JSON.stringify(keys)) as { key: string }[]).map((r) => r.key).sort();
    if (prune) {
      // Staged rows are merged first, so that no row of a pruned object comes back with a merge.
      this.#merge();
      this.#removeRowsOf(marked);
    }
    return Promise.resolve(marked);
  }

  writePart(key: string, part: FilePart, options: PartOptions = {}): Promise<void> {
    const { replace = false } = options;
    if (this.#streaming?.key !== key) {
      if (this.#streaming !== undefined) throw new Error(`Parts of ${this.#streaming.key} were left open`);
      this.#db.exec("SAVEPOINT file_part");
      this.#streaming = {
        key,
        records: 0,
        rejected: 0,
        ignored: 0,
        upserted: this.#upserted,
        removed: this.#removed,
        stagedRows: this.#stagedRows,
        ownAbove: new Map(this.#ownAbove),
      };
      if (replace) this.#removeRowsOf([key]);
      this.#clearRejections.run(key);
    }
    this.#writeRowsAndRejections(key, part, options.position ?? Number.MAX_SAFE_INTEGER);
    this.#streaming.records += part.records;
    this.#streaming.rejected += part.rejections.length;
    for (const n of part.ignored.values()) this.#streaming.ignored += n;
    return Promise.resolve();
  }

  abortFile(key: string): Promise<void> {
    if (this.#streaming?.key === key) {
      // The rollback also undoes merges made since the savepoint: the stage holds again what it held then.
      this.#upserted = this.#streaming.upserted;
      this.#removed = this.#streaming.removed;
      this.#ownAbove = new Map(this.#streaming.ownAbove);
      this.#stagedRows = this.#streaming.stagedRows;
      this.#db.exec("ROLLBACK TO file_part");
      this.#db.exec("RELEASE file_part");
      this.#streaming = undefined;
    }
    return Promise.resolve();
  }

  writeFile(file: FileWrite): Promise<void> {
    let before = { records: 0, rejected: 0, ignored: 0 };
    if (this.#streaming?.key === file.key) {
      if (file.status === "invalid") {
        this.#upserted = this.#streaming.upserted;
        this.#removed = this.#streaming.removed;
        this.#ownAbove = new Map(this.#streaming.ownAbove);
        this.#stagedRows = this.#streaming.stagedRows;
        this.#db.exec("ROLLBACK TO file_part");
        this.#clearRejections.run(file.key);
      } else before = this.#streaming;
    } else {
      if (file.replace) this.#removeRowsOf([file.key]);
      this.#clearRejections.run(file.key);
    }
    if (this.#streaming?.key === file.key && file.status === "invalid" && file.replace) this.#removeRowsOf([file.key]);
    this.#writeRowsAndRejections(file.key, file, file.position ?? Number.MAX_SAFE_INTEGER);
    this.#register.run(
      file.key,
      file.status,
      this.runId,
      file.processedAt.toISOString(),
      before.records + file.records,
      before.rejected + file.rejections.length,
      before.ignored + [...file.ignored.values()].reduce((a, b) => a + b, 0),
      file.bytes,
      file.fingerprint?.etag ?? null,
      file.fingerprint?.size ?? null,
    );
    if (this.#streaming?.key === file.key) {
      this.#db.exec("RELEASE file_part");
      this.#streaming = undefined;
    }
    return Promise.resolve();
  }

  /**
   * Upserts rows given as one flat array of cells, `UPSERT_BATCH` rows per
   * statement: into the table, or into its stage (merged when it holds
   * {@linkcode STAGE_ROWS} rows, and at commit).
   */
  #upsert(type: RecordType, key: string, flat: readonly (string | number)[], position: number) {
    const width = type.columns.length;
    const rows = flat.length / width;
    const params: (string | number)[] = new Array((width + 2) * Math.min(UPSERT_BATCH, rows));
    this.#upserted += rows;
    const staged = this.#staged;
    for (let start = 0; start < rows; start += UPSERT_BATCH) {
      const n = Math.min(UPSERT_BATCH, rows - start);
      const id = `${staged ? "stage" : "upsert"}/${type.table}/${n}`;
      let stmt = this.#upserts.get(id);
      if (stmt === undefined) {
        this.#upserts.set(id, stmt = this.#db.prepare(staged ? stageSql(type, n) : upsertSql(type, n)));
      }
      // Each row's cells, then its file's key and list position.
      let at = 0;
      for (let r = start; r < start + n; r++) {
        for (let c = r * width, end = c + width; c < end; c++) params[at++] = flat[c]!;
        params[at++] = key;
        params[at++] = position;
      }
      params.length = at;
      stmt.run(...params);
    }
    if (staged) {
      this.#stagedRows += rows;
      if (this.#stagedRows >= this.#stageRows) this.#merge();
    }
  }

  commit(c: RunCounts): Promise<void> {
    this.#merge();
    const sum = (counts: Readonly<Record<string, number>>) => Object.values(counts).reduce((a, b) => a + b, 0);
    this.#db.prepare(
      `UPDATE runs SET finished_at = ?, status = ?, files_listed = ?, files_new = ?, files_loaded = ?,
         files_invalid = ?, files_missing = ?, files_failed = ?, files_refused = ?, records_loaded = ?,
         loaded_by_type = ?, records_rejected = ?, records_ignored = ?, ignored_by_type = ?,
         rows_inserted = ?, rows_updated = ?, rows_removed = ?, files_changed = ?, files_deleted = ?,
         files_claimed_elsewhere = ?
       WHERE id = ?`,
    ).run(
      c.finishedAt.toISOString(),
      c.status,
      c.filesListed,
      c.filesNew,
      c.filesLoaded,
      c.filesInvalid,
      c.filesMissing,
      c.filesFailed,
      c.filesRefused,
      sum(c.loaded),
      JSON.stringify(c.loaded),
      c.rejected,
      sum(c.ignored),
      JSON.stringify(c.ignored),
      c.rowsInserted,
      c.rowsUpdated,
      c.rowsRemoved,
      c.filesChanged,
      c.filesDeleted,
      c.filesClaimedElsewhere,
      this.runId,
    );
    const issue = this.#db.prepare("INSERT INTO run_keys (run_id, key, outcome, reason) VALUES (?, ?, ?, ?)");
    for (const i of c.issues) issue.run(this.runId, i.key, i.outcome, i.reason);
    if (this.#quickCheckedAt !== undefined) writeMeta(this.#db, { last_quick_check_at: this.#quickCheckedAt });
    this.#db.exec("COMMIT");
    this.#open = false;
    this.#release();
    return Promise.resolve();
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
