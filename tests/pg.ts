/**
 * PostgreSQL for tests: `.ci/run` starts a throw-away cluster and sets
 * `BL_TEST_DATABASE_URL`; each test gets a database of its own. Without the
 * variable the PostgreSQL tests are skipped with a notice, except in CI
 * (`CI=true`), where that is a failure.
 *
 * @module
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import type { Dump, Row } from "./helpers.ts";

/** The server's URL (any database on it), when there is one. */
export const PG_URL: string | undefined = Deno.env.get("BL_TEST_DATABASE_URL");

/** Whether PostgreSQL tests are skipped: no server here, and not CI. */
export const PG_SKIP = PG_URL === undefined && Deno.env.get("CI") !== "true";

let noticed = false;

/** `Deno.test` for a test that needs PostgreSQL: skipped with a one-line notice without a server (not in CI). */
export function pgTest(name: string, fn: () => Promise<void>) {
  if (PG_SKIP && !noticed) {
    noticed = true;
    console.log(
      "NOTICE: PostgreSQL tests skipped: BL_TEST_DATABASE_URL is not set (tools/pg_cluster.sh start prints one)",
    );
  }
  Deno.test({
    name: `postgres: ${name}`,
    ignore: PG_SKIP,
    fn: async () => {
      assert.ok(PG_URL !== undefined, "CI=true needs BL_TEST_DATABASE_URL: .ci/run starts PostgreSQL and sets it");
      await fn();
    },
  });
}

/** A client that returns BIGINT as numbers, as the store does. */
export function pgClient(url: string) {
  return postgres(url, {
    max: 2,
    onnotice: () => {},
    types: {
      int8: { to: 20, from: [20], serialize: (v: number) => String(v), parse: (v: string) => Number(v) },
    },
  });
}

let counter = 0;

/** Runs `fn` with the URL of a new, empty database, dropped afterwards. */
export async function withPgDatabase<T>(fn: (url: string) => Promise<T>): Promise<T> {
  const admin = pgClient(PG_URL!);
  const name = `bl_test_${Deno.pid}_${++counter}_${Math.floor(Math.random() * 1e6)}`;
  await admin.unsafe(`CREATE DATABASE ${name}`);
  const url = new URL(PG_URL!);
  url.pathname = `/${name}`;
  try {
    return await fn(url.toString());
  } finally {
    await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.end();
  }
}

/** Every row of `sql` on the database at `url`. */
export async function pgQuery(url: string, sql: string, ...params: (string | number | null)[]): Promise<Row[]> {
  const client = pgClient(url);
  try {
    return (await client.unsafe(sql, params)).map((r) => ({ ...r }));
  } finally {
    await client.end();
  }
}

/** Rows in one order whatever the database's collation: by their JSON. */
export function canonical(rows: Row[]): Row[] {
  const keyed = rows.map((r) => [JSON.stringify(r), r] as const);
  keyed.sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0);
  return keyed.map(([, r]) => r);
}

/** A dump in canonical order, for comparing a SQLite and a PostgreSQL database. */
export function canonicalDump(dump: Dump): Dump {
  return {
    songs: canonical(dump.songs),
    movies: canonical(dump.movies),
    apps: canonical(dump.apps),
    processed_files: canonical(dump.processed_files),
    rejected_records: canonical(dump.rejected_records),
  };
}

/** The same content as `dumpDatabase` gives for SQLite, from PostgreSQL (without the list positions). */
export async function pgDump(url: string, { ingestionTime = true, fullRegistry = false } = {}): Promise<Dump> {
  const client = pgClient(url);
  try {
    const rows = async (sql: string) =>
      (await client.unsafe(sql)).map((r) => {
        const row: Row = { ...r };
        delete row.source_pos;
        if (!ingestionTime) delete row.ingestion_time;
        return row;
      });
    return canonicalDump({
      songs: await rows("SELECT * FROM songs"),
      movies: await rows("SELECT * FROM movies"),
      apps: await rows("SELECT * FROM apps"),
      processed_files: await rows(
        `SELECT key, status, records, rejected, ignored, bytes${
          fullRegistry ? ", origin, etag, size, (deleted_at IS NOT NULL)::int AS deleted" : ""
        } FROM processed_files`,
      ),
      rejected_records: await rows("SELECT key, record_index, type, reason, raw FROM rejected_records"),
    });
  } finally {
    await client.end();
  }
}
