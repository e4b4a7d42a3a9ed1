/**
 * `replay`: quarantined records re-validated by today's rules without a
 * fetch. Unchanged rules change no table; a rule made stricter, then relaxed,
 * gives back exactly the rows a fresh load gives; a record whose order in its
 * file is unknown is held; both stores.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { getLogger } from "@logtape/logtape";
import { appType } from "../mod/records/app.ts";
import { RECORD_TYPES, type RecordType } from "../mod/records/mod.ts";
import { movieType } from "../mod/records/movie.ts";
import { songType } from "../mod/records/song.ts";
import { type ReplayReport, runReplay } from "../mod/run/replay.ts";
import { HttpSource } from "../mod/source/http/http.ts";
import { runPipeline } from "../mod/run/pipeline.ts";
import { PostgresStore } from "../mod/store/postgres/mod.ts";
import { SqliteStore } from "../mod/store/sqlite/mod.ts";
import type { ReplayFilter, Store } from "../mod/store/store.ts";
import { LockedError } from "../mod/common/errors.ts";
import { generateBucket } from "../tools/gen_bucket.ts";
import { startBucketServer } from "./bucket_server.ts";
import {
  CASES,
  cli,
  dumpDatabase,
  everything,
  FIXED_NOW,
  PIPELINE_DEFAULTS,
  runOnce,
  withTempDir,
  writeConfig,
} from "./helpers.ts";
import { canonicalDump, pgDump, pgQuery, pgTest, withPgDatabase } from "./pg.ts";

/** Stricter rules, as an older bucketload might have had: songs need a known year, apps a rating of at most 4. */
const strictSong: RecordType = {
  ...songType,
  toRow(data, context) {
    if (data.year === 0) return "year: expected a known year 1–9999, got number 0";
    return songType.toRow.call(this, data, context);
  },
};
const strictApp: RecordType = {
  ...appType,
  toRow(data, context) {
    if (typeof data.rating === "number" && data.rating > 4) {
      return `rating: expected at most 4, got number ${data.rating}`;
    }
    return appType.toRow.call(this, data, context);
  },
};
const STRICT: readonly RecordType[] = [strictSong, movieType, strictApp];

const replay = (store: Store, filter: ReplayFilter = {}, dryRun = false, types = RECORD_TYPES) =>
  runReplay({
    store,
    types,
    bucket: "test",
    dateStoreFormat: PIPELINE_DEFAULTS.dateStoreFormat,
    filter,
    dryRun,
    logger: getLogger(["bucketload"]),
    now: FIXED_NOW,
  });

async function withSqlite<T>(db: string, types: readonly RecordType[], fn: (s: SqliteStore) => Promise<T>) {
  const store = SqliteStore.open(db, { types });
  try {
    return await fn(store);
  } finally {
    store.close();
  }
}

const loadedTotal = (r: ReplayReport) => Object.values(r.loaded).reduce((a, b) => a + b, 0);

