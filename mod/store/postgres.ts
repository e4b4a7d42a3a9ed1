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
import { connect as netConnect, type Socket } from "node:net";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { getLogger } from "@logtape/logtape";
import postgres from "postgres";
import { ConnectionLostError, UsageError } from "../errors.ts";
import type { RecordType } from "../records/mod.ts";
import type { Validators } from "../source/source.ts";
import { redactUrl } from "../source/location.ts";
import type { StatusReport } from "./status.ts";
import { type SqlReader, statusReport } from "./kit/status_query.ts";
import { lostColumns, MIGRATIONS, postgresSql, SCHEMA_VERSION, tableSql } from "./migrations.ts";
import type {
  BeginOptions,
  Claim,
  FilePart,
  FileStatus,
  FileWrite,
  Fingerprint,
  ImportOutcome,
  ListedFingerprint,
  PartOptions,
  PlannedKey,
  RegistryEntry,
  RowCounts,
  RunCounts,
  RunTransaction,
  Store,
} from "./store.ts";
import { giveUpReason, quote } from "./kit/sql.ts";

const logger = getLogger(["bucketload", "store"]);

type Sql = postgres.Sql<Record<string, never>>;
type Reserved = postgres.ReservedSql<Record<string, never>>;

/** Advisory lock ids (a namespace of this program's own): schema migrations, and the commit section. */
const MIGRATE_LOCK = 0x6275636b_6c6f6164n; // "buckload" in ASCII
const COMMIT_LOCK = MIGRATE_LOCK + 1n;

/** Buffered COPY text sent once it reaches this many characters (4 Mi measured 211 MB peak RSS, 256 Ki 175 MB, same speed). */
const COPY_BUFFER_CHARS = 256 * 1024;

/** How long a stopped run waits for its ROLLBACK before it lets the connection go. */
const STOP_ROLLBACK_MS = 3000;

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
}

/** `CLAIM_TIMEOUT_SECONDS`' default: a minute. */
export const DEFAULT_CLAIM_TIMEOUT_MS = 60_000;

/** The SQL type of a record column in PostgreSQL. */
const pgType = (sqlType: string) => sqlType === "INTEGER" ? "BIGINT" : sqlType === "REAL" ? "DOUBLE PRECISION" : "TEXT";

/** The CREATE TABLE statement of a record type's table, with the list position of each row's file. */
export function postgresTableSql(type: RecordType): string {
  // One DDL for both stores: SQLite's, translated as the migrations are.
  return postgresSql(tableSql(type));
}

/** A value as COPY's text format writes it. */
function copyCell(value: string | number): string {
  if (typeof value === "number") return String(value);
  return value.replace(/[\\\t\n\r]/g, (c) => c === "\\" ? "\\\\" : c === "\t" ? "\\t" : c === "\n" ? "\\n" : "\\r");
}

/**
 * Connections this process lost to the server's side: a socket it closed
 * (the server stopped or restarted, the backend was terminated), or
 * postgres.js 3.4.9 writing to a socket it has just dropped (an uncaught
 * TypeError in a timer, which would otherwise end the process with a stack
 * trace). A run that hears of one stops at once: see {@linkcode PostgresRun}.
 */
const drops = new EventTarget();

globalThis.addEventListener("error", (event) => {
  const stack = event.error instanceof Error ? event.error.stack ?? "" : "";
  if (!/postgres[\\/]src[\\/]connection\.js/.test(stack)) return;
  event.preventDefault();
  drops.dispatchEvent(new CustomEvent("drop", { detail: "the client wrote to a closed connection" }));
});

/** Error codes that mean the connection is gone (server shutdown, terminated backend, broken socket). */
const LOST_CODES = new Set([
  "57P01",
  "57P02",
  "57P03",
  "08000",
  "08003",
  "08006",
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "ECONNRESET",
  "EPIPE",
  "ECONNREFUSED",
]);

/** What a connection-loss error says, or `undefined` for any other error. */
function lostConnection(error: unknown): string | undefined {
  const e = error as { code?: string; message?: string };
  if (e?.code !== undefined && LOST_CODES.has(e.code)) return e.message ?? e.code;
  if (/reading 'write'|Connection closed|connection terminated|socket hang up/i.test(e?.message ?? "")) {
    return e.message;
  }
  return undefined;
}

/**
 * A connected TCP socket without Nagle's algorithm: the client's small
 * messages (COPY data, then CopyDone) otherwise wait ~40 ms each for the
 * server's delayed ACK (measured: 270 ms per file, 3,500 records/s). A close
 * that the client did not ask for is told to runs in progress.
 */
function noDelaySocket(options: { host: string[]; port: number[]; path: string | false }): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = options.path ? netConnect(options.path) : netConnect(options.port[0]!, options.host[0]!);
    socket.setNoDelay(true);
    let clientEnded = false;
    const end = socket.end.bind(socket);
    socket.end = ((...args: Parameters<Socket["end"]>) => {
      clientEnded = true;
      return end(...args);
    }) as Socket["end"];
    // Registered before postgres.js's own listeners, which it removes when the socket closes.
    socket.once("close", () => {
      if (!clientEnded) drops.dispatchEvent(new CustomEvent("drop", { detail: "the server closed it" }));
    });
    socket.once("connect", () => {
      socket.off("error", reject);
      resolve(socket);
    });
    socket.once("error", reject);
  });
}

