/**
 * A damaged or tampered database is refused (exit 2, one line), never written
 * into: a column dropped by hand, corrupted pages, a malformed file.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { startBucketServer } from "./bucket_server.ts";
import { cli, copyCase, query, withServedCase, withTempDir, writeConfig } from "./helpers.ts";
import { pgQuery, pgTest, withPgDatabase } from "./pg.ts";

/** The one line of a refusal: no stack trace, no FTL log line; info log lines before it are fine. */
const oneLine = (stderr: string) => {
  assert.doesNotMatch(stderr, /^\s+at |\[FTL\]|\[ERR\]/m);
  const lines = stderr.trim().split("\n").filter((l) => !/^\d{4}-\d\d-\d\d \S+ \[(INF|DBG)\]/.test(l));
  assert.equal(lines.length, 1, `expected one line, got:\n${stderr}`);
  return lines[0]!;
};

Deno.test("a column dropped by hand is refused with its name, exit 2, nothing written (SQLite)", async () => {
  await withServedCase("basic", async ({ dir, config: writeProfile }) => {
    {
      const config = await writeProfile();
      const args = ["--config", config, "--profile", "p", "--force"];
      assert.equal((await cli(args)).code, 0);
      const db = new DatabaseSync(join(dir, "db.sqlite3"));
      db.exec("ALTER TABLE songs DROP COLUMN year");
      db.close();
      const runs = query(join(dir, "db.sqlite3"), "SELECT count(*) AS n FROM runs");
      const run = await cli(args);
      assert.equal(run.code, 2, run.stderr);
      assert.match(oneLine(run.stderr), /^bucketload: Table songs has lost column year \(dropped outside bucketload\)/);
      assert.deepEqual(query(join(dir, "db.sqlite3"), "SELECT count(*) AS n FROM runs"), runs);
    }
  });
});

pgTest("a column dropped by hand is refused with its name, exit 2", async () => {
  await withTempDir(async (dir) => {
    const bucket = await copyCase("basic", dir);
    const server = await startBucketServer(bucket);
    try {
      await withPgDatabase(async (url) => {
        const config = await writeConfig(dir, `[p]\nBUCKET_NAME = ${server.url}\nDATABASE_URL = ${url}\n`);
        const args = ["--config", config, "--profile", "p", "--force"];
        assert.equal((await cli(args)).code, 0);
        await pgQuery(url, "ALTER TABLE songs DROP COLUMN year");
        const run = await cli(args);
        assert.equal(run.code, 2, run.stderr);
        assert.match(oneLine(run.stderr), /^bucketload: Table songs has lost column year/);
      });
    } finally {
      await server.close();
    }
  });
});

Deno.test("corrupted pages: the integrity check refuses the database, exit 2, one line", async () => {
  await withServedCase("basic", async ({ dir, config: writeProfile }) => {
    {
      const config = await writeProfile("INTEGRITY_CHECK_HOURS = 0\n");
      const args = ["--config", config, "--profile", "p", "--force"];
      assert.equal((await cli(args)).code, 0);
      const path = join(dir, "db.sqlite3");
      // Pages of data past the schema: their B-tree headers become garbage.
      const bytes = await Deno.readFile(path);
      const pageSize = new DataView(bytes.buffer).getUint16(16);
      for (let page = 2; page * pageSize < bytes.length; page++) {
        bytes.fill(0xa5, page * pageSize, page * pageSize + 64);
      }
      await Deno.writeFile(path, bytes);
      const before = await Deno.readFile(path);
      const run = await cli(args);
      assert.equal(run.code, 2, run.stdout + run.stderr);
      assert.match(oneLine(run.stderr), /^bucketload: (Database .* is damaged|The database is damaged)/);
      assert.deepEqual(await Deno.readFile(path), before, "a damaged database was written into");
      // Not a database at all: the same answer.
      await Deno.writeTextFile(path, "x".repeat(8192));
      const notDb = await cli(args);
      assert.equal(notDb.code, 2, notDb.stderr);
      oneLine(notDb.stderr);
    }
  });
});

