/**
 * The status report's totals (registered files by status, rejections by
 * reason, rows per table: `kit/summary.ts`) stay exactly a full recount of
 * the tables: after loads, missing keys given up on, re-fetches (`--force`,
 * `--retry-invalid`), streamed parts rolled back, replay, runs rolled back,
 * changed and deleted objects of a bucket listing (`PRUNE_DELETED`), and the
 * take-over of the original's database and processed.json; on both stores.
 * And `status` reads them, not the tables.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { getLogger } from "@logtape/logtape";
import { RECORD_TYPES, type RecordType } from "../mod/records/mod.ts";
import { songType } from "../mod/records/song.ts";
import { appType } from "../mod/records/app.ts";
import { movieType } from "../mod/records/movie.ts";
import { runReplay } from "../mod/run/replay.ts";
import { type PipelineOptions, runPipeline } from "../mod/run/pipeline.ts";
import { HttpSource } from "../mod/source/http/http.ts";
import { S3Source } from "../mod/source/s3/s3.ts";
import type { BucketSource } from "../mod/source/source.ts";
import { PostgresStore } from "../mod/store/postgres/mod.ts";
import { SqliteStore } from "../mod/store/sqlite/mod.ts";
import type { Store } from "../mod/store/store.ts";
import { sqliteClient } from "../mod/store/sqlite/client.ts";
import { statusReport } from "../mod/store/kit/status_query.ts";
import type { SqlClient } from "../mod/store/kit/client.ts";
import { generateBucket } from "../tools/gen_bucket.ts";
import { startBucketServer } from "./bucket_server.ts";
import { FIXED_NOW, PIPELINE_DEFAULTS, query, ROOT, withTempDir } from "./helpers.ts";
import { pgQuery, pgTest, withPgDatabase } from "./pg.ts";
import { TABLES, type Totals, totalsOf } from "./totals.ts";
import { s3Test, startS3Server } from "./s3_server.ts";

/** One store under test: a store to run with, and its totals. */
interface Target {
  readonly name: string;
  open(types: readonly RecordType[]): Promise<Store & { close(): unknown }>;
  totals(): Promise<{ kept: Totals; counted: Totals }>;
}

const sqliteTarget = (db: string): Target => ({
  name: "SQLite",
  open: (types) => Promise.resolve(SqliteStore.open(db, { types })),
  totals: () => totalsOf((sql) => Promise.resolve(query(db, sql))),
});

const pgTarget = (url: string): Target => ({
  name: "PostgreSQL",
  open: (types) => PostgresStore.open(url, { types }),
  totals: () => totalsOf((sql) => pgQuery(url, sql)),
});

/** Asserts that the kept totals are a recount's; returns them. */
async function assertTotals(target: Target, step: string): Promise<Totals> {
  const { kept, counted } = await target.totals();
  assert.deepEqual(kept, counted, `${target.name}, after ${step}: the kept totals are not a recount's`);
  return kept;
}

/** Stricter rules, as an older bucketload might have had: songs need a known year (replay relaxes them). */
const strictSong: RecordType = {
  ...songType,
  toRow(data, context) {
    if (data.year === 0) return "year: expected a known year 1–9999, got number 0";
    return songType.toRow.call(this, data, context);
  },
};
const STRICT: readonly RecordType[] = [strictSong, movieType, appType];

/** Runs the pipeline once into the target's store. */
async function run(target: Target, source: BucketSource, options: Partial<PipelineOptions> = {}) {
  const store = await target.open(options.types ?? RECORD_TYPES);
  try {
    return await runPipeline({ ...PIPELINE_DEFAULTS, source, store, ...options });
  } finally {
    await store.close();
  }
}

