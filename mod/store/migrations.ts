/**
 * The SQLite schema and its versioned migrations. `schema_version` records
 * each applied step; a database made by the Python original (data tables
 * without `source_key`, no bookkeeping) is migrated in place. Every step runs
 * inside the caller's transaction, so a migration commits with its run or not
 * at all.
 *
 * @module
 */
import type { DatabaseSync } from "node:sqlite";
import { UsageError } from "../common/errors.ts";
import { EXTRA_COLUMN, type RecordType } from "../records/mod.ts";
import { hasColumn, hasTable, type SqlClient } from "./kit/client.ts";
import { quote } from "./kit/sql.ts";
import { readMeta, writeMeta } from "./kit/bookkeeping.ts";
import { forgetTableRows } from "./kit/summary.ts";
import { DATA_COLUMNS_META, FILL_META, splitMissing, withFills } from "./kit/tamper.ts";

/**
 * One schema step: applied once, in order, and recorded in `schema_version`.
 * Written in SQLite's dialect; {@linkcode postgresSql} translates it for the
 * PostgreSQL store, so that both stores share one list of versions.
 *
 * Append-only: a step that has shipped never changes (a database that
 * recorded its version never runs it again). A change is a new step at the
 * end; `tests/upgrade_test.ts` holds the shipped steps' hashes and a database
 * made by each shipped version (docs/data.md, "Schema versions").
 */
export interface Migration {
  /** The step's number: its version once applied. */
  readonly version: number;
  /** What the step does, in a few words. */
  readonly description: string;
  /** The step's statements, in SQLite's dialect (translated for PostgreSQL by {@linkcode postgresSql}). */
  readonly sql: string;
  /** Statements for SQLite alone, run after {@linkcode sql}: what PostgreSQL says otherwise (triggers). */
  readonly sqlite?: string;
  /** Statements for PostgreSQL alone, as written (not translated), run after {@linkcode sql}. */
  readonly postgres?: string;
  /**
   * Columns added before {@linkcode sql} only where the table lacks them, on
   * both stores ({@linkcode sqliteMigrationSql}, {@linkcode postgresMigrationSql}):
   * a repair of databases that recorded a version whose text changed after
   * it shipped. SQLite's `ADD COLUMN` has no `IF NOT EXISTS`.
   */
  readonly ensureColumns?: readonly EnsuredColumn[];
}

/** A column a migration adds where it is missing: `ALTER TABLE table ADD COLUMN column definition`. */
export interface EnsuredColumn {
  /** The table. */
  readonly table: string;
  /** The column's name. */
  readonly column: string;
  /** The column's type and constraints, in SQLite's dialect (e.g. `INTEGER NOT NULL DEFAULT 0`). */
  readonly definition: string;
}

