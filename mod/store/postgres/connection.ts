/**
 * The PostgreSQL connection: a socket without Nagle's delay, the errors that
 * mean it is gone (told to runs in progress as they happen), one-line
 * connection errors, and the store kit's {@linkcode SqlClient} over it.
 *
 * @module
 */
import { connect as netConnect, type Socket } from "node:net";
import postgres from "postgres";
import type { ReservedSql, Sql as PostgresSql } from "postgres";
import { UsageError } from "../../common/errors.ts";
import { redactUrl } from "../../source/location.ts";
import { bindable, type SqlClient, type SqlDialect, type SqlValue } from "../kit/client.ts";
import { postgresSql } from "../migrations.ts";

/** A connection pool, with no custom types. */
export type Sql = PostgresSql<Record<string, never>>;
/** A connection reserved from the pool (a run's own), with no custom types. */
export type Reserved = ReservedSql<Record<string, never>>;

/** PostgreSQL's side of the differences the kit writes around. */
export const POSTGRES: SqlDialect = {
  name: "postgres",
  position: (text, needle) => `strpos(${text}, ${needle})`,
  textList: (n, alias) =>
    `(SELECT value, ord - 1 AS ord FROM jsonb_array_elements_text($${n}::text::jsonb) WITH ORDINALITY AS j(value, ord)) AS ${alias}`,
  jsonList: (n, alias) =>
    `(SELECT value, ord - 1 AS ord FROM jsonb_array_elements($${n}::text::jsonb) WITH ORDINALITY AS j(value, ord)) AS ${alias}`,
  tempTable: (name, columns) => [postgresSql(`CREATE TEMP TABLE ${name} (${columns}) ON COMMIT DROP`)],
  tableQuery: "SELECT 1 WHERE to_regclass($1) IS NOT NULL",
  columnQuery: `SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema()
    AND table_name = $1 AND column_name = $2`,
};

/** A client over a pool or a run's reserved connection. */
export function postgresClient(sql: Sql | Reserved): SqlClient {
  const bind = (params: readonly SqlValue[]) => params.map((p) => bindable(p, "postgres")) as never[];
  return {
    dialect: POSTGRES,
    run: async (query, params = []) => (await sql.unsafe(query, bind(params))).count,
    all: async <T>(query: string, params: readonly SqlValue[] = []) =>
      (await sql.unsafe(query, bind(params))).map((r) => ({ ...r }) as T),
  };
}

/**
 * Connections this process lost to the server's side: a socket it closed
 * (the server stopped or restarted, the backend was terminated), or
 * postgres.js 3.4.9 writing to a socket it has just dropped (an uncaught
 * TypeError in a timer, which would otherwise end the process with a stack
 * trace). A run that hears of one stops at once: see {@linkcode PostgresRun}.
 */
export const drops = new EventTarget();

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
export function lostConnection(error: unknown): string | undefined {
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
export function connectError(display: string, error: unknown): UsageError {
  const e = error as { code?: string; message?: string };
  const cause = e.code === "ECONNREFUSED"
    ? "connection refused (is PostgreSQL running there?)"
    : e.message ?? String(error);
  return new UsageError(`Cannot connect to PostgreSQL ${display}: ${cause}`, { subject: "DATABASE_URL", cause: error });
}

/**
 * A pool of up to 4 connections to `url` (a `postgres://` URL; missing parts
 * come from the `PG*` variables, as libpq's do), checked with one query.
 *
 * @throws {UsageError} when the server cannot be reached or refuses the login
 */
export async function connect(url: string, connectTimeoutSeconds: number): Promise<Sql> {
  const sql = postgres(url, {
    max: 4,
    onnotice: () => {},
    // A run's connection must live as long as the run.
    max_lifetime: null,
    idle_timeout: 30,
    connect_timeout: connectTimeoutSeconds,
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
    throw connectError(redactUrl(url), error);
  }
  return sql;
}
