/**
 * Derived columns follow their settings: after `AWESOME_MIN_RATING` changes,
 * the next run (even one with nothing new to load) or a `replay` recomputes
 * `apps.is_awesome` of the stored rows from their stored columns, without a
 * fetch, and says how many rows changed. The tables then equal a fresh load
 * with the new settings, on SQLite and on PostgreSQL.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { startBucketServer } from "./bucket_server.ts";
import { cli, dumpDatabase, query, ROOT, withTempDir, writeConfig } from "./helpers.ts";
import { pgClient, pgTest, withPgDatabase } from "./pg.ts";

const SAMPLE = join(ROOT, "fixtures", "sample_bucket");
const awesome = (db: string) => query(db, "SELECT count(*) AS n FROM apps WHERE is_awesome = 1")[0]!.n as number;
const runs = (db: string) => query(db, "SELECT count(*) AS n FROM runs")[0]!.n as number;

Deno.test("derived columns: a changed AWESOME_MIN_RATING re-derives the stored rows in the next run, with no fetch", async () => {
  const server = await startBucketServer(SAMPLE, { etags: true });
  try {
    await withTempDir(async (dir) => {
      const config = await writeConfig(dir, `[p]\nBUCKET_NAME = ${server.url}\nDATABASE_NAME = db.sqlite3\n`);
      const args = ["--config", config, "--profile", "p"];
      const db = join(dir, "db.sqlite3");
      assert.equal((await cli(args)).code, 0);
      const before = awesome(db);
      const fetched = server.requests.length;
      // Nothing new in the bucket: still a run, because stored rows change.
      const env = { BUCKETLOAD_AWESOME_MIN_RATING: "4.0" };
      const changed = await cli([...args, "--json"], { env });
      assert.equal(changed.code, 0, changed.stderr);
      const report = JSON.parse(changed.stdout);
      const after = awesome(db);
      assert.ok(after > before, `${after} awesome apps, ${before} before`);
      assert.equal(report.rows.rederived, after - before);
      assert.deepEqual(report.settingsChanged, ["AWESOME_MIN_RATING 4.5 → 4"]);
      assert.equal(report.files.loaded, 0);
      assert.deepEqual(server.requests.slice(fetched), ["files_list.data"], "a data file was fetched");
      // The text summary says it too.
      const back = await cli(args);
      assert.match(
        back.stdout,
        new RegExp(
          `derived  ${after - before} stored rows re-derived \\(no fetch\\): ` +
            "AWESOME_MIN_RATING 4 → 4.5",
        ),
      );
      assert.equal(awesome(db), before);
      // The same settings again: nothing to do, and no run row.
      const count = runs(db);
      const same = await cli(args);
      assert.match(same.stdout, /nothing to do/);
      assert.equal(runs(db), count);
      // Equal to a fresh load with the changed setting.
      assert.equal((await cli(args, { env })).code, 0);
      await Deno.mkdir(join(dir, "fresh"));
      const fresh = await writeConfig(
        join(dir, "fresh"),
        `[p]\nBUCKET_NAME = ${server.url}\nDATABASE_NAME = db.sqlite3\n`,
      );
      assert.equal((await cli(["--config", fresh, "--profile", "p"], { env })).code, 0);
      assert.deepEqual(
        dumpDatabase(db, { ingestionTime: false }),
        dumpDatabase(join(dir, "fresh", "db.sqlite3"), { ingestionTime: false }),
      );
    });
  } finally {
    await server.close();
  }
});

Deno.test("derived columns: replay re-derives after a settings change; --dry-run says so and writes nothing", async () => {
  await withTempDir(async (dir) => {
    const config = await writeConfig(dir, `[p]\nBUCKET_NAME = ${SAMPLE}\nDATABASE_NAME = db.sqlite3\n`);
    const args = ["--config", config, "--profile", "p"];
    const db = join(dir, "db.sqlite3");
    assert.equal((await cli(args)).code, 0);
    const before = awesome(db);
    const env = { BUCKETLOAD_AWESOME_MAX_SIZE_BYTES: "1000000" };
    const dry = await cli(["replay", "--dry-run", ...args], { env });
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(
      dry.stdout,
      /derived +\d+ stored rows re-derived \(rolled back\): AWESOME_MAX_SIZE_BYTES 100000000 → 1000000/,
    );
    assert.equal(awesome(db), before);
    const replay = await cli(["replay", "--json", ...args], { env });
    assert.equal(replay.code, 0, replay.stderr);
    const report = JSON.parse(replay.stdout);
    assert.ok(report.rederived.rows > 0);
    assert.equal(awesome(db), before - report.rederived.rows);
    assert.equal(typeof report.runId, "number");
  });
});

pgTest("derived columns: the same on PostgreSQL as on SQLite", async () => {
  const server = await startBucketServer(SAMPLE, { etags: true });
  try {
    await withTempDir(async (dir) => {
      await withPgDatabase(async (url) => {
        const config = await writeConfig(dir, `[p]\nBUCKET_NAME = ${server.url}\nDATABASE_URL = ${url}\n`);
        const args = ["--config", config, "--profile", "p"];
        assert.equal((await cli(args)).code, 0);
        const env = { BUCKETLOAD_AWESOME_MIN_RATING: "4.0" };
        const changed = JSON.parse((await cli([...args, "--json"], { env })).stdout);
        assert.ok(changed.rows.rederived > 0);
        const sqliteConfig = join(dir, "lite.ini");
        await Deno.writeTextFile(sqliteConfig, `[p]\nBUCKET_NAME = ${server.url}\nDATABASE_NAME = lite.sqlite3\n`);
        assert.equal((await cli(["--config", sqliteConfig, "--profile", "p"], { env })).code, 0);
        const sql = pgClient(url);
        try {
          const pgApps = await sql`SELECT name, version, is_awesome FROM apps ORDER BY name, version`;
          const liteApps = query(join(dir, "lite.sqlite3"), "SELECT name, version, is_awesome FROM apps");
          const key = (r: Record<string, unknown>) => `${r.name}\0${r.version}`;
          const lite = new Map(liteApps.map((r) => [key(r), Number(r.is_awesome)]));
          assert.equal(pgApps.length, lite.size);
          for (const r of pgApps) assert.equal(Number(r.is_awesome), lite.get(key(r)), key(r));
        } finally {
          await sql.end();
        }
      });
    });
  } finally {
    await server.close();
  }
});

Deno.test("derived columns: app names holding U+0000 are re-derived whole, past a page of 5,000 rows (SQLite)", async () => {
  await withTempDir(async (dir) => {
    const bucket = join(dir, "b");
    await Deno.mkdir(bucket);
    const app = (name: string, rating: number, genre: string) => ({
      type: "app",
      data: { name, genre, rating, version: "1", size_bytes: 5 },
    });
    // "X\0Y" and "X" differ only after the NUL; 5,200 names share their text before it.
    const apps = [app("X\u0000Y", 4.2, "g-nul"), app("X", 1, "g-plain")];
    for (let i = 0; i < 5200; i++) apps.push(app(`Z\u0000${String(i).padStart(5, "0")}`, 4.2, "z"));
    await Deno.writeTextFile(join(bucket, "a.json"), JSON.stringify(apps));
    await Deno.writeTextFile(join(bucket, "files_list.data"), "a.json\n");
    const rows = (db: string) =>
      query(db, "SELECT hex(name) AS name, genre, rating, is_awesome FROM apps ORDER BY hex(name)");
    const config = await writeConfig(dir, `[p]\nBUCKET_NAME = ${bucket}\nDATABASE_NAME = db.sqlite3\n`);
    assert.equal((await cli(["--config", config, "--profile", "p"])).code, 0);
    const env = { BUCKETLOAD_AWESOME_MIN_RATING: "4.0" };
    const changed = await cli(["--config", config, "--profile", "p", "--json"], { env });
    assert.equal(changed.code, 0, changed.stderr);
    assert.equal(JSON.parse(changed.stdout).rows.rederived, 5201);
    await Deno.mkdir(join(dir, "fresh"));
    const fresh = await writeConfig(join(dir, "fresh"), `[p]\nBUCKET_NAME = ${bucket}\nDATABASE_NAME = db.sqlite3\n`);
    assert.equal((await cli(["--config", fresh, "--profile", "p"], { env })).code, 0);
    assert.deepEqual(rows(join(dir, "db.sqlite3")), rows(join(dir, "fresh", "db.sqlite3")));
  });
});