/** The schema's steps, in order (append-only: see {@linkcode Migration}). */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: "bookkeeping: runs, processed_files, rejected_records, list_cache, run_keys",
    sql: `
CREATE TABLE IF NOT EXISTS runs (
  id INTEGER PRIMARY KEY,
  started_at TEXT NOT NULL,
  finished_at TEXT,
  status TEXT NOT NULL,
  files_listed INTEGER NOT NULL DEFAULT 0,
  files_new INTEGER NOT NULL DEFAULT 0,
  files_loaded INTEGER NOT NULL DEFAULT 0,
  files_invalid INTEGER NOT NULL DEFAULT 0,
  files_missing INTEGER NOT NULL DEFAULT 0,
  files_failed INTEGER NOT NULL DEFAULT 0,
  files_refused INTEGER NOT NULL DEFAULT 0,
  records_loaded INTEGER NOT NULL DEFAULT 0,
  loaded_by_type TEXT NOT NULL DEFAULT '{}',
  records_rejected INTEGER NOT NULL DEFAULT 0,
  records_ignored INTEGER NOT NULL DEFAULT 0,
  ignored_by_type TEXT NOT NULL DEFAULT '{}'
) STRICT;
CREATE TABLE IF NOT EXISTS processed_files (
  key TEXT PRIMARY KEY,
  status TEXT NOT NULL CHECK (status IN ('loaded', 'invalid')),
  run_id INTEGER NOT NULL REFERENCES runs(id),
  processed_at TEXT NOT NULL,
  records INTEGER NOT NULL,
  rejected INTEGER NOT NULL,
  ignored INTEGER NOT NULL,
  bytes INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS rejected_records (
  id INTEGER PRIMARY KEY,
  run_id INTEGER NOT NULL REFERENCES runs(id),
  key TEXT NOT NULL,
  record_index INTEGER,
  type TEXT,
  reason TEXT NOT NULL,
  raw TEXT
) STRICT;
CREATE INDEX IF NOT EXISTS rejected_records_by_key ON rejected_records(key);
CREATE TABLE IF NOT EXISTS list_cache (
  key TEXT PRIMARY KEY,
  etag TEXT,
  last_modified TEXT,
  body TEXT NOT NULL,
  run_id INTEGER NOT NULL REFERENCES runs(id)
) STRICT;
CREATE TABLE IF NOT EXISTS run_keys (
  run_id INTEGER NOT NULL REFERENCES runs(id),
  key TEXT NOT NULL,
  outcome TEXT NOT NULL CHECK (outcome IN ('refused', 'missing', 'failed')),
  reason TEXT NOT NULL
) STRICT;`,
  },
  {
    version: 2,
    description: "list cache keyed by bucket; bucket identity; imported keys; inserted/updated counts; missing streaks",
    sql: `
DROP TABLE IF EXISTS list_cache;
CREATE TABLE list_cache (
  bucket TEXT NOT NULL,
  key TEXT NOT NULL,
  etag TEXT,
  last_modified TEXT,
  body TEXT NOT NULL,
  run_id INTEGER NOT NULL REFERENCES runs(id),
  PRIMARY KEY (bucket, key)
) STRICT;
CREATE TABLE meta (
  name TEXT PRIMARY KEY,
  value TEXT NOT NULL
) STRICT;
CREATE TABLE missing_keys (
  key TEXT PRIMARY KEY,
  runs INTEGER NOT NULL,
  last_reason TEXT NOT NULL
) STRICT;
ALTER TABLE processed_files ADD COLUMN origin TEXT NOT NULL DEFAULT 'run';
ALTER TABLE runs ADD COLUMN bucket TEXT;
ALTER TABLE runs ADD COLUMN rows_inserted INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN rows_updated INTEGER NOT NULL DEFAULT 0;`,
  },
  {
    version: 3,
    description: "object fingerprints (ETag, size) and deletions in the registry; changed and deleted counts per run",
    sql: `
ALTER TABLE processed_files ADD COLUMN etag TEXT;
ALTER TABLE processed_files ADD COLUMN size INTEGER;
ALTER TABLE processed_files ADD COLUMN deleted_at TEXT;
ALTER TABLE runs ADD COLUMN files_changed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN files_deleted INTEGER NOT NULL DEFAULT 0;`,
  },
  {
    version: 4,
    description: "rows removed and keys claimed by other runs, per run",
    sql: `
ALTER TABLE runs ADD COLUMN rows_removed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN files_claimed_elsewhere INTEGER NOT NULL DEFAULT 0;`,
  },
  {
    version: 5,
    description: "schema drift per run; each file's list position in the registry; run kinds (run, replay)",
    sql: `
CREATE TABLE run_drift (
  run_id INTEGER NOT NULL REFERENCES runs(id),
  type TEXT NOT NULL,
  field TEXT NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('unknown', 'type', 'more')),
  expected TEXT,
  seen TEXT,
  records INTEGER NOT NULL,
  example TEXT
) STRICT;
CREATE INDEX run_drift_by_run ON run_drift(run_id);
ALTER TABLE processed_files ADD COLUMN position INTEGER;
ALTER TABLE runs ADD COLUMN kind TEXT NOT NULL DEFAULT 'run';`,
  },
  {
    // 5 and 4 were edited after they shipped: a database made by the first 5 (before replay) lacks position and
    // kind, one made by the first 4 (before claims had a bound) lacks files_claimed_elsewhere, and neither ran the
    // new text. On any other database this step adds nothing.
    version: 6,
    description: "repair: the columns the first schemas 4 and 5 lacked (runs.files_claimed_elsewhere, " +
      "processed_files.position, runs.kind), added where missing",
    sql: "",
    ensureColumns: [
      { table: "runs", column: "files_claimed_elsewhere", definition: "INTEGER NOT NULL DEFAULT 0" },
      { table: "processed_files", column: "position", definition: "INTEGER" },
      { table: "runs", column: "kind", definition: "TEXT NOT NULL DEFAULT 'run'" },
    ],
  },
  {
    // Version 7 was never used (a change that first needed it kept its state in `meta` instead): versions only count
    // up, and a gap is no step.
    // The status report reads a bounded number of rows whatever the history: totals kept as the tables change, and
    // indexes for what it lists. SQLite keeps one row per total (txn 0); a PostgreSQL transaction adds its own rows
    // (txn: its id), so that runs side by side never wait on a shared row, and each commit folds them into txn 0
    // (kit/summary.ts). The totals are the sums of a total's rows. Data tables' rows are counted by each commit.
    version: 8,
    description: "status totals (registry files by status, rejections by reason, rows per table) and indexes for " +
      "the status report (registry by run, invalid files, problem keys by run, rejections by reason)",
    sql: `
CREATE TABLE registry_counts (
  txn INTEGER NOT NULL,
  status TEXT NOT NULL,
  deleted INTEGER NOT NULL,
  files INTEGER NOT NULL,
  PRIMARY KEY (txn, status, deleted)
) STRICT;
CREATE TABLE rejection_counts (
  txn INTEGER NOT NULL,
  reason TEXT NOT NULL,
  records INTEGER NOT NULL,
  PRIMARY KEY (txn, reason)
) STRICT;
CREATE TABLE table_rows (
  name TEXT PRIMARY KEY,
  "rows" INTEGER NOT NULL
) STRICT;
CREATE INDEX processed_files_by_run ON processed_files(run_id);
CREATE INDEX processed_files_invalid ON processed_files(processed_at DESC, key) WHERE status = 'invalid';
CREATE INDEX run_keys_by_run ON run_keys(run_id DESC, key);
INSERT INTO registry_counts (txn, status, deleted, files)
  SELECT 0, status, CASE WHEN deleted_at IS NULL THEN 0 ELSE 1 END, count(*) FROM processed_files
  GROUP BY status, CASE WHEN deleted_at IS NULL THEN 0 ELSE 1 END;`,
    sqlite: `
CREATE INDEX rejected_records_by_reason ON rejected_records(
  (CASE WHEN instr(reason, ', got ') > 0 THEN substr(reason, 1, instr(reason, ', got ') - 1) ELSE reason END), id);
INSERT INTO rejection_counts (txn, reason, records)
  SELECT 0, CASE WHEN instr(reason, ', got ') > 0 THEN substr(reason, 1, instr(reason, ', got ') - 1) ELSE reason END,
    count(*)
  FROM rejected_records GROUP BY 2;
CREATE TRIGGER registry_counts_insert AFTER INSERT ON processed_files BEGIN
  INSERT INTO registry_counts (txn, status, deleted, files) VALUES (0, NEW.status, NEW.deleted_at IS NOT NULL, 1)
    ON CONFLICT (txn, status, deleted) DO UPDATE SET files = files + 1;
END;
CREATE TRIGGER registry_counts_update AFTER UPDATE OF status, deleted_at ON processed_files
  WHEN OLD.status IS NOT NEW.status OR (OLD.deleted_at IS NULL) <> (NEW.deleted_at IS NULL) BEGIN
  UPDATE registry_counts SET files = files - 1
    WHERE txn = 0 AND status = OLD.status AND deleted = (OLD.deleted_at IS NOT NULL);
  INSERT INTO registry_counts (txn, status, deleted, files) VALUES (0, NEW.status, NEW.deleted_at IS NOT NULL, 1)
    ON CONFLICT (txn, status, deleted) DO UPDATE SET files = files + 1;
END;
CREATE TRIGGER registry_counts_delete AFTER DELETE ON processed_files BEGIN
  UPDATE registry_counts SET files = files - 1
    WHERE txn = 0 AND status = OLD.status AND deleted = (OLD.deleted_at IS NOT NULL);
END;
CREATE TRIGGER rejection_counts_insert AFTER INSERT ON rejected_records BEGIN
  INSERT INTO rejection_counts (txn, reason, records) VALUES (0,
    CASE WHEN instr(NEW.reason, ', got ') > 0 THEN substr(NEW.reason, 1, instr(NEW.reason, ', got ') - 1)
      ELSE NEW.reason END, 1)
    ON CONFLICT (txn, reason) DO UPDATE SET records = records + 1;
END;
CREATE TRIGGER rejection_counts_update AFTER UPDATE OF reason ON rejected_records
  WHEN OLD.reason IS NOT NEW.reason BEGIN
  UPDATE rejection_counts SET records = records - 1 WHERE txn = 0 AND reason =
    CASE WHEN instr(OLD.reason, ', got ') > 0 THEN substr(OLD.reason, 1, instr(OLD.reason, ', got ') - 1)
      ELSE OLD.reason END;
  DELETE FROM rejection_counts WHERE txn = 0 AND records = 0 AND reason =
    CASE WHEN instr(OLD.reason, ', got ') > 0 THEN substr(OLD.reason, 1, instr(OLD.reason, ', got ') - 1)
      ELSE OLD.reason END;
  INSERT INTO rejection_counts (txn, reason, records) VALUES (0,
    CASE WHEN instr(NEW.reason, ', got ') > 0 THEN substr(NEW.reason, 1, instr(NEW.reason, ', got ') - 1)
      ELSE NEW.reason END, 1)
    ON CONFLICT (txn, reason) DO UPDATE SET records = records + 1;
END;
CREATE TRIGGER rejection_counts_delete AFTER DELETE ON rejected_records BEGIN
  UPDATE rejection_counts SET records = records - 1 WHERE txn = 0 AND reason =
    CASE WHEN instr(OLD.reason, ', got ') > 0 THEN substr(OLD.reason, 1, instr(OLD.reason, ', got ') - 1)
      ELSE OLD.reason END;
  DELETE FROM rejection_counts WHERE txn = 0 AND records = 0 AND reason =
    CASE WHEN instr(OLD.reason, ', got ') > 0 THEN substr(OLD.reason, 1, instr(OLD.reason, ', got ') - 1)
      ELSE OLD.reason END;
END;`,
    postgres: `
CREATE INDEX rejected_records_by_reason ON rejected_records(
  (CASE WHEN strpos(reason, ', got ') > 0 THEN substr(reason, 1, strpos(reason, ', got ') - 1) ELSE reason END), id);
INSERT INTO rejection_counts (txn, reason, records)
  SELECT 0, CASE WHEN strpos(reason, ', got ') > 0 THEN substr(reason, 1, strpos(reason, ', got ') - 1) ELSE reason END,
    count(*)
  FROM rejected_records GROUP BY 2;
CREATE FUNCTION bucketload_registry_counts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP <> 'INSERT' THEN
    INSERT INTO registry_counts AS c (txn, status, deleted, files)
      VALUES (txid_current(), OLD.status, CASE WHEN OLD.deleted_at IS NULL THEN 0 ELSE 1 END, -1)
      ON CONFLICT (txn, status, deleted) DO UPDATE SET files = c.files - 1;
  END IF;
  IF TG_OP <> 'DELETE' THEN
    INSERT INTO registry_counts AS c (txn, status, deleted, files)
      VALUES (txid_current(), NEW.status, CASE WHEN NEW.deleted_at IS NULL THEN 0 ELSE 1 END, 1)
      ON CONFLICT (txn, status, deleted) DO UPDATE SET files = c.files + 1;
  END IF;
  RETURN NULL;
END $$;
CREATE FUNCTION bucketload_rejection_counts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP <> 'DELETE' THEN
    INSERT INTO rejection_counts AS c (txn, reason, records)
      SELECT txid_current(),
        CASE WHEN strpos(reason, ', got ') > 0 THEN substr(reason, 1, strpos(reason, ', got ') - 1) ELSE reason END,
        count(*)
      FROM new_rows GROUP BY 2
      ON CONFLICT (txn, reason) DO UPDATE SET records = c.records + excluded.records;
  END IF;
  IF TG_OP <> 'INSERT' THEN
    INSERT INTO rejection_counts AS c (txn, reason, records)
      SELECT txid_current(),
        CASE WHEN strpos(reason, ', got ') > 0 THEN substr(reason, 1, strpos(reason, ', got ') - 1) ELSE reason END,
        -count(*)
      FROM old_rows GROUP BY 2
      ON CONFLICT (txn, reason) DO UPDATE SET records = c.records + excluded.records;
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER registry_counts_insert_delete AFTER INSERT OR DELETE ON processed_files
  FOR EACH ROW EXECUTE FUNCTION bucketload_registry_counts();
CREATE TRIGGER registry_counts_update AFTER UPDATE ON processed_files FOR EACH ROW
  WHEN (OLD.status IS DISTINCT FROM NEW.status OR (OLD.deleted_at IS NULL) <> (NEW.deleted_at IS NULL))
  EXECUTE FUNCTION bucketload_registry_counts();
CREATE TRIGGER rejection_counts_insert AFTER INSERT ON rejected_records
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION bucketload_rejection_counts();
CREATE TRIGGER rejection_counts_update AFTER UPDATE ON rejected_records
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION bucketload_rejection_counts();
CREATE TRIGGER rejection_counts_delete AFTER DELETE ON rejected_records
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION bucketload_rejection_counts();`,
  },
];