/** The list file's steps of the HTTP scenario, each followed by a recount. */
async function httpScenario(dir: string, target: Target): Promise<void> {
  const bucket = join(dir, "bucket");
  const keys = await generateBucket(bucket, { files: 6, records: 200, seed: 5, shape: "real", invalidRate: 0.05 });
  // An invalid file (fixed later), a key the bucket lacks (given up on), and a file streamed in parts whose last
  // part fails: its parts and their rejections are rolled back.
  await Deno.writeTextFile(join(bucket, "broken.data"), '[{"type": "song", truncated');
  const streamed = JSON.stringify(Array.from({ length: 30 }, (_, i) => ({
    type: "song",
    data: { artist_name: `S${i}`, title: "T", year: i % 3 === 0 ? 0 : 1999, release: "R" },
  })));
  await Deno.writeTextFile(join(bucket, "streamed.data"), streamed.slice(0, -1) + ', {"type": "song", bad');
  const list = [...keys, "broken.data", "missing.data", "streamed.data"];
  await Deno.writeTextFile(join(bucket, "files_list.data"), list.join("\n"));
  const server = await startBucketServer(bucket);
  const source = () => new HttpSource(new URL(server.url), { retryBaseMs: 5, timeoutMs: 5000 });
  const streaming = { streamThresholdBytes: 200, partElements: 4 };
  try {
    const first = await run(target, source(), { types: STRICT, missingGiveUpRuns: 2, ...streaming });
    assert.ok(first.rejected > 20, `the stricter rules reject records (${first.rejected})`);
    await assertTotals(target, "a first load");
    await run(target, source(), { types: STRICT, missingGiveUpRuns: 2, ...streaming });
    const gaveUp = await assertTotals(target, "a missing key given up on");
    assert.equal(gaveUp.registry["invalid/kept"], 3, "broken, missing and streamed are invalid");

    await Deno.writeTextFile(join(bucket, "broken.data"), JSON.stringify([{ type: "song", data: { title: "x" } }]));
    await Deno.writeTextFile(join(bucket, "streamed.data"), streamed);
    await run(target, source(), { types: STRICT, retryInvalid: true, ...streaming });
    await assertTotals(target, "--retry-invalid");
    await run(target, source(), { types: STRICT, force: true, ...streaming });
    const forced = await assertTotals(target, "--force");

    // A run stopped after its first file is rolled back: the totals are as they were.
    const stop = new AbortController();
    await assert.rejects(
      run(target, source(), {
        types: STRICT,
        force: true,
        concurrency: 1,
        signal: stop.signal,
        onProgress: () => stop.abort(new Error("stopped by the test")),
      }),
    );
    assert.deepEqual(await assertTotals(target, "a run rolled back"), forced);

    // Replay by the relaxed rules: the year-0 songs leave the quarantine, their files' rows come.
    const store = await target.open(RECORD_TYPES);
    try {
      const report = await runReplay({
        store,
        types: RECORD_TYPES,
        bucket: "test",
        dateStoreFormat: PIPELINE_DEFAULTS.dateStoreFormat,
        filter: {},
        dryRun: false,
        logger: getLogger(["bucketload"]),
        now: FIXED_NOW,
      });
      assert.ok(report.loaded.song! > 5, `replay loaded songs (${JSON.stringify(report.loaded)})`);
    } finally {
      await store.close();
    }
    const replayed = await assertTotals(target, "replay");
    assert.ok(
      (replayed.rejections["year: expected a known year 1–9999"] ?? 0) <
        forced.rejections["year: expected a known year 1–9999"]!,
    );
  } finally {
    await server.close();
  }
}

Deno.test("totals: SQLite keeps each total a recount's, through loads, re-fetches, replay and rollbacks", async () => {
  await withTempDir(async (dir) => {
    await httpScenario(dir, sqliteTarget(join(dir, "db.sqlite3")));
  });
});

pgTest("totals: PostgreSQL keeps each total a recount's, through loads, re-fetches, replay and rollbacks", async () => {
  await withTempDir(async (dir) => {
    await withPgDatabase(async (url) => await httpScenario(dir, pgTarget(url)));
  });
});

const song = (title: string, year: number) => ({ type: "song", data: { artist_name: "A", title, year, release: "R" } });

/** A bucket listing whose objects change and go, deleted ones pruned or not. */
async function listingScenario(target: Target): Promise<void> {
  const server = await startS3Server();
  try {
    await server.createBucket("live");
    const put = (key: string, records: unknown[]) => server.put("live", key, JSON.stringify(records));
    await put("a.data", [song("kept", 1), song("dropped", 1), song("shared", 1), { type: "song", data: {} }]);
    await put("b.data", [song("b only", 2)]);
    await put("c.data", [song("c only", 3), song("shared", 3)]);
    const source = () => new S3Source(server.sourceOptions("live"));
    await run(target, source());
    await assertTotals(target, "a first load of a listing");
    await put("a.data", [song("kept", 10), song("new", 10), song("shared", 10)]);
    await run(target, source());
    await assertTotals(target, "a changed object");
    await server.remove("live", "b.data");
    await run(target, source());
    const deleted = await assertTotals(target, "a deletion");
    assert.equal(deleted.registry["loaded/deleted"], 1);
    await server.remove("live", "c.data");
    await run(target, source(), { pruneDeleted: true });
    const pruned = await assertTotals(target, "a deletion pruned (PRUNE_DELETED)");
    assert.equal(pruned.registry["loaded/deleted"], 2);
    await put("c.data", [song("c again", 4)]);
    await run(target, source(), { pruneDeleted: true });
    await assertTotals(target, "a deleted object back");
  } finally {
    await server.close();
  }
}

