/**
 * Taking over from the Python original: its database, config and
 * processed.json, written by a faithful model of it (tools/original/original.py).
 *
 * @module
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { normalizeTitle } from "../mod/records/normalize.ts";
import { generateBucket } from "../tools/gen_bucket.ts";
import { type BucketServer, startBucketServer } from "./bucket_server.ts";
import { cli, dumpDatabase, query, ROOT, withTempDir } from "./helpers.ts";

const ORIGINAL = join(ROOT, "tools", "original", "original.py");

/** Runs the original's model on `config`; returns its exit code and stderr. */
async function original(config: string, ...flags: string[]) {
  const out = await new Deno.Command("python3", {
    args: [ORIGINAL, "--config", config, ...flags],
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

/** The original's config.ini, as its README shows it, for a bucket at `host`. */
function originalConfig(host: string, extra = "") {
  return `[default]\nDATABASE_NAME = db.sqlite3\nBUCKET_NAME = ${host}\nFILES_LIST_KEY = files_list.data\n` +
    `BUCKET_ENCODING = utf8\nDATE_STORE_FORMAT = %Y-%m-%d %H:%M:%S\nPROCESSED_FILES_FILENAME = processed.json\n` +
    `SAVE_LOG = no\n${extra}`;
}

/** A real-shaped, clean bucket, plus two files whose records the original derived differently. */
async function takeOverBucket(dir: string) {
  const keys = await generateBucket(dir, { files: 36, records: 250, invalidRate: 0, shape: "real", seed: 16 });
  const movie = (title: string, budget: number) => ({
    type: "movie",
    data: { original_title: title, original_language: "en", budget, is_adult: false, release_date: "2009-08-07" },
  });
  const app = (size: number) => ({
    type: "app",
    data: { name: "Tiny Tool", genre: "Utilities", rating: 2.5, version: "1.0", size_bytes: size },
  });
  // The original keyed these two apart (julie__julia, julie_julia); today's rule gives one key.
  await Deno.writeTextFile(join(dir, "julie-1.data"), JSON.stringify([movie("Julie & Julia", 1), app(500_000)]));
  await Deno.writeTextFile(join(dir, "julie-2.data"), JSON.stringify([movie("Julie  Julia", 2)]));
  keys.splice(3, 0, "julie-1.data");
  keys.splice(12, 0, "julie-2.data");
  return keys;
}

/** Checks every derived column against today's rules. */
function derivedByTodaysRules(db: string) {
  for (const m of query(db, "SELECT original_title, original_title_normalized FROM movies")) {
    assert.equal(m.original_title_normalized, normalizeTitle(m.original_title as string), String(m.original_title));
  }
  for (const a of query(db, "SELECT name, rating, size_bytes, is_awesome FROM apps")) {
    const awesome = (a.rating as number) >= 4.5 && (a.size_bytes as number) <= 100_000_000 ? 1 : 0;
    assert.equal(a.is_awesome, awesome, String(a.name));
  }
}

const keysOf = (db: string, table: string, key: string) =>
  query(db, `SELECT ${key} AS k FROM ${table} ORDER BY 1`).map((r) => r.k);

Deno.test("take-over: the original loads 30 files, bucketload the rest: the rows of a fresh load, by today's rules", async () => {
  await withTempDir(async (dir) => {
    const bucket = join(dir, "bucket");
    const keys = await takeOverBucket(bucket);
    let list = keys.slice(0, 30).join("\n");
    const server = await startBucketServer(bucket, {
      fault: (key) => key === "files_list.data" ? { status: 200, body: list } : undefined,
    });
    try {
      const host = new URL(server.url).host;
      const config = join(dir, "config.ini");
      await Deno.writeTextFile(config, originalConfig(host));
      const first = await original(config);
      assert.equal(first.code, 0, first.stderr);
      const db = join(dir, "db.sqlite3");
      // The original's rules: two keys for one movie, and a small app awesome whatever its rating.
      assert.deepEqual(
        query(db, "SELECT original_title_normalized AS k FROM movies WHERE original_title LIKE 'Julie%' ORDER BY 1"),
        [{ k: "julie__julia" }, { k: "julie_julia" }],
      );
      assert.deepEqual(query(db, "SELECT is_awesome FROM apps WHERE name = 'Tiny Tool'"), [{ is_awesome: 1 }]);
      assert.equal(JSON.parse(await Deno.readTextFile(join(dir, "processed.json"))).length, 30);

      list = keys.join("\n");
      const take = await cli(["--config", config]);
      assert.equal(take.code, 0, take.stderr);
      assert.match(take.stderr, /Took over movies from the original: \d+ rows, \d+ re-derived .*1 merged/);
      assert.match(take.stderr, /Took over the original's processed-files list: 30 keys registered/);
      for (const key of keys.slice(0, 30)) assert.equal(server.hits(key), 1, `${key} was fetched again`);

      const fresh = join(dir, "fresh");
      await Deno.mkdir(fresh);
      const freshConfig = join(fresh, "config.ini");
      await Deno.writeTextFile(freshConfig, originalConfig(host));
      assert.equal((await cli(["--config", freshConfig])).code, 0);
      const freshDb = join(fresh, "db.sqlite3");
      for (
        const [table, key] of [["songs", "artist_name || '|' || title"], [
          "movies",
          "original_title_normalized || '|' || release_date",
        ], ["apps", "name || '|' || version"]]
      ) {
        assert.deepEqual(
          keysOf(db, table!, key!),
          keysOf(freshDb, table!, key!),
          `${table}: other keys than a fresh load`,
        );
      }
      derivedByTodaysRules(db);
      assert.deepEqual(query(db, "SELECT is_awesome FROM apps WHERE name = 'Tiny Tool'"), [{ is_awesome: 0 }]);
      // processed.json is now output only: the registry's keys, every listed file.
      assert.deepEqual(JSON.parse(await Deno.readTextFile(join(dir, "processed.json"))).sort(), [...keys].sort());

      // A full re-load gives a fresh load's rows exactly.
      const force = await cli(["--config", config, "--force"]);
      assert.equal(force.code, 0, force.stderr);
      assert.deepEqual(dumpDatabase(db, { ingestionTime: false }), dumpDatabase(freshDb, { ingestionTime: false }));
    } finally {
      await server.close();
    }
  });
});

/** A server for `bucket` whose list is `list()`. */
function serve(bucket: string, list: () => string): Promise<BucketServer> {
  return startBucketServer(bucket, {
    fault: (key) => key === "files_list.data" ? { status: 200, body: list() } : undefined,
  });
}

Deno.test("processed.json never hides a database: a new database, a shared file, an original that crashed", async () => {
  await withTempDir(async (dir) => {
    const bucket = join(dir, "bucket");
    const keys = await generateBucket(bucket, { files: 6, records: 100, invalidRate: 0, shape: "real", seed: 17 });
    // The original crashes when the list ends with a newline (an empty key fails), after registering files.
    let list = keys.join("\n") + "\n";
    const server = await serve(bucket, () => list);
    try {
      const config = join(dir, "config.ini");
      const host = new URL(server.url).host;
      await Deno.writeTextFile(
        config,
        originalConfig(
          host,
          "\n[other]\nDATABASE_NAME = other.sqlite3\n" +
            `BUCKET_NAME = ${host}\nPROCESSED_FILES_FILENAME = processed.json\n`,
        ),
      );
      const crashed = await original(config);
      assert.notEqual(crashed.code, 0, "the original did not crash on the trailing newline");
      const registered = JSON.parse(await Deno.readTextFile(join(dir, "processed.json"))) as string[];
      assert.ok(registered.length > 0, "the original registered no file before it crashed");
      assert.deepEqual(query(join(dir, "db.sqlite3"), "SELECT count(*) AS n FROM songs"), [{ n: 0 }]);

      list = keys.join("\n");
      const hitsBefore = keys.map((k) => server.hits(k));
      const run = await cli(["--config", config]);
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stderr, /PROCESSED_FILES_FILENAME lists \d+ keys, but this database holds none of their rows/);
      assert.match(run.stdout, /6 loaded/);
      keys.forEach((key, i) => assert.equal(server.hits(key), hitsBefore[i]! + 1, `${key} not loaded`));

      // A second profile sharing the file, with a database of its own: it loads everything too.
      const other = await cli(["--config", config, "--profile", "other"]);
      assert.equal(other.code, 0, other.stderr);
      assert.match(other.stdout, /6 loaded/);
      // Deleting the database to reload: the file does not hide it.
      for (const f of ["db.sqlite3", "db.sqlite3-wal", "db.sqlite3-shm"]) {
        if (existsSync(join(dir, f))) await Deno.remove(join(dir, f));
      }
      const again = await cli(["--config", config]);
      assert.equal(again.code, 0, again.stderr);
      assert.match(again.stdout, /6 loaded/);
      const dry = await cli(["--config", config, "--dry-run", "--force"]);
      assert.equal(dry.code, 0, dry.stderr);
    } finally {
      await server.close();
    }
  });
});