/** The schema version this build writes. */
export const SCHEMA_VERSION: number = MIGRATIONS.at(-1)!.version;

/**
 * A migration's SQL in PostgreSQL's dialect: `INTEGER PRIMARY KEY` becomes an
 * identity column, `INTEGER` a `BIGINT`, `REAL` a `DOUBLE PRECISION`, and
 * `STRICT` goes (PostgreSQL's columns are always typed).
 */
export function postgresSql(sql: string): string {
  return sql
    .replaceAll(/\bid INTEGER PRIMARY KEY\b/g, "id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY")
    .replaceAll(/\bINTEGER\b/g, "BIGINT")
    .replaceAll(/\bREAL\b/g, "DOUBLE PRECISION")
    .replaceAll(/\)\s*STRICT\s*;/g, ");");
}

const addColumn = (c: EnsuredColumn, ifNotExists = "") =>
  `ALTER TABLE ${quote(c.table)} ADD COLUMN ${ifNotExists}${quote(c.column)} ${c.definition};`;

/** A migration's statements for a SQLite database: the ensured columns it lacks, then the step's SQL. */
export async function sqliteMigrationSql(c: SqlClient, m: Migration): Promise<string> {
  const missing: EnsuredColumn[] = [];
  for (const column of m.ensureColumns ?? []) {
    if (!(await hasColumn(c, column.table, column.column))) missing.push(column);
  }
  return [...missing.map((column) => addColumn(column)), m.sql, m.sqlite ?? ""].join("\n");
}