s3Test(
  "totals: a bucket listing's changed, deleted and pruned objects keep the totals a recount's (SQLite)",
  async () => {
    await withTempDir(async (dir) => await listingScenario(sqliteTarget(join(dir, "db.sqlite3"))));
  },
);

s3Test(
  "totals: a bucket listing's changed, deleted and pruned objects keep the totals a recount's (PostgreSQL)",
  async () => {
    if (Deno.env.get("BL_TEST_DATABASE_URL") === undefined && Deno.env.get("CI") !== "true") {
      return console.log("NOTICE: the PostgreSQL half skipped: BL_TEST_DATABASE_URL is not set");
    }
    await withPgDatabase(async (url) => await listingScenario(pgTarget(url)));
  },
);

Deno.test("totals: the take-over of the original's database and processed.json counts its rows and keys", async () => {
  await withTempDir(async (dir) => {
    const db = join(dir, "db.sqlite3");
    await Deno.copyFile(join(ROOT, "tests", "fixtures", "schemas", "original.db"), db);
    const bucket = join(dir, "bucket");
    const keys = await generateBucket(bucket, { files: 3, records: 50, seed: 9, shape: "real", invalidRate: 0.1 });
    await Deno.writeTextFile(join(bucket, "files_list.data"), keys.join("\n"));
    const server = await startBucketServer(bucket);
    try {
      const target = sqliteTarget(db);
      const report = await run(target, new HttpSource(new URL(server.url), { retryBaseMs: 5 }), {
        importKeys: [keys[0]!, "gone.data"],
      });
      assert.equal(report.imported, 2);
      const totals = await assertTotals(target, "the take-over");
      assert.equal(totals.registry["loaded/kept"], 4);
    } finally {
      await server.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------------------------------
// status reads the totals and indexes, not the tables.

/** A client that records every statement it is given. */
function recording(c: SqlClient, seen: { sql: string; params: unknown[] }[]): SqlClient {
  return {
    dialect: c.dialect,
    run: (sql, params = []) => (seen.push({ sql, params: [...params] }), c.run(sql, params)),
    all: (sql, params = []) => (seen.push({ sql, params: [...params] }), c.all(sql, params)),
  };
}

/** Tables that grow with history: no status query may read one whole. */
const GROWING = ["runs", "processed_files", "rejected_records", "run_drift", "run_keys", ...TABLES];

Deno.test("totals: status reads no growing table whole (SQLite query plans)", async () => {
  await withTempDir(async (dir) => {
    const db = join(dir, "db.sqlite3");
    const bucket = join(dir, "bucket");
    const keys = await generateBucket(bucket, { files: 3, records: 50, seed: 3, shape: "real", invalidRate: 0.1 });
    await Deno.writeTextFile(join(bucket, "broken.data"), "[");
    await Deno.writeTextFile(join(bucket, "files_list.data"), [...keys, "broken.data", "gone.data"].join("\n"));
    const server = await startBucketServer(bucket);
    try {
      await run(sqliteTarget(db), new HttpSource(new URL(server.url), { retryBaseMs: 5 }));
    } finally {
      await server.close();
    }
    const conn = new DatabaseSync(db, { readOnly: true });
    try {
      const seen: { sql: string; params: unknown[] }[] = [];
      const report = await statusReport(recording(sqliteClient(conn), seen), {
        display: db,
        types: RECORD_TYPES,
        holder: { running: null, staleLock: null },
      });
      assert.equal(report.registry.invalid, 1);
      assert.ok(report.topRejections.length > 0 && report.topRejections.every((r) => r.sample !== null));
      assert.equal(report.invalidKeys.length, 1);
      for (const { sql, params } of seen) {
        if (/^\s*PRAGMA|sqlite_schema|pragma_table_info/i.test(sql)) continue;
        const plan = conn.prepare(`EXPLAIN QUERY PLAN ${sql.replaceAll(/\$(\d+)/g, "?$1")}`)
          .all(...(params as (string | number | null)[])) as { detail: string }[];
        // A scan in the order asked for, up to a LIMIT, reads that many rows (the newest runs, the invalid files).
        const ordered = /ORDER BY[^()]*LIMIT \d+\s*$/.test(sql) && !plan.some((p) => /TEMP B-TREE/.test(p.detail));
        for (const { detail } of plan) {
          const table = /^SCAN (\w+)/.exec(detail)?.[1];
          if (table === undefined || !GROWING.includes(table)) continue;
          assert.ok(ordered, `status reads ${table} whole: ${detail}\n${sql}`);
        }
      }
    } finally {
      conn.close();
    }
  });
});
