/**
 * The PostgreSQL store (npm `postgres`). Several runs, on one machine or
 * many, may load one bucket into one database at once:
 *
 * - A run claims each key with a transaction-scoped advisory lock before it
 *   fetches it, and checks the registry again once it holds it, so that every
 *   object is fetched and loaded once. A run that dies releases its claims
 *   with its connection, and its transaction rolls back.
 * - Rows are copied (`COPY`) into the run's temp stage and merged at commit,
 *   under a short advisory "merge" lock, so that runs never wait on each
 *   other's row locks while they fetch. Each row keeps its file's list
 *   position (`source_pos`) and only a row from the same or a later position
 *   replaces it: the later file in list order wins, whichever run loads it.
 * - Shared bookkeeping rows (list cache, meta, missing counts) are written
 *   in that commit section too.
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
  FILL_META,
  missingDataTables,
  splitMissing,
  withFills,
} from "../kit/tamper.ts";
import { getLogger } from "@logtape/logtape";
import { UsageError } from "../../common/errors.ts";
import { EXTRA_COLUMN, type RecordType } from "../../records/mod.ts";
import { redactUrl } from "../../source/location.ts";
import type { StatusReport } from "../status.ts";
import { statusReport } from "../kit/status_query.ts";
import {
  hasRuns,
  readMeta,
  registeredAmong,
  registeredKeys,
  registryEntries,
  registrySince,
  type Retention,
  RunBook,
  writeMeta,
} from "../kit/bookkeeping.ts";
import { hasTable, type SqlClient } from "../kit/client.ts";
import { quote } from "../kit/sql.ts";
import { lostColumns, MIGRATIONS, postgresMigrationSql, postgresSql, SCHEMA_VERSION, tableSql } from "../migrations.ts";
import type { BeginOptions, FileStatus, RegistryEntry, RegistrySince, RunTransaction, Store } from "../store.ts";
import { connect, connectError, postgresClient, type Sql } from "./connection.ts";
import { PostgresRun } from "./run.ts";

const logger = getLogger(["bucketload", "store"]);

/** Advisory lock ids (a namespace of this program's own): schema migrations; the commit section's is the next. */
const MIGRATE_LOCK = 0x6275636b_6c6f6164n; // "buckload" in ASCII

/** Options of {@linkcode PostgresStore.open}. */
export interface PostgresStoreOptions {
  /** The record types whose tables to create. */
  readonly types: readonly RecordType[];
  /** How long to wait to connect, seconds. @default {10} */
  readonly connectTimeoutSeconds?: number;
  /**
   * How long a run may stay silent before the server ends its session and its
   * claims go to other runs (`CLAIM_TIMEOUT_SECONDS`): the server's
   * `idle_in_transaction_session_timeout` for the run's transaction, with a
   * heartbeat every third of it while the run waits. 0: no bound.
   * @default {DEFAULT_CLAIM_TIMEOUT_MS}
   */
  readonly claimTimeoutMs?: number;
  /** `DRIFT_KEEP_RUNS`: each commit keeps the drift rows of the last this many runs; 0 keeps all. @default {0} */
  readonly driftKeepRuns?: number;
}

/** `CLAIM_TIMEOUT_SECONDS`' default: a minute. */
export const DEFAULT_CLAIM_TIMEOUT_MS = 60_000;

/** The CREATE TABLE statement of a record type's table, with the list position of each row's file. */
export function postgresTableSql(type: RecordType): string {
  // One DDL for both stores: SQLite's, translated as the migrations are.
  return postgresSql(tableSql(type));
}

/**
 * A run in progress as `status` words it, from its session's name
 * (`bucketload run N since T`, or `bucketload run since T` before its id is
 * drawn): `T (run N, backend pid P)`, the shape of SQLite's lock note
 * (`T (pid P)`), which `status` prints after "since".
 */