Deno.test("replay: with unchanged rules it changes no table, and says what it re-validated", async () => {
  const server = await startBucketServer(join(CASES, "basic"));
  try {
    await withTempDir(async (dir) => {
      const db = join(dir, "db.sqlite3");
      await runOnce(server.url, db);
      const before = everything(db);
      const quarantined = before.rejected_records as { record_index: number | null }[];
      const records = quarantined.filter((r) => r.record_index !== null).length;
      assert.ok(records >= 3, "the case has rejected records");
      const report = await withSqlite(db, RECORD_TYPES, (s) => replay(s));
      assert.equal(report.runId, undefined);
      assert.equal(report.matched, quarantined.length);
      assert.equal(report.revalidated, records);
      assert.equal(loadedTotal(report), 0);
      assert.equal(report.stillRejected, records);
      assert.equal(report.reasonsChanged, 0);
      assert.equal(report.skipped.wholeFile, quarantined.length - records);
      assert.deepEqual(everything(db), before);

      // The CLI: replay and --dry-run say so, and exit 0; still no table changed.
      const config = await writeConfig(dir, `[p]\nBUCKET_NAME = ${server.url}\nDATABASE_NAME = ${db}\n`);
      const out = await cli(["--config", config, "--profile", "p", "replay"]);
      assert.equal(out.code, 0, out.stderr);
      assert.match(out.stdout, /replay in [\d.]+ s: nothing changed, nothing was written/);
      assert.match(out.stdout, new RegExp(`${records} re-validated by today's rules`));
      assert.match(out.stdout, /year: expected an integer 0–9999: 0 loaded, 1 still rejected/);
      const dry = await cli(["--config", config, "--profile", "p", "replay", "--dry-run", "--type", "song"]);
      assert.equal(dry.code, 0, dry.stderr);
      assert.match(dry.stdout, /dry run: nothing was written/);
      const json = await cli(["--config", config, "--profile", "p", "replay", "--json"]);
      const doc = JSON.parse(json.stdout);
      assert.equal(doc.runId, null);
      assert.equal(doc.revalidated, records);
      assert.deepEqual(everything(db), before);
      const bad = await cli(["--config", config, "--profile", "p", "status", "--type", "song"]);
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /Flag --type only applies to 'replay'/);
    });
  } finally {
    await server.close();
  }
});

/** A real-shaped bucket (repeats across files, keys in random order, a few invalid records) served on loopback. */
async function realBucket(dir: string) {
  const bucket = join(dir, "bucket");
  await generateBucket(bucket, { files: 6, records: 300, seed: 7, shape: "real", invalidRate: 0.02 });
  return await startBucketServer(bucket);
}

Deno.test("replay: a rule made stricter, then relaxed: rows come back exactly as a fresh load gives them", async () => {
  await withTempDir(async (dir) => {
    const server = await realBucket(dir);
    try {
      const fresh = join(dir, "fresh.sqlite3");
      await runOnce(server.url, fresh);
      const strict = join(dir, "strict.sqlite3");
      const first = await runOnce(server.url, strict, { types: STRICT });
      assert.ok(first.rejected > 100, `the stricter rules reject many records (${first.rejected})`);
      assert.notDeepEqual(dumpDatabase(strict), dumpDatabase(fresh));

      // Only the apps first: the songs stay quarantined.
      const apps = await withSqlite(strict, RECORD_TYPES, (s) => replay(s, { reason: "rating: expected at most 4" }));
      assert.ok(apps.runId !== undefined && apps.loaded.app! > 10);
      assert.equal(apps.loaded.song, 0);
      // An app still rejected failed another rule too: its stored reason is now that one.
      assert.equal(apps.stillRejected, apps.reasonsChanged);
      assert.deepEqual(dumpDatabase(strict).apps, dumpDatabase(fresh).apps);
      assert.notDeepEqual(dumpDatabase(strict).songs, dumpDatabase(fresh).songs);

      // A dry run counts the rest and writes nothing.
      const before = everything(strict);
      const dry = await withSqlite(strict, RECORD_TYPES, (s) => replay(s, {}, true));
      assert.equal(dry.runId, undefined);
      assert.ok(dry.loaded.song! > 50);
      assert.deepEqual(everything(strict), before);

      const rest = await withSqlite(strict, RECORD_TYPES, (s) => replay(s));
      assert.deepEqual(rest.held, []);
      assert.equal(rest.loaded.song, dry.loaded.song);
      assert.equal(rest.rowsInserted + rest.rowsUpdated, dry.rowsInserted + dry.rowsUpdated);
      // The invalid records stay, each for the reason a fresh load gives (the dump compares them too).
      assert.ok(rest.stillRejected > 0);
      assert.deepEqual(dumpDatabase(strict), dumpDatabase(fresh));
      const runs = everything(strict).runs as { kind: string }[];
      assert.deepEqual(runs.map((r) => r.kind), ["run", "replay", "replay"]);
      // Once more: nothing left to load, nothing written.
      assert.equal((await withSqlite(strict, RECORD_TYPES, (s) => replay(s))).runId, undefined);
    } finally {
      await server.close();
    }
  });
});