Deno.test("a run that creates the database counts as its integrity check: the next run does not read it through", async () => {
  await withServedCase("basic", async ({ dir, config: writeProfile }) => {
    const config = await writeProfile();
    assert.equal((await cli(["--config", config, "--profile", "p"])).code, 0);
    const [row] = query(join(dir, "db.sqlite3"), "SELECT value FROM meta WHERE name = 'last_quick_check_at'");
    assert.ok(row !== undefined && !Number.isNaN(Date.parse(String(row.value))), "no check time recorded");
  });
});

/** Sets the time of the last passed integrity check, `hoursAgo` hours ago; returns it. */
function checkedHoursAgo(db: string, hoursAgo: number): string {
  const at = new Date(Date.now() - hoursAgo * 3600_000).toISOString();
  const c = new DatabaseSync(db);
  try {
    c.prepare("UPDATE meta SET value = ? WHERE name = 'last_quick_check_at'").run(at);
  } finally {
    c.close();
  }
  return at;
}

const lastCheck = (db: string) =>
  String(query(db, "SELECT value FROM meta WHERE name = 'last_quick_check_at'")[0]?.value);

Deno.test("the daily integrity check runs in a run with nothing to do, after its lock; a run that loads only checks after twice INTEGRITY_CHECK_HOURS, in its lock", async () => {
  await withServedCase("basic", async ({ dir, config: writeProfile }) => {
    const config = await writeProfile();
    const db = join(dir, "db.sqlite3");
    const args = ["--config", config, "--profile", "p", "--log-level", "debug"];
    assert.equal((await cli(args)).code, 0);
    // Due (25 hours, INTEGRITY_CHECK_HOURS = 24): a run that loads leaves it to the next run with nothing to do.
    const due = checkedHoursAgo(db, 25);
    const loads = await cli([...args, "--force"]);
    assert.equal(loads.code, 0, loads.stderr);
    assert.doesNotMatch(loads.stderr, /quick_check/);
    assert.equal(lastCheck(db), due);
    const idle = await cli(args);
    assert.equal(idle.code, 0, idle.stderr);
    assert.match(idle.stdout, /nothing to do/);
    assert.match(idle.stderr, /passed PRAGMA quick_check in [\d.]+ s, after the run's lock was released/);
    assert.ok(Date.parse(lastCheck(db)) > Date.parse(due) + 3600_000, "the check's time was not recorded");
    // Checked an hour ago: no run checks.
    checkedHoursAgo(db, 1);
    assert.doesNotMatch((await cli(args)).stderr, /quick_check/);
    // Not checked for twice the hours: the next run checks before it writes anything, in its lock.
    const overdue = checkedHoursAgo(db, 49);
    const late = await cli([...args, "--force"]);
    assert.match(late.stderr, /passed PRAGMA quick_check in [\d.]+ s, in the run's lock/);
    assert.ok(Date.parse(lastCheck(db)) > Date.parse(overdue));
  });
});

Deno.test("damage found by the check of a run with nothing to do, after its lock: exit 2, one line, nothing written", async () => {
  await withServedCase("basic", async ({ dir, config: writeProfile }) => {
    const config = await writeProfile();
    const db = join(dir, "db.sqlite3");
    const args = ["--config", config, "--profile", "p", "--log-level", "error"];
    assert.equal((await cli(args)).code, 0);
    checkedHoursAgo(db, 25);
    // An index no run with nothing to do reads: only the check meets its damaged pages.
    const pages = query(db, "SELECT pageno FROM dbstat WHERE name = 'rejected_records_by_reason'").map((r) =>
      Number(r.pageno)
    );
    assert.ok(pages.length > 0);
    const bytes = await Deno.readFile(db);
    const pageSize = new DataView(bytes.buffer).getUint16(16);
    for (const page of pages) bytes.fill(0xa5, (page - 1) * pageSize, (page - 1) * pageSize + 64);
    await Deno.writeFile(db, bytes);
    const run = await cli(args);
    assert.equal(run.code, 2, run.stdout + run.stderr);
    assert.match(oneLine(run.stderr), /^bucketload: Database .* is damaged \(/);
    // Nothing but the header's change counters, which the run's journal mode (WAL, then back) moves.
    const counters = (b: Uint8Array) => (b.fill(0, 24, 28), b.fill(0, 92, 96));
    assert.deepEqual(counters(await Deno.readFile(db)), counters(bytes), "a damaged database was written into");
  });
});