/** A migration's statements for PostgreSQL: the ensured columns (`ADD COLUMN IF NOT EXISTS`), then the step's SQL. */
export function postgresMigrationSql(m: Migration): string {
  const shared = postgresSql([...(m.ensureColumns ?? []).map((c) => addColumn(c, "IF NOT EXISTS ")), m.sql].join("\n"));
  return [shared, m.postgres ?? ""].join("\n");
}

/** The CREATE TABLE statement of a record type's table. */
export function tableSql(type: RecordType): string {
  const cols = type.columns.map((c) => `  ${quote(c.name)} ${c.sqlType} NOT NULL`);
  cols.push(
    `  source_key TEXT NOT NULL`,
    // The list position of the row's file: a row is only replaced from the same or a later position.
    `  source_pos INTEGER`,
    // The fields the record carried that the type does not know, as JSON text (NULL: none); text, not jsonb, on
    // PostgreSQL too: jsonb refuses \u0000 and lone surrogates, and would reorder and dedupe what the record carried.
    `  ${EXTRA_COLUMN} TEXT`,
    `  PRIMARY KEY (${type.key.map(quote).join(", ")})`,
  );
  return `CREATE TABLE IF NOT EXISTS ${quote(type.table)} (\n${cols.join(",\n")}\n) STRICT;`;
}