Deno.test("replay: a record whose file also loaded its key is held, and --key re-loads the file exactly", async () => {
  await withTempDir(async (dir) => {
    const bucket = join(dir, "bucket");
    await Deno.mkdir(bucket);
    const song = (year: number, release: string) => ({
      type: "song",
      data: { artist_name: "A", title: "T", year, release },
    });
    // The rejected record comes last: a fresh load keeps it, a replay cannot know it came after the loaded one.
    await Deno.writeTextFile(join(bucket, "f.data"), JSON.stringify([song(1999, "first"), song(0, "last")]));
    await Deno.writeTextFile(join(bucket, "files_list.data"), "f.data");
    const server = await startBucketServer(bucket);
    try {
      const db = join(dir, "db.sqlite3");
      await runOnce(server.url, db, { types: STRICT });
      const report = await withSqlite(db, RECORD_TYPES, (s) => replay(s));
      assert.deepEqual(report.held, [{ key: "f.data", index: 1, table: "songs" }]);
      assert.equal(report.runId, undefined);
      assert.equal(dumpDatabase(db).songs[0]!.release, "first");
      await runOnce(server.url, db, { onlyKeys: ["f.data"] });
      assert.equal(dumpDatabase(db).songs[0]!.release, "last");
      assert.deepEqual(dumpDatabase(db).rejected_records, []);
    } finally {
      await server.close();
    }
  });
});

Deno.test("replay: takes the run lock (a run in progress makes it wait, then fail)", async () => {
  await withTempDir(async (dir) => {
    const db = join(dir, "db.sqlite3");
    const holder = SqliteStore.open(db, { types: RECORD_TYPES });
    const tx = await holder.begin(new Date(), { bucket: "test" });
    try {
      await assert.rejects(withSqlite(db, RECORD_TYPES, (s) => replay(s)), LockedError);
    } finally {
      await tx.rollback();
      holder.close();
    }
  });
});

pgTest("replay: unchanged rules change nothing; stricter then relaxed gives a fresh load's rows", async () => {
  await withTempDir(async (dir) => {
    const server = await realBucket(dir);
    try {
      const fresh = join(dir, "fresh.sqlite3");
      await runOnce(server.url, fresh);
      await withPgDatabase(async (url) => {
        const load = async (types: readonly RecordType[]) => {
          const store = await PostgresStore.open(url, { types });
          try {
            const source = new HttpSource(new URL(server.url), { retryBaseMs: 5 });
            await runPipeline({ ...PIPELINE_DEFAULTS, types, source, store });
          } finally {
            await store.close();
          }
        };
        const replayPg = async (types: readonly RecordType[]) => {
          const store = await PostgresStore.open(url, { types });
          try {
            return await replay(store, {}, false, types);
          } finally {
            await store.close();
          }
        };
        await load(STRICT);
        const before = await pgDump(url);
        const runs = await pgQuery(url, "SELECT count(*) AS n FROM runs");
        const same = await replayPg(STRICT);
        assert.equal(same.runId, undefined);
        assert.ok(same.stillRejected > 100);
        assert.deepEqual(await pgDump(url), before);
        assert.deepEqual(await pgQuery(url, "SELECT count(*) AS n FROM runs"), runs);
        const relaxed = await replayPg(RECORD_TYPES);
        assert.deepEqual(relaxed.held, []);
        assert.ok(relaxed.runId !== undefined);
        assert.deepEqual(await pgDump(url), canonicalDump(dumpDatabase(fresh)));
        assert.deepEqual(await pgQuery(url, "SELECT kind FROM runs ORDER BY id"), [{ kind: "run" }, {
          kind: "replay",
        }]);
      });
    } finally {
      await server.close();
    }
  });
});