/** The connection errors worth one clear line: no server, wrong password, no database. */
function connectError(display: string, error: unknown): UsageError {
  const e = error as { code?: string; message?: string };
  const cause = e.code === "ECONNREFUSED"
    ? "connection refused (is PostgreSQL running there?)"
    : e.message ?? String(error);
  return new UsageError(`Cannot connect to PostgreSQL ${display}: ${cause}`, { subject: "DATABASE_URL", cause: error });
}

/** A PostgreSQL database holding the data tables and the bookkeeping, shared by any number of runs. */
export class PostgresStore implements Store {
  readonly display: string;
  readonly holdsNul = false;
  readonly #sql: Sql;
  readonly #types: readonly RecordType[];
  readonly #claimTimeoutMs: number;

  private constructor(sql: Sql, display: string, types: readonly RecordType[], claimTimeoutMs: number) {
    this.#sql = sql;
    this.display = display;
    this.#types = types;
    this.#claimTimeoutMs = claimTimeoutMs;
  }

  /**
   * Connects to the database at `url` (a `postgres://` URL; missing parts come
   * from the `PG*` variables, as libpq's do).
   *
   * @throws {UsageError} when the server cannot be reached or refuses the login
   */
  static async open(url: string, options: PostgresStoreOptions): Promise<PostgresStore> {
    const display = redactUrl(url);
    const sql = postgres(url, {
      max: 4,
      onnotice: () => {},
      // A run's connection must live as long as the run.
      max_lifetime: null,
      idle_timeout: 30,
      connect_timeout: options.connectTimeoutSeconds ?? 10,
      connection: { application_name: "bucketload" },
      // Not in the package's types, but documented and used as given.
      ...({ socket: noDelaySocket } as unknown as Record<string, never>),
      types: {
        // BIGINT columns and counts as numbers (they stay below 2^53 here).
        int8: { to: 20, from: [20], serialize: (v: number) => String(v), parse: (v: string) => Number(v) },
      },
    }) as unknown as Sql;
    try {
      await sql`SELECT 1`;
    } catch (error) {
      await sql.end({ timeout: 1 }).catch(() => {});
      throw connectError(display, error);
    }
    return new PostgresStore(sql, display, options.types, options.claimTimeoutMs ?? DEFAULT_CLAIM_TIMEOUT_MS);
  }

