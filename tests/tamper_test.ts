/**
 * A bookkeeping table dropped by hand is refused when the run starts: one
 * line naming it, exit 2, before anything is fetched (both stores).
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { bookkeepingTables } from "../mod/store/kit/tamper.ts";
import { MIGRATIONS } from "../mod/store/migrations.ts";
import { startBucketServer } from "./bucket_server.ts";
import { CASES, cli, withTempDir, writeConfig } from "./helpers.ts";
import { pgClient, pgTest, withPgDatabase } from "./pg.ts";

Deno.test("bookkeepingTables(): every table the migrations leave", () => {
  assert.deepEqual(bookkeepingTables(MIGRATIONS).sort(), [
    "list_cache",
    "meta",
    "missing_keys",
    "processed_files",
    "registry_counts",
    "rejected_records",
    "rejection_counts",
    "run_drift",
    "run_keys",
    "runs",
    "table_rows",
  ]);
});

async function dropThenRun(profile: (url: string) => string, drop: (table: string, dir: string) => Promise<void>) {
  const server = await startBucketServer(join(CASES, "basic"));
  try {
    await withTempDir(async (dir) => {
      const config = await writeConfig(dir, profile(server.url));
      const args = ["--config", config, "--profile", "p"];
      assert.equal((await cli(args)).code, 0);
      await drop("run_drift", dir);
      const before = server.requests.length;
      const out = await cli([...args, "--force"]);
      assert.equal(out.code, 2, out.stderr);
      const lines = out.stderr.trim().split("\n").filter((l) => !/ \[INF\] /.test(l));
      assert.deepEqual(lines, [
        "bucketload: Table run_drift is missing (dropped outside bucketload): the run's bookkeeping cannot be kept, " +
        "so nothing was written; restore the database from a backup",
      ]);
      assert.equal(server.requests.length, before, "something was fetched");
    });
  } finally {
    await server.close();
  }
}

Deno.test("a bookkeeping table dropped by hand (SQLite): exit 2 at the start, one line, nothing fetched", async () => {
  await dropThenRun((url) => `[p]\nBUCKET_NAME = ${url}\nDATABASE_NAME = db.sqlite3\n`, (table, dir) => {
    const d = new DatabaseSync(join(dir, "db.sqlite3"));
    d.exec(`DROP TABLE ${table}`);
    d.close();
    return Promise.resolve();
  });
});

pgTest("a bookkeeping table dropped by hand (PostgreSQL): exit 2 at the start, one line, nothing fetched", async () => {
  await withPgDatabase(async (pgUrl) => {
    await dropThenRun((url) => `[p]\nBUCKET_NAME = ${url}\nDATABASE_URL = ${pgUrl}\n`, async (table) => {
      const sql = pgClient(pgUrl);
      try {
        await sql.unsafe(`DROP TABLE ${table}`);
      } finally {
        await sql.end();
      }
    });
  });
});

async function dropDataTable(
  profile: (url: string) => string,
  drop: (dir: string) => Promise<void>,
  count: (dir: string) => Promise<number>,
) {
  const server = await startBucketServer(join(CASES, "basic"));
  try {
    await withTempDir(async (dir) => {
      const config = await writeConfig(dir, profile(server.url));
      const args = ["--config", config, "--profile", "p"];
      assert.equal((await cli(args)).code, 0);
      const songs = await count(dir);
      assert.ok(songs > 0);
      await drop(dir);
      const out = await cli(args);
      assert.equal(out.code, 2, out.stderr);
      const lines = out.stderr.trim().split("\n").filter((l) => !/ \[INF\] /.test(l));
      assert.equal(lines.length, 1, out.stderr);
      const said =
        "Table songs is missing (dropped outside bucketload), while files registered as loaded had rows there:";
      assert.ok(lines[0]!.startsWith(`bucketload: ${said}`), lines[0]);
      assert.match(lines[0]!, /--force/);
      // --force loads every file again: the table is made anew, with the rows a fresh load gives.
      const forced = await cli([...args, "--force"]);
      assert.equal(forced.code, 0, forced.stderr);
      assert.equal(await count(dir), songs);
    });
  } finally {
    await server.close();
  }
}

Deno.test("a data table dropped by hand (SQLite): refused in one line, exit 2; --force makes it anew", async () => {
  await dropDataTable(
    (url) => `[p]\nBUCKET_NAME = ${url}\nDATABASE_NAME = db.sqlite3\n`,
    (dir) => {
      const d = new DatabaseSync(join(dir, "db.sqlite3"));
      d.exec("DROP TABLE songs");
      d.close();
      return Promise.resolve();
    },
    (dir) => {
      const d = new DatabaseSync(join(dir, "db.sqlite3"), { readOnly: true });
      try {
        return Promise.resolve((d.prepare("SELECT count(*) AS n FROM songs").get() as { n: number }).n);
      } finally {
        d.close();
      }
    },
  );
});

pgTest("a data table dropped by hand (PostgreSQL): refused in one line, exit 2; --force makes it anew", async () => {
  await withPgDatabase(async (pgUrl) => {
    const sql = pgClient(pgUrl);
    try {
      await dropDataTable(
        (url) => `[p]\nBUCKET_NAME = ${url}\nDATABASE_URL = ${pgUrl}\n`,
        async () => void await sql.unsafe("DROP TABLE songs"),
        async () => Number((await sql.unsafe("SELECT count(*) AS n FROM songs"))[0]!.n),
      );
    } finally {
      await sql.end();
    }
  });
});