/** The applied schema version: 0 for a new or original database, 1 for bucketload's before versioning. */
export async function schemaVersion(c: SqlClient): Promise<number> {
  if (await hasTable(c, "schema_version")) {
    const [row] = await c.all<{ v: number | null }>("SELECT max(version) AS v FROM schema_version");
    return row?.v ?? 0;
  }
  return await hasTable(c, "runs") ? 1 : 0;
}

/**
 * Brings the database to {@linkcode SCHEMA_VERSION} and makes every record
 * type's table loadable; returns a line per change to an existing database
 * (none for a new one), for the log. Runs inside the caller's transaction.
 *
 * @throws {UsageError} when the database is newer than this build, or a data table cannot be given a unique natural key
 */
export async function migrate(
  db: DatabaseSync,
  c: SqlClient,
  types: readonly RecordType[],
  now: Date,
): Promise<string[]> {
  const changes: string[] = [];
  const from = await schemaVersion(c);
  const fresh = (db.prepare("SELECT count(*) AS n FROM sqlite_schema").get() as { n: number }).n === 0;
  if (from > SCHEMA_VERSION) {
    throw new UsageError(
      `Database schema version ${from} is newer than this bucketload's (${SCHEMA_VERSION}): upgrade bucketload`,
      { subject: "DATABASE_NAME" },
    );
  }
  const versioned = await hasTable(c, "schema_version");
  db.exec(
    `CREATE TABLE IF NOT EXISTS schema_version (
       version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL, description TEXT NOT NULL) STRICT`,
  );
  if (from === 1 && !versioned) {
    // bucketload before versioning: its bookkeeping is version 1 (re-applied, as it is idempotent, to fill any gap).
    db.exec(MIGRATIONS[0]!.sql);
    db.prepare("INSERT INTO schema_version VALUES (1, ?, ?)").run(now.toISOString(), MIGRATIONS[0]!.description);
  }
  for (const m of MIGRATIONS) {
    if (m.version <= from) continue;
    db.exec(await sqliteMigrationSql(c, m));
    db.prepare("INSERT INTO schema_version VALUES (?, ?, ?)").run(m.version, now.toISOString(), m.description);
    changes.push(`schema ${m.version}: ${m.description}`);
  }
  const recorded = await readMeta(c, DATA_COLUMNS_META);
  const added: Record<string, string[]> = {};
  for (const type of types) changes.push(...await ensureTable(db, c, type, recorded, added));
  // Filled from the stored rows' `extra` by the run (kit/rederive.ts), which clears this at its commit.
  if (Object.keys(added).length > 0) {
    await writeMeta(c, { [FILL_META]: withFills(await readMeta(c, FILL_META), added) });
  }
  return fresh ? [] : changes;
}