  /** Brings the schema to this build's version, in its own transaction under the migration lock. */
  async #migrate(now: Date): Promise<string[]> {
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
        await t.unsafe(postgresSql(m.sql)).simple();
        await t`INSERT INTO schema_version VALUES (${m.version}, ${now.toISOString()}, ${m.description})`;
        changes.push(`schema ${m.version}: ${m.description}`);
      }
      for (const type of this.#types) {
        await t.unsafe(postgresTableSql(type));
        const columns = await t<{ name: string }[]>`SELECT column_name AS name FROM information_schema.columns
          WHERE table_schema = current_schema() AND table_name = ${type.table}`;
        const have = new Set(columns.map((c) => c.name));
        const lost = type.columns.filter((c) => !have.has(c.name)).map((c) => c.name);
        if (lost.length > 0) throw lostColumns(type.table, lost);
      }
      return from === 0 ? [] : changes;
    });
  }

  async begin(startedAt: Date, options: BeginOptions): Promise<RunTransaction> {
    let changes: string[];
    try {
      changes = await this.#migrate(startedAt);
    } catch (error) {
      if (error instanceof UsageError) throw error;
      throw connectError(this.display, error);
    }
    if (changes.length > 0) {
      logger.info("Migrated {database}: {changes}", { database: this.display, changes: changes.join("; ") });
    }
    const conn = await this.#sql.reserve();
    try {
      await conn`BEGIN`;
      const { id } = (await conn<{ id: number }[]>`
        INSERT INTO runs (started_at, status, bucket) VALUES (${startedAt.toISOString()}, 'running', ${options.bucket})
        RETURNING id`)[0]!;
      // Other sessions see the run in pg_stat_activity (status reports it).
      await conn`SELECT set_config('application_name', ${`bucketload run ${id} since ${startedAt.toISOString()}`}, false)`;
      const previous = await readMeta(conn, "bucket");
      if (previous !== undefined && previous !== options.bucket) options.onBucketChange?.(previous, options.bucket);
      const run = new PostgresRun(conn, id, this.#types, {
        bucket: options.bucket,
        previousBucket: previous,
        startedAt,
        signal: options.signal,
      });
      await run.createStages();
      await run.bound(this.#claimTimeoutMs);
      return run;
    } catch (error) {
      await conn`ROLLBACK`.catch(() => {});
      conn.release();
      throw error;
    }
  }

  async #hasTable(name: string): Promise<boolean> {
    const [row] = await this.#sql<{ t: string | null }[]>`SELECT to_regclass(${name})::text AS t`;
    return row?.t != null;
  }

  async registeredKeys(): Promise<string[]> {
    if (!(await this.#hasTable("processed_files"))) return [];
    const rows = await this.#sql<{ key: string }[]>`SELECT key FROM processed_files ORDER BY run_id, key`;
    return rows.map((r) => r.key);
  }

  /** The original was SQLite only: there is nothing of it to take over here. */
  takesOver(): Promise<boolean> {
    return Promise.resolve(false);
  }

  async peekRegistered(keys: readonly string[], statuses?: readonly FileStatus[]): Promise<ReadonlySet<string>> {
    if (!(await this.#hasTable("processed_files"))) return new Set();
    return await registeredAmong(this.#sql, keys, statuses);
  }

  async peekEntries(): Promise<ReadonlyMap<string, RegistryEntry>> {
    if (!(await this.#hasTable("processed_files"))) return new Map();
    const rows = await this.#sql<
      { key: string; status: FileStatus; etag: string | null; size: number | null; deleted: boolean }[]
    >`SELECT key, status, etag, size, deleted_at IS NOT NULL AS deleted FROM processed_files`;
    return new Map(rows.map((r) => [r.key, {
      status: r.status,
      fingerprint: r.etag === null ? null : { etag: r.etag, size: r.size ?? 0 },
      deleted: r.deleted,
    }]));
  }

  async status(): Promise<StatusReport> {
    const sql = this.#sql;
    const running = await sql<{ name: string; pid: number }[]>`
      SELECT application_name AS name, pid FROM pg_stat_activity
      WHERE datname = current_database() AND application_name LIKE 'bucketload run %' ORDER BY backend_start`;
    const reader: SqlReader = {
      all: async <T>(query: string) => (await sql.unsafe(query)).map((r) => ({ ...r }) as T),
      hasTable: (name) => this.#hasTable(name),
      hasColumn: async (table, column) =>
        (await sql`SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema()
          AND table_name = ${table} AND column_name = ${column}`).length > 0,
    };
    return await statusReport(reader, { position: (text, needle) => `strpos(${text}, ${needle})` }, {
      display: this.display,
      types: this.#types,
      holder: {
        running: running.length === 0
          ? null
          : running.map((r) => `${r.name.replace(/^bucketload /, "")} (backend pid ${r.pid})`).join("; "),
        staleLock: null,
      },
    });
  }

  async close(): Promise<void> {
    await this.#sql.end({ timeout: 2 });
  }
}

async function readMeta(sql: Sql | Reserved, name: string): Promise<string | undefined> {
  const [row] = await sql<{ value: string }[]>`
    SELECT value FROM meta WHERE name = ${name}`.catch(() => [] as { value: string }[]);
  return row?.value;
}

async function writeMeta(sql: Sql | Reserved, values: Readonly<Record<string, string>>) {
  for (const [name, value] of Object.entries(values)) {
    await sql`INSERT INTO meta (name, value) VALUES (${name}, ${value})
              ON CONFLICT (name) DO UPDATE SET value = excluded.value`;
  }
}

/** The `keys` registered with one of `statuses`: those {@linkcode unregisteredAmong} leaves out. */
async function registeredAmong(
  sql: Sql | Reserved,
  keys: readonly string[],
  statuses?: readonly FileStatus[],
): Promise<Set<string>> {
  const unregistered = new Set(await unregisteredAmong(sql, keys, statuses));
  return new Set(keys.filter((k) => !unregistered.has(k)));
}

/** The `keys` not registered with one of `statuses`, in their order. */
async function unregisteredAmong(
  sql: Sql | Reserved,
  keys: readonly string[],
  statuses: readonly FileStatus[] = ["loaded", "invalid"],
): Promise<string[]> {
  if (keys.length === 0) return [];
  const rows = await sql<{ key: string }[]>`
    SELECT k AS key FROM unnest(${keys as string[]}::text[]) WITH ORDINALITY AS u(k, i)
    WHERE NOT EXISTS (SELECT 1 FROM processed_files AS p
      WHERE p.key = u.k AND p.status = ANY(${statuses as string[]}::text[]))
    ORDER BY i`;
  return rows.map((r) => r.key);
}

/** A run's transaction on its own connection. */
class PostgresRun implements RunTransaction {
  readonly runId: number;
  /** Runs side by side share the database (they claim keys): a run never waits for another's lock to start. */
  readonly lockWaitMs = 0;
  readonly #conn: Reserved;
  readonly #types: ReadonlyMap<string, RecordType>;
  readonly #bucket: string;
  readonly #previousBucket: string | undefined;
  readonly #startedAt: Date;
  /** List positions of the files this run wrote (given with each write). */
  readonly #positions = new Map<string, number>();
  /** Keys whose file this run wrote (their missing streak ends). */
  readonly #written = new Set<string>();
  /** Objects whose earlier rows go at the merge: changed ones, and deleted ones with PRUNE_DELETED. */
  readonly #replaced = new Set<string>();
  /** The list to cache at commit. */
  #listToCache: { key: string; text: string; validators: Validators } | undefined;
  /** COPY text not yet sent, by record type (sent in large batches: one COPY per file cost a round trip each). */
  readonly #buffered = new Map<RecordType, string[]>();
  #bufferedChars = 0;
  /** Rows copied into the stages (rows of aborted streamed parts taken out again). */
  #staged = 0;
  #merged: RowCounts | undefined;
  #inCommitSection = false;
  #streaming: { key: string; records: number; rejected: number; ignored: number; staged: number } | undefined;
  #open = true;
  /** The connection's work, one call at a time: claims come from the fetch side while the writer copies rows. */
  #queue: Promise<unknown> = Promise.resolve();

  /**
   * Rejects when the run cannot go on: its connection was lost, or the run was
   * stopped (SIGTERM must work even while the server does not answer).
   */
  readonly #gone = Promise.withResolvers<never>();
  /** Why the run cannot go on, once it cannot. */
  #goneReason: Error | undefined;
  readonly #stopListening: () => void;

  #fail(reason: Error) {
    if (this.#goneReason !== undefined) return;
    this.#goneReason = reason;
    this.#gone.reject(reason);
  }

  /** One call at a time on the run's connection, given up at once when the run cannot go on. */
  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => {});
    const checked = run.catch((error) => {
      const lost = lostConnection(error);
      if (lost === undefined) throw error;
      const reason = new ConnectionLostError(lost, { cause: error });
      this.#fail(reason);
      throw reason;
    });
    return Promise.race([checked, this.#gone.promise]);
  }

  constructor(
    conn: Reserved,
    runId: number,
    types: readonly RecordType[],
    options: { bucket: string; previousBucket: string | undefined; startedAt: Date; signal?: AbortSignal | undefined },
  ) {
    this.#gone.promise.catch(() => {});
    const onDrop = (event: Event) => this.#fail(new ConnectionLostError((event as CustomEvent<string>).detail));
    const onAbort = () =>
      this.#fail(options.signal!.reason instanceof Error ? options.signal!.reason : new Error("stopped"));
    drops.addEventListener("drop", onDrop);
    options.signal?.addEventListener("abort", onAbort);
    this.#stopListening = () => {
      drops.removeEventListener("drop", onDrop);
      options.signal?.removeEventListener("abort", onAbort);
    };
    this.#conn = conn;
    this.runId = runId;
    this.#types = new Map(types.map((t) => [t.type, t]));
    this.#bucket = options.bucket;
    this.#previousBucket = options.previousBucket;
    this.#startedAt = options.startedAt;
  }

  #heartbeat: ReturnType<typeof setInterval> | undefined;

  /**
   * Bounds how long this run's claims outlive it: a run that falls silent
   * (frozen, stopped, its machine gone) for `timeoutMs` is ended by the server
   * (`idle_in_transaction_session_timeout`), which releases its claims to
   * other runs. While it waits on the network it sends `SELECT 1` every third
   * of that, so that a live run is never ended.
   */
  async bound(timeoutMs: number) {
    if (timeoutMs <= 0) return;
    await this.#conn.unsafe(`SET LOCAL idle_in_transaction_session_timeout = ${Math.round(timeoutMs)}`);
    this.#heartbeat = setInterval(() => {
      if (this.#open && this.#goneReason === undefined) void this.#serial(() => this.#conn`SELECT 1`).catch(() => {});
    }, Math.max(100, Math.round(timeoutMs / 3)));
    Deno.unrefTimer(this.#heartbeat);
  }

  /** Creates the run's temp stage tables (dropped at commit or rollback). */
  async createStages() {
    for (const type of this.#types.values()) {
      const cols = type.columns.map((c) => `${quote(c.name)} ${pgType(c.sqlType)}`);
      await this.#conn.unsafe(
        `CREATE TEMP TABLE ${quote(`stage_${type.table}`)} (${cols.join(", ")}, source_key TEXT, source_pos BIGINT,
           seq BIGINT GENERATED ALWAYS AS IDENTITY) ON COMMIT DROP`,
      );
    }
  }

  async #registered(keys: readonly string[], statuses?: readonly FileStatus[]): Promise<ReadonlySet<string>> {
    return await registeredAmong(this.#conn, keys, statuses);
  }

  async #claim(claims: readonly Claim[], skipRegistered: readonly FileStatus[] | undefined): Promise<string[]> {
    if (claims.length === 0) return [];
    const keys = claims.map((c) => c.key);
    // One lock per key, held until this transaction ends; a key another run holds is skipped.
    const locked = await this.#conn<{ key: string }[]>`
      SELECT k AS key FROM unnest(${keys}::text[]) WITH ORDINALITY AS u(k, i)
      WHERE pg_try_advisory_xact_lock(hashtextextended('bucketload:' || k, 0)) ORDER BY i`;
    let mine = locked.map((r) => r.key);
    if (skipRegistered !== undefined) {
      // Checked again now that the lock is held: a run that loaded the key (this version of it) has committed by now.
      const wanted = new Map(claims.map((c) => [c.key, c.fingerprint]));
      const entries = await this.#entries(mine);
      mine = mine.filter((k) => {
        const entry = entries.get(k);
        if (entry === undefined || entry.deleted || !skipRegistered.includes(entry.status)) return true;
        const want = wanted.get(k);
        return want !== undefined && entry.fingerprint !== null &&
          (entry.fingerprint.etag !== want.etag || entry.fingerprint.size !== want.size);
      });
    }
    return mine;
  }

  async #entries(keys: readonly string[]): Promise<ReadonlyMap<string, RegistryEntry>> {
    if (keys.length === 0) return new Map();
    const rows = await this.#conn<
      { key: string; status: FileStatus; etag: string | null; size: number | null; deleted: boolean }[]
    >`SELECT key, status, etag, size, deleted_at IS NOT NULL AS deleted FROM processed_files
      WHERE key = ANY(${keys as string[]}::text[])`;
    return new Map(rows.map((r) => [r.key, {
      status: r.status,
      fingerprint: r.etag === null ? null : { etag: r.etag, size: r.size ?? 0 },
      deleted: r.deleted,
    }]));
  }

  #listedReady = false;

  async #addListed(objects: readonly ListedFingerprint[], firstPosition: number): Promise<void> {
    if (!this.#listedReady) {
      await this.#conn.unsafe(`CREATE TEMP TABLE listed (
        position BIGINT PRIMARY KEY, key TEXT NOT NULL UNIQUE, etag TEXT NOT NULL, size BIGINT NOT NULL) ON COMMIT DROP`);
      this.#listedReady = true;
    }
    if (objects.length === 0) return;
    await this.#conn`
      INSERT INTO listed (position, key, etag, size)
      SELECT ${firstPosition}::bigint + ord - 1, key, etag, size
      FROM unnest(${objects.map((o) => o.key)}::text[], ${objects.map((o) => o.etag)}::text[],
        ${objects.map((o) => o.size)}::bigint[]) WITH ORDINALITY AS l(key, etag, size, ord)`;
  }

  async #listedPlan(options: { all: boolean; loadedOnly: boolean; detect: boolean }): Promise<PlannedKey[]> {
    if (!this.#listedReady) return [];
    return await this.#conn<PlannedKey[]>`
      SELECT key, position, etag, size, changed FROM (
        SELECT l.key, l.position, l.etag, l.size,
          (p.key IS NOT NULL AND (p.deleted_at IS NOT NULL
            OR (${options.detect} AND p.etag IS NOT NULL AND (p.etag <> l.etag OR p.size <> l.size)))) AS changed,
          (p.key IS NULL OR (${options.loadedOnly} AND p.status <> 'loaded')) AS fresh
        FROM listed AS l LEFT JOIN processed_files AS p ON p.key = l.key) AS plan
      WHERE ${options.all} OR fresh OR changed
      ORDER BY position`;
  }

  async #unlisted(): Promise<string[]> {
    if (!this.#listedReady) return [];
    const rows = await this.#conn<{ key: string }[]>`
      SELECT key FROM processed_files AS p WHERE deleted_at IS NULL
        AND NOT EXISTS (SELECT 1 FROM listed AS l WHERE l.key = p.key) ORDER BY key`;
    return rows.map((r) => r.key);
  }

  async #markDeleted(keys: readonly string[], at: Date, prune: boolean): Promise<string[]> {
    if (keys.length === 0) return [];
    // Registry rows other runs may touch: in the commit section.
    await this.#enterCommitSection();
    const rows = await this.#conn<{ key: string }[]>`
      UPDATE processed_files SET deleted_at = ${at.toISOString()}, run_id = ${this.runId}
      WHERE key = ANY(${keys as string[]}::text[]) AND deleted_at IS NULL RETURNING key`;
    const marked = rows.map((r) => r.key).sort();
    if (prune) { for (const key of marked) this.#replaced.add(key); }
    return marked;
  }

  async #cachedList(key: string): Promise<{ text: string; validators: Validators } | undefined> {
    const [row] = await this.#conn<{ etag: string | null; last_modified: string | null; body: string }[]>`
      SELECT etag, last_modified, body FROM list_cache WHERE bucket = ${this.#bucket} AND key = ${key}`;
    if (row === undefined || (row.etag === null && row.last_modified === null)) return undefined;
    return {
      text: row.body,
      validators: { etag: row.etag ?? undefined, lastModified: row.last_modified ?? undefined },
    };
  }

  cacheList(key: string, text: string, validators: Validators): Promise<void> {
    this.#listToCache = { key, text, validators };
    return Promise.resolve();
  }

  /** The original was SQLite only: a PostgreSQL database never holds its rows, so nothing is imported. */
  async #importKeys(): Promise<ImportOutcome> {
    const [row] = await this.#conn<{ any: boolean }[]>`SELECT EXISTS (SELECT 1 FROM processed_files) AS any`;
    return { imported: 0, skipped: row?.any ? "registry" : "no-rows" };
  }

  /** Takes the commit lock once: from here to the commit, shared rows are written. */
  async #enterCommitSection() {
    if (this.#inCommitSection) return;
    await this.#conn`SELECT pg_advisory_xact_lock(${COMMIT_LOCK.toString()}::bigint)`;
    this.#inCommitSection = true;
  }

  async #noteMissing(
    keys: readonly { key: string; reason: string }[],
    giveUpRuns: number,
    at: Date,
  ): Promise<string[]> {
    await this.#enterCommitSection();
    const conn = this.#conn;
    // Only keys this run tried end their streak: other runs may be fetching the rest right now.
    await conn`DELETE FROM missing_keys WHERE key = ANY(${[...this.#written]}::text[])
               OR key IN (SELECT key FROM processed_files)`;
    const gaveUp: string[] = [];
    for (const { key, reason } of keys) {
      const { runs } = (await conn<{ runs: number }[]>`
        INSERT INTO missing_keys (key, runs, last_reason) VALUES (${key}, 1, ${reason})
        ON CONFLICT (key) DO UPDATE SET runs = missing_keys.runs + 1, last_reason = excluded.last_reason
        RETURNING runs`)[0]!;
      if (giveUpRuns > 0 && runs >= giveUpRuns) {
        gaveUp.push(key);
        const why = giveUpReason(giveUpRuns, reason);
        await conn`DELETE FROM rejected_records WHERE key = ${key}`;
        await conn`INSERT INTO rejected_records (run_id, key, record_index, type, reason, raw)
                   VALUES (${this.runId}, ${key}, NULL, NULL, ${why}, NULL)`;
        await this.#register(key, "invalid", at, 0, 1, 0, 0);
        await conn`DELETE FROM missing_keys WHERE key = ${key}`;
      }
    }
    return gaveUp;
  }

  async #register(
    key: string,
    status: FileStatus,
    at: Date,
    records: number,
    rejected: number,
    ignored: number,
    bytes: number,
    fingerprint?: Fingerprint,
  ) {
    await this.#conn`
      INSERT INTO processed_files (key, status, run_id, processed_at, records, rejected, ignored, bytes, etag, size)
      VALUES (${key}, ${status}, ${this.runId}, ${at.toISOString()}, ${records}, ${rejected}, ${ignored}, ${bytes},
        ${fingerprint?.etag ?? null}, ${fingerprint?.size ?? null})
      ON CONFLICT (key) DO UPDATE SET status = excluded.status, run_id = excluded.run_id,
        processed_at = excluded.processed_at, records = excluded.records, rejected = excluded.rejected,
        ignored = excluded.ignored, bytes = excluded.bytes, origin = 'run',
        etag = coalesce(excluded.etag, processed_files.etag), size = coalesce(excluded.size, processed_files.size),
        deleted_at = NULL`;
  }

  /** Merges the stages into the data tables: per key the row of the latest list position (then arrival) wins. */
  async #merge(): Promise<RowCounts> {
    if (this.#merged !== undefined) return this.#merged;
    await this.#flush();
    await this.#enterCommitSection();
    await this.#conn`SET LOCAL work_mem = '64MB'`;
    let inserted = 0, removed = 0;
    if (this.#replaced.size > 0) {
      for (const type of this.#types.values()) {
        const deleted = await this.#conn.unsafe(`DELETE FROM ${quote(type.table)} WHERE source_key = ANY($1::text[])`, [
          [...this.#replaced],
        ]);
        removed += deleted.count;
      }
    }
    for (const type of this.#types.values()) {
      const names = [...type.columns.map((c) => c.name), "source_key", "source_pos"].map(quote);
      const keys = type.key.map(quote).join(", ");
      const updates = names.filter((n) => !type.key.map(quote).includes(n)).map((n) => `${n} = excluded.${n}`);
      const [row] = await this.#conn.unsafe<{ inserted: number }[]>(
        `WITH merged AS (
           INSERT INTO ${quote(type.table)} AS t (${names.join(", ")})
           SELECT DISTINCT ON (${keys}) ${names.join(", ")} FROM ${quote(`stage_${type.table}`)}
           ORDER BY ${keys}, source_pos DESC, seq DESC
           ON CONFLICT (${keys}) DO UPDATE SET ${updates.join(", ")}
           WHERE t.source_pos IS NULL OR t.source_pos <= excluded.source_pos
           RETURNING (xmax = 0) AS inserted)
         SELECT count(*) FILTER (WHERE inserted) AS inserted FROM merged`,
      );
      inserted += row?.inserted ?? 0;
    }
    this.#merged = { inserted, updated: this.#staged - inserted, removed };
    return this.#merged;
  }

  async #rowCounts(): Promise<RowCounts> {
    return await this.#merge();
  }

  async #copyRows(key: string, part: FilePart) {
    const position = this.#positions.get(key) ?? Number.MAX_SAFE_INTEGER;
    for (const [typeName, { count, cells }] of part.rows) {
      const type = this.#types.get(typeName);
      if (type === undefined) throw new TypeError(`No table for record type '${typeName}'`);
      if (count === 0) continue;
      const width = type.columns.length;
      const tail = `${copyCell(key)}\t${position}`;
      const lines: string[] = [];
      for (let r = 0; r < count; r++) {
        const row: string[] = [];
        for (let c = 0; c < width; c++) row.push(copyCell(cells[r * width + c]!));
        row.push(tail);
        lines.push(row.join("\t"));
      }
      const text = lines.join("\n") + "\n";
      let buffer = this.#buffered.get(type);
      if (buffer === undefined) this.#buffered.set(type, buffer = []);
      buffer.push(text);
      this.#bufferedChars += text.length;
      this.#staged += count;
    }
    if (this.#bufferedChars >= COPY_BUFFER_CHARS) await this.#flush();
    if (part.rejections.length > 0) {
      const rows = part.rejections.map((r) => ({
        run_id: this.runId,
        key,
        record_index: r.index,
        type: r.typeName,
        reason: r.reason,
        raw: r.raw,
      }));
      for (let i = 0; i < rows.length; i += 5000) {
        await this.#conn`INSERT INTO rejected_records ${this.#conn(rows.slice(i, i + 5000))}`;
      }
    }
  }

  /** Sends the buffered rows to the stages, one COPY per table. */
  async #flush() {
    for (const [type, texts] of this.#buffered) {
      const names = [...type.columns.map((c) => c.name), "source_key", "source_pos"].map(quote).join(", ");
      const writable = await this.#conn.unsafe(`COPY ${quote(`stage_${type.table}`)} (${names}) FROM STDIN`)
        .writable();
      await pipeline(Readable.from(texts), writable);
    }
    this.#buffered.clear();
    this.#bufferedChars = 0;
  }

  /** Rolls back to the streamed file's savepoint: rows sent since are undone, and rows still buffered dropped. */
  async #rollbackPart() {
    this.#staged = this.#streaming!.staged;
    await this.#conn`ROLLBACK TO SAVEPOINT file_part`;
    // The buffer was flushed when the savepoint was set: what it holds now came after it.
    this.#buffered.clear();
    this.#bufferedChars = 0;
  }

  async #writePart(key: string, part: FilePart, options: PartOptions = {}): Promise<void> {
    if (options.replace) this.#replaced.add(key);
    if (options.position !== undefined) this.#positions.set(key, options.position);
    if (this.#streaming?.key !== key) {
      if (this.#streaming !== undefined) throw new Error(`Parts of ${this.#streaming.key} were left open`);
      await this.#flush();
      await this.#conn`SAVEPOINT file_part`;
      await this.#conn`DELETE FROM rejected_records WHERE key = ${key}`;
      this.#streaming = { key, records: 0, rejected: 0, ignored: 0, staged: this.#staged };
    }
    await this.#copyRows(key, part);
    this.#streaming.records += part.records;
    this.#streaming.rejected += part.rejections.length;
    for (const n of part.ignored.values()) this.#streaming.ignored += n;
  }

  async #abortFile(key: string): Promise<void> {
    if (this.#streaming?.key === key) {
      // A failed object keeps its earlier rows (it is tried again next run).
      this.#replaced.delete(key);
      await this.#rollbackPart();
      await this.#conn`RELEASE SAVEPOINT file_part`;
      this.#streaming = undefined;
    }
  }

  async #writeFile(file: FileWrite): Promise<void> {
    if (file.replace) this.#replaced.add(file.key);
    if (file.position !== undefined) this.#positions.set(file.key, file.position);
    let before = { records: 0, rejected: 0, ignored: 0 };
    if (this.#streaming?.key === file.key) {
      if (file.status === "invalid") {
        await this.#rollbackPart();
        await this.#conn`DELETE FROM rejected_records WHERE key = ${file.key}`;
      } else before = this.#streaming;
    } else {
      await this.#conn`DELETE FROM rejected_records WHERE key = ${file.key}`;
    }
    await this.#copyRows(file.key, file);
    await this.#register(
      file.key,
      file.status,
      file.processedAt,
      before.records + file.records,
      before.rejected + file.rejections.length,
      before.ignored + [...file.ignored.values()].reduce((a, b) => a + b, 0),
      file.bytes,
      file.fingerprint,
    );
    if (this.#streaming?.key === file.key) {
      await this.#conn`RELEASE SAVEPOINT file_part`;
      this.#streaming = undefined;
    }
    this.#written.add(file.key);
  }

  async #commit(c: RunCounts): Promise<void> {
    await this.#merge();
    const conn = this.#conn;
    const meta: Record<string, string> = { bucket: this.#bucket };
    if (this.#previousBucket !== undefined && this.#previousBucket !== this.#bucket) {
      Object.assign(meta, { previous_bucket: this.#previousBucket, bucket_changed_at: this.#startedAt.toISOString() });
    }
    await writeMeta(conn, meta);
    if (this.#listToCache !== undefined) {
      const { key, text, validators } = this.#listToCache;
      await conn`
        INSERT INTO list_cache (bucket, key, etag, last_modified, body, run_id)
        VALUES (${this.#bucket}, ${key}, ${validators.etag ?? null}, ${validators.lastModified ?? null}, ${text},
          ${this.runId})
        ON CONFLICT (bucket, key) DO UPDATE SET etag = excluded.etag, last_modified = excluded.last_modified,
          body = excluded.body, run_id = excluded.run_id`;
    }
    const sum = (counts: Readonly<Record<string, number>>) => Object.values(counts).reduce((a, b) => a + b, 0);
    await conn`
      UPDATE runs SET finished_at = ${c.finishedAt.toISOString()}, status = ${c.status},
        files_listed = ${c.filesListed}, files_new = ${c.filesNew}, files_loaded = ${c.filesLoaded},
        files_invalid = ${c.filesInvalid}, files_missing = ${c.filesMissing}, files_failed = ${c.filesFailed},
        files_refused = ${c.filesRefused}, records_loaded = ${sum(c.loaded)},
        loaded_by_type = ${JSON.stringify(c.loaded)}, records_rejected = ${c.rejected},
        records_ignored = ${sum(c.ignored)}, ignored_by_type = ${JSON.stringify(c.ignored)},
        rows_inserted = ${c.rowsInserted}, rows_updated = ${c.rowsUpdated}, rows_removed = ${c.rowsRemoved},
        files_claimed_elsewhere = ${c.filesClaimedElsewhere},
        files_changed = ${c.filesChanged}, files_deleted = ${c.filesDeleted}
      WHERE id = ${this.runId}`;
    if (c.issues.length > 0) {
      await conn`INSERT INTO run_keys ${
        conn(c.issues.map((i) => ({ run_id: this.runId, key: i.key, outcome: i.outcome, reason: i.reason })))
      }`;
    }
    await conn`COMMIT`;
    await this.#close();
  }

  async #rollbackAsCheck(at: Date, result: string): Promise<void> {
    if (!this.#open) return;
    await this.#conn`ROLLBACK`;
    await writeMeta(this.#conn, { last_check_at: at.toISOString(), last_check_result: result });
    await this.#close();
  }

  async #rollback(): Promise<void> {
    if (!this.#open) return;
    try {
      await this.#conn`ROLLBACK`;
    } finally {
      await this.#close();
    }
  }

  /**
   * Ends the transaction without committing when the run cannot go on: a
   * lost connection's transaction died with it on the server; a stopped run's
   * ROLLBACK is given {@linkcode STOP_ROLLBACK_MS} (a frozen server may never
   * answer; the server rolls back when the connection closes).
   */
  async #abandon(): Promise<void> {
    if (!this.#open) return;
    this.#open = false;
    clearInterval(this.#heartbeat);
    this.#stopListening();
    if (!(this.#goneReason instanceof ConnectionLostError)) {
      const timeout = new Promise<void>((resolve) => setTimeout(resolve, STOP_ROLLBACK_MS));
      await Promise.race([this.#conn`ROLLBACK`.then(() => {}, () => {}), timeout]);
    }
    this.#conn.release();
  }

  async #close() {
    this.#open = false;
    clearInterval(this.#heartbeat);
    this.#stopListening();
    await this.#conn`SELECT set_config('application_name', 'bucketload', false)`.catch(() => {});
    this.#conn.release();
  }

  // The contract's methods, each one at a time on the run's connection.
  registered(keys: readonly string[], statuses?: readonly FileStatus[]): Promise<ReadonlySet<string>> {
    return this.#serial(() => this.#registered(keys, statuses));
  }
  unregistered(keys: readonly string[], statuses?: readonly FileStatus[]): Promise<string[]> {
    return this.#serial(() => unregisteredAmong(this.#conn, keys, statuses));
  }
  claim(claims: readonly Claim[], skipRegistered: readonly FileStatus[] | undefined): Promise<string[]> {
    return this.#serial(() => this.#claim(claims, skipRegistered));
  }
  cachedList(key: string): Promise<{ text: string; validators: Validators } | undefined> {
    return this.#serial(() => this.#cachedList(key));
  }
  addListed(objects: readonly ListedFingerprint[], firstPosition: number): Promise<void> {
    return this.#serial(() => this.#addListed(objects, firstPosition));
  }
  listedPlan(options: { all: boolean; loadedOnly: boolean; detect: boolean }): Promise<PlannedKey[]> {
    return this.#serial(() => this.#listedPlan(options));
  }
  unlisted(): Promise<string[]> {
    return this.#serial(() => this.#unlisted());
  }
  markDeleted(keys: readonly string[], at: Date, prune: boolean): Promise<string[]> {
    return this.#serial(() => this.#markDeleted(keys, at, prune));
  }
  importKeys(): Promise<ImportOutcome> {
    return this.#serial(() => this.#importKeys());
  }
  noteMissing(keys: readonly { key: string; reason: string }[], giveUpRuns: number, at: Date): Promise<string[]> {
    return this.#serial(() => this.#noteMissing(keys, giveUpRuns, at));
  }
  rowCounts(): Promise<RowCounts> {
    return this.#serial(() => this.#rowCounts());
  }
  writePart(key: string, part: FilePart, options?: PartOptions): Promise<void> {
    return this.#serial(() => this.#writePart(key, part, options));
  }
  abortFile(key: string): Promise<void> {
    return this.#serial(() => this.#abortFile(key));
  }
  writeFile(file: FileWrite): Promise<void> {
    return this.#serial(() => this.#writeFile(file));
  }
  commit(counts: RunCounts): Promise<void> {
    return this.#serial(() => this.#commit(counts));
  }
  rollbackAsCheck(at: Date, result: string): Promise<void> {
    return this.#serial(() => this.#rollbackAsCheck(at, result));
  }
  rollback(): Promise<void> {
    if (this.#goneReason !== undefined) return this.#abandon();
    return this.#serial(() => this.#rollback()).catch(async (error) => {
      if (this.#goneReason === undefined) throw error;
      await this.#abandon();
    });
  }
}