function sessionHolder(name: string, pid: number): string {
  const m = /^bucketload run (?:(\d+) )?since (\S+)$/.exec(name);
  if (m === null) return `${name.replace(/^bucketload /, "")} (backend pid ${pid})`;
  return `${m[2]} (${m[1] === undefined ? "" : `run ${m[1]}, `}backend pid ${pid})`;
}

/** How long a run whose connection was lost during COMMIT asks the server whether it committed. */
const COMMIT_CHECK_MS = 10_000;

/** A PostgreSQL database holding the data tables and the bookkeeping, shared by any number of runs. */
export class PostgresStore implements Store {
  readonly display: string;
  readonly holdsNul = false;
  readonly #sql: Sql;
  readonly #c: SqlClient;
  readonly #types: readonly RecordType[];
  readonly #claimTimeoutMs: number;
  readonly #retention: Retention;

  private constructor(
    sql: Sql,
    display: string,
    types: readonly RecordType[],
    claimTimeoutMs: number,
    retention: Retention,
  ) {
    this.#sql = sql;
    this.#c = postgresClient(sql);
    this.display = display;
    this.#types = types;
    this.#claimTimeoutMs = claimTimeoutMs;
    this.#retention = retention;
  }

  /**
   * Connects to the database at `url` (a `postgres://` URL; missing parts come
   * from the `PG*` variables, as libpq's do).
   *
   * @throws {UsageError} when the server cannot be reached or refuses the login
   */
  static async open(url: string, options: PostgresStoreOptions): Promise<PostgresStore> {
    const sql = await connect(url, options.connectTimeoutSeconds ?? 10);
    const timeout = options.claimTimeoutMs ?? DEFAULT_CLAIM_TIMEOUT_MS;
    return new PostgresStore(sql, redactUrl(url), options.types, timeout, {
      driftKeepRuns: options.driftKeepRuns ?? 0,
    });
  }