/**
 * Creates a record type's table, or adapts one made elsewhere (the Python
 * original): adds missing columns (NULL in existing rows, `source_key`
 * included) and a unique index on the natural key when it has none. Rows keep
 * their values. A bookkeeping table that lacks a column its type gained
 * (never recorded in `recorded`, the `data_columns` meta) gets it, NULL in
 * existing rows, and names it in `added`.
 */
async function ensureTable(
  db: DatabaseSync,
  c: SqlClient,
  type: RecordType,
  recorded: string | undefined,
  added: Record<string, string[]>,
): Promise<string[]> {
  if (!(await hasTable(c, type.table))) {
    db.exec(tableSql(type));
    // Made anew (a table dropped by hand, reloaded with --force): a row count kept for the old one is not its own.
    await forgetTableRows(c, [type.table]);
    return [];
  }
  const changes: string[] = [];
  const have = new Set(
    (db.prepare(`SELECT name FROM pragma_table_info(?)`).all(type.table) as { name: string }[]).map((c) => c.name),
  );
  // bucketload's own table (it has lineage) lacks a column recorded as its own only when it was dropped by hand: its
  // values cannot be given back. A column never recorded is a field the type gained: added below, NULL in old rows.
  if (have.has("source_key")) {
    const missing = type.columns.filter((c) => !have.has(c.name)).map((c) => c.name);
    const { lost, added: gained } = splitMissing(recorded, type.table, missing);
    if (lost.length > 0) throw lostColumns(type.table, lost);
    if (gained.length > 0) added[type.table] = gained;
  }
  for (
    const column of [
      ...type.columns,
      { name: "source_key", sqlType: "TEXT" as const },
      { name: "source_pos", sqlType: "INTEGER" as const },
      { name: EXTRA_COLUMN, sqlType: "TEXT" as const },
    ]
  ) {
    if (have.has(column.name)) continue;
    db.exec(`ALTER TABLE ${quote(type.table)} ADD COLUMN ${quote(column.name)} ${column.sqlType}`);
    changes.push(`${type.table}: added column ${column.name} (NULL in existing rows)`);
  }
  if (!hasUniqueKey(db, type)) {
    const index = `${type.table}_natural_key`;
    try {
      db.exec(`CREATE UNIQUE INDEX ${quote(index)} ON ${quote(type.table)} (${type.key.map(quote).join(", ")})`);
    } catch (error) {
      throw new UsageError(
        `Cannot migrate table ${type.table}: its rows repeat the natural key (${type.key.join(", ")}): ${
          (error as Error).message
        }`,
        { subject: "DATABASE_NAME", cause: error },
      );
    }
    changes.push(`${type.table}: added unique index ${index} on (${type.key.join(", ")})`);
  }
  return changes;
}

/** The error for a bucketload table that lost columns outside bucketload. */
export function lostColumns(table: string, columns: readonly string[]): UsageError {
  return new UsageError(
    `Table ${table} has lost column${columns.length > 1 ? "s" : ""} ${
      columns.join(", ")
    } (dropped outside bucketload): ` +
      `its values cannot be restored, so nothing was written; restore the table from a backup, or drop it and ` +
      `reload with --force`,
    { subject: "DATABASE_NAME" },
  );
}

/** Whether a primary key or unique index covers exactly the type's natural key, as ON CONFLICT needs. */
function hasUniqueKey(db: DatabaseSync, type: RecordType): boolean {
  const want = [...type.key].sort().join("\0");
  const indexes = db.prepare(`SELECT name FROM pragma_index_list(?) WHERE "unique" = 1`).all(type.table) as {
    name: string;
  }[];
  for (const { name } of indexes) {
    const cols = (db.prepare(`SELECT name FROM pragma_index_info(?)`).all(name) as { name: string }[])
      .map((c) => c.name).sort().join("\0");
    if (cols === want) return true;
  }
  // A rowid table's INTEGER PRIMARY KEY has no index row; natural keys here are never that.
  return false;
}