Deno.test("replay: with no database yet it says so in one line (exit 2) and creates nothing, not even its folder", async () => {
  await withTempDir(async (dir) => {
    const config = await writeConfig(
      dir,
      `[p]\nBUCKET_NAME = ${join(CASES, "basic")}\nDATABASE_NAME = data/sub/db.sqlite3\n`,
    );
    for (const extra of [[], ["--dry-run"], ["--json"]]) {
      const out = await cli(["--config", config, "--profile", "p", "replay", ...extra]);
      assert.equal(out.code, 2, out.stderr);
      assert.equal(out.stdout, "");
      assert.match(
        out.stderr,
        /^bucketload: No database to replay: \S+data\/sub\/db\.sqlite3 does not exist \(nothing has been loaded yet: a run creates it\)\n$/,
      );
      assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["config.ini"], `replay ${extra} wrote`);
    }
  });
});

pgTest("replay: into a database no run has loaded it says so (exit 2) and creates no table", async () => {
  await withTempDir(async (dir) => {
    await withPgDatabase(async (url) => {
      const config = await writeConfig(dir, `[p]\nBUCKET_NAME = ${join(CASES, "basic")}\nDATABASE_URL = ${url}\n`);
      for (const extra of [[], ["--dry-run"]]) {
        const out = await cli(["--config", config, "--profile", "p", "replay", ...extra]);
        assert.equal(out.code, 2, out.stderr);
        assert.match(
          out.stderr,
          /^bucketload: No database to replay: postgres:\S+ holds no run yet \(nothing has been loaded yet: a run creates its tables\)\n$/,
        );
        const tables = await pgQuery(
          url,
          "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'",
        );
        assert.deepEqual(tables, [], `replay ${extra} created tables`);
      }
    });
  });
});

pgTest(
  "replay: a dry run, and a replay that changes nothing, use no run id (the next run's id follows on)",
  async () => {
    await withTempDir(async (dir) => {
      const server = await realBucket(dir);
      try {
        await withPgDatabase(async (url) => {
          const withStore = async <T>(types: readonly RecordType[], fn: (s: PostgresStore) => Promise<T>) => {
            const store = await PostgresStore.open(url, { types });
            try {
              return await fn(store);
            } finally {
              await store.close();
            }
          };
          const first = await withStore(STRICT, (store) =>
            runPipeline({
              ...PIPELINE_DEFAULTS,
              types: STRICT,
              source: new HttpSource(new URL(server.url), { retryBaseMs: 5 }),
              store,
            }));
          assert.equal(first.runId, 1);
          const unchanged = await withStore(STRICT, (s) => replay(s, {}, false, STRICT));
          assert.equal(unchanged.runId, undefined);
          const dry = await withStore(RECORD_TYPES, (s) => replay(s, {}, true));
          assert.equal(dry.runId, undefined);
          assert.ok(loadedTotal(dry) > 100, "the dry run would load records");
          const relaxed = await withStore(RECORD_TYPES, (s) => replay(s));
          assert.equal(relaxed.runId, 2, "a dry run or an unchanged replay used up a run id");
          assert.equal(loadedTotal(relaxed), loadedTotal(dry));
          assert.deepEqual(await pgQuery(url, "SELECT id, kind FROM runs ORDER BY id"), [
            { id: 1, kind: "run" },
            { id: 2, kind: "replay" },
          ]);

          // Through the CLI: a dry run between two replays leaves the ids in sequence.
          const config = await writeConfig(dir, `[p]\nBUCKET_NAME = ${server.url}\nDATABASE_URL = ${url}\n`);
          const dryCli = await cli(["--config", config, "--profile", "p", "replay", "--dry-run", "--json"]);
          assert.equal(dryCli.code, 0, dryCli.stderr);
          assert.equal(JSON.parse(dryCli.stdout).runId, null);
        });
      } finally {
        await server.close();
      }
    });
  },
);