  /** Brings the schema to this build's version, in its own transaction under the migration lock. */
  async #migrate(now: Date, reload = false): Promise<string[]> {
    return await this.#sql.begin(async (t) => {
      await t`SELECT pg_advisory_xact_lock(${MIGRATE_LOCK.toString()}::bigint)`;
      await t`SET LOCAL client_min_messages = warning`;
      await t.unsafe(
        `CREATE TABLE IF NOT EXISTS schema_version (
           version BIGINT PRIMARY KEY, applied_at TEXT NOT NULL, description TEXT NOT NULL)`,
      );
      const { v } = (await t<{ v: number | null }[]>`SELECT max(version) AS v FROM schema_version`)[0]!;
      const from = v ?? 0;
      if (from > SCHEMA_VERSION) {
        throw new UsageError(
          `Database schema version ${from} is newer than this bucketload's (${SCHEMA_VERSION}): upgrade bucketload`,
          { subject: "DATABASE_URL" },
        );
      }
      const changes: string[] = [];
      for (const m of MIGRATIONS) {
        if (m.version <= from) continue;
        await t.unsafe(postgresMigrationSql(m)).simple();
        await t`INSERT INTO schema_version VALUES (${m.version}, ${now.toISOString()}, ${m.description})`;
        changes.push(`schema ${m.version}: ${m.description}`);
      }
      const exists = async (table: string) =>
        (await t`SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = ${table}`)
          .length > 0;
      const recorded = async () =>
        (await t<{ value: string }[]>`SELECT value FROM meta WHERE name = ${DATA_TABLES_META}`)[0]?.value;
      // A data table dropped by hand would be made anew, empty, below: refused unless every file is loaded again.
      if (!reload && await exists("meta")) {
        const missing = await missingDataTables(await recorded(), exists);
        if (missing.length > 0) throw droppedDataTables(missing, "DATABASE_URL");
      }
      const metaValue = async (name: string) =>
        (await t<{ value: string }[]>`SELECT value FROM meta WHERE name = ${name}`)[0]?.value;
      const recordedColumns = await metaValue(DATA_COLUMNS_META);
      const added: Record<string, string[]> = {};
      for (const type of this.#types) {
        const existed = await exists(type.table);
        await t.unsafe(postgresTableSql(type));
        // Made anew (a table dropped by hand, reloaded with --force): a row count kept for the old one is not its own.
        if (!existed && await exists("table_rows")) await t`DELETE FROM table_rows WHERE name = ${type.table}`;
        const columns = await t<{ name: string }[]>`SELECT column_name AS name FROM information_schema.columns
          WHERE table_schema = current_schema() AND table_name = ${type.table}`;
        const have = new Set(columns.map((c) => c.name));
        const missing = type.columns.filter((c) => !have.has(c.name)).map((c) => c.name);
        // A recorded column that is gone was dropped by hand (its values cannot be given back); one never recorded is
        // a field the type gained: added, NULL in the existing rows (no NOT NULL: they have no value), filled from
        // `extra` by the run (kit/rederive.ts).
        const { lost, added: gained } = splitMissing(recordedColumns, type.table, missing);
        if (lost.length > 0) throw lostColumns(type.table, lost);
        for (const name of gained) {
          const column = type.columns.find((c) => c.name === name)!;
          await t.unsafe(`ALTER TABLE ${quote(type.table)} ADD COLUMN ${quote(name)} ${postgresSql(column.sqlType)}`);
          changes.push(`${type.table}: added column ${name} (NULL in existing rows, filled from extra)`);
        }
        if (gained.length > 0) added[type.table] = gained;
        // A table from before `extra` was kept gets it, NULL in its rows (nothing was kept then). Only then: an ALTER
        // takes the table's exclusive lock, which a run side by side would wait for.
        if (!have.has(EXTRA_COLUMN)) {
          await t.unsafe(`ALTER TABLE ${quote(type.table)} ADD COLUMN ${quote(EXTRA_COLUMN)} TEXT`);
          changes.push(`${type.table}: added column ${EXTRA_COLUMN} (NULL in existing rows)`);
        }
      }
      const tables = dataTablesValue(this.#types.map((type) => type.table));
      if ((await recorded()) !== tables) {
        await t`INSERT INTO meta (name, value) VALUES (${DATA_TABLES_META}, ${tables})
          ON CONFLICT (name) DO UPDATE SET value = excluded.value`;
      }
      const columnsValue = dataColumnsValue(this.#types);
      if (recordedColumns !== columnsValue) {
        await t`INSERT INTO meta (name, value) VALUES (${DATA_COLUMNS_META}, ${columnsValue})
          ON CONFLICT (name) DO UPDATE SET value = excluded.value`;
      }
      if (Object.keys(added).length > 0) {
        const fills = withFills(await metaValue(FILL_META), added);
        await t`INSERT INTO meta (name, value) VALUES (${FILL_META}, ${fills})
          ON CONFLICT (name) DO UPDATE SET value = excluded.value`;
      }
      return from === 0 ? [] : changes;
    });
  }

  async begin(startedAt: Date, options: BeginOptions): Promise<RunTransaction> {
    let changes: string[];
    try {
      changes = await this.#migrate(startedAt, options.reload);
    } catch (error) {
      if (error instanceof UsageError) throw error;
      throw connectError(this.display, error);
    }
    if (changes.length > 0) {
      logger.info("Migrated {database}: {changes}", { database: this.display, changes: changes.join("; ") });
    }
    // A bookkeeping table dropped by hand: one line and exit 2 now, not a failure after every file was fetched.
    await checkBookkeeping(this.#c, "DATABASE_URL", MIGRATIONS);
    const conn = await this.#sql.reserve();
    try {
      await conn`BEGIN`;
      const c = postgresClient(conn);
      const book = options.idAtCommit
        ? RunBook.later(c, startedAt, options.bucket, this.#retention)
        : await RunBook.start(c, startedAt, options.bucket, this.#retention);
      // Other sessions see the run in pg_stat_activity (status reports it); a run without an id yet goes unnumbered.
      const name = `bucketload run ${book.hasId ? `${book.runId} ` : ""}since ${startedAt.toISOString()}`;
      await conn`SELECT set_config('application_name', ${name}, false)`;
      const previous = await readMeta(c, "bucket");
      if (previous !== undefined && previous !== options.bucket) options.onBucketChange?.(previous, options.bucket);
      const [session] = await conn<{ pid: number }[]>`SELECT pg_backend_pid() AS pid`;
      const run = new PostgresRun(conn, book, this.#types, {
        bucket: options.bucket,
        previousBucket: previous,
        startedAt,
        signal: options.signal,
        pid: Number(session!.pid),
        committed: (runId, session) => this.#committed(runId, session),
        recount: options.reload === true,
      });
      await run.prepare(this.#claimTimeoutMs);
      return run;
    } catch (error) {
      await conn`ROLLBACK`.catch(() => {});
      conn.release();
      throw error;
    }
  }

  /**
   * Whether run `runId` committed, asked on a connection of its own after the
   * run's connection was lost during COMMIT: its session `pid` is ended first
   * (a session waiting for a synchronous standby commits locally when ended,
   * one that had not committed rolls back), then the run's row, which only a
   * commit makes visible, is looked for. `undefined` when the server cannot be
   * asked within {@linkcode COMMIT_CHECK_MS}.
   */
  async #committed(runId: number, pid: number): Promise<boolean | undefined> {
    const deadline = Date.now() + COMMIT_CHECK_MS;
    while (Date.now() < deadline) {
      try {
        const ask = async () => {
          const [alive] = await this.#sql<{ n: number }[]>`
            SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = ${pid}`;
          if (alive!.n > 0) {
            await this.#sql`SELECT pg_terminate_backend(${pid})`;
            return undefined;
          }
          const rows = await this.#sql`SELECT 1 FROM runs WHERE id = ${runId}`;
          logger.warn(
            "The connection was lost during the COMMIT of run {run_id}; asked again, the server says it {outcome}",
            { run_id: runId, outcome: rows.length > 0 ? "committed" : "did not commit" },
          );
          return rows.length > 0;
        };
        const timeout = new Promise<"timeout">((resolve) => setTimeout(() => resolve("timeout"), 2000));
        const answer = await Promise.race([ask(), timeout]);
        if (typeof answer === "boolean") return answer;
      } catch { /* the server is not back yet */ }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    return undefined;
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
    // One statement: its own transaction.
    await writeMeta(this.#c, { [name]: value });
  }

  /** The original was SQLite only: there is nothing of it to take over here. */
  takesOver(): Promise<boolean> {
    return Promise.resolve(false);
  }

  async peekRegistered(keys: readonly string[], statuses?: readonly FileStatus[]): Promise<ReadonlySet<string>> {
    return await hasTable(this.#c, "processed_files") ? await registeredAmong(this.#c, keys, statuses) : new Set();
  }

  async peekEntries(): Promise<ReadonlyMap<string, RegistryEntry>> {
    return await hasTable(this.#c, "processed_files") ? await registryEntries(this.#c) : new Map();
  }

  async status(): Promise<StatusReport> {
    const running = await this.#sql<{ name: string; pid: number }[]>`
      SELECT application_name AS name, pid FROM pg_stat_activity
      WHERE datname = current_database() AND application_name LIKE 'bucketload run %' ORDER BY backend_start`;
    return await statusReport(this.#c, {
      display: this.display,
      types: this.#types,
      holder: {
        running: running.length === 0 ? null : running.map((r) => sessionHolder(r.name, r.pid)).join("; "),
        staleLock: null,
      },
    });
  }

  async close(): Promise<void> {
    await this.#sql.end({ timeout: 2 });
  }
}
