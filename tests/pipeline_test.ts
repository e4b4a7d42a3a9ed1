import assert from "node:assert/strict";
import { join } from "node:path";
import { startBucketServer } from "./bucket_server.ts";
import { CASES, dumpDatabase, FIXED_NOW, query, runOnce, withTempDir } from "./helpers.ts";

const BASIC = join(CASES, "basic");
const A = "a1b2c3d4-0001-4000-8000-000000000001.data";
const B = "b1b2c3d4-0002-4000-8000-000000000002.data";
const C = "c1b2c3d4-0003-4000-8000-000000000003.data";
const T = "2021-05-01 12:00:00";

Deno.test("runPipeline() loads the exact rows, later files and records winning", async () => {
  const server = await startBucketServer(BASIC);
  try {
    await withTempDir(async (dir) => {
      const db = join(dir, "db.sqlite3");
      const report = await runOnce(server.url, db);
      assert.equal(report.status, "ok");
      const dump = dumpDatabase(db);
      assert.deepEqual(dump.songs, [
        {
          artist_name: "The Primeridian",
          title: "Wisdom (Reprise)",
          year: 0,
          release: "Da Allnighta (Remaster)",
          ingestion_time: T,
          source_key: B,
          extra: null,
        },
      ]);
      assert.deepEqual(dump.movies, [
        {
          original_title: "Un été à La Goulette",
          original_language: "fr",
          budget: 0,
          is_adult: 0,
          release_date: "1996-02-29",
          original_title_normalized: "un_été_à_la_goulette",
          source_key: A,
          extra: null,
        },
        {
          original_title: "வழக்கு எண் 18/9",
          original_language: "ta",
          budget: 0,
          is_adult: 0,
          release_date: "2012-05-04",
          original_title_normalized: "வழக்கு_எண்_189",
          source_key: B,
          extra: null,
        },
        {
          original_title: "ねらわれた学園!",
          original_language: "ja",
          budget: 2000000,
          is_adult: 0,
          release_date: "2012-11-10",
          original_title_normalized: "ねらわれた学園",
          source_key: B,
          extra: null,
        },
      ]);
      assert.deepEqual(dump.apps, [
        {
          name: "Calm 🧘 Sleep",
          genre: "Health & Fitness",
          rating: 4.5,
          version: "V3.7.0",
          size_bytes: 52428800,
          is_awesome: 1,
          source_key: A,
          extra: null,
        },
        {
          name: "Notes",
          genre: "Productivity",
          rating: 5,
          version: "708",
          size_bytes: 1000,
          is_awesome: 1,
          source_key: B,
          extra: null,
        },
        {
          name: "Tomb Raider II",
          genre: "Games",
          rating: 4,
          version: "1.0.3",
          size_bytes: 4025969664,
          is_awesome: 0,
          source_key: A,
          extra: null,
        },
      ]);
      assert.deepEqual(query(db, "SELECT typeof(size_bytes) t FROM apps WHERE size_bytes > 2147483647"), [{
        t: "integer",
      }]);
      assert.deepEqual(dump.processed_files.map((f) => [f.key, f.status, f.records, f.rejected, f.ignored]), [
        [A, "loaded", 4, 1, 1],
        [B, "loaded", 5, 3, 1],
        [C, "invalid", 0, 1, 0],
      ]);
      assert.deepEqual(report.loaded, { song: 2, movie: 4, app: 3 });
      assert.deepEqual(report.ignored, { book: 2 });
      assert.equal(report.rejected, 5);
      assert.equal(report.filesListed, 4);
      assert.equal(report.filesRefused, 1);
      assert.deepEqual(report.refusedKeys, [{
        key: "../escape.data",
        reason: "has an empty, '.' or '..' path segment",
      }]);
      assert.ok(!server.requests.some((k) => k.includes("escape")), "a refused key was fetched");
    });
  } finally {
    await server.close();
  }
});

Deno.test("runPipeline() stores every rejection with its reason and raw JSON", async () => {
  await withTempDir(async (dir) => {
    const db = join(dir, "db.sqlite3");
    const report = await runOnce(BASIC, db);
    const rejected = dumpDatabase(db).rejected_records;
    assert.deepEqual(rejected.map((r) => [r.key, r.record_index, r.type, r.reason]), [
      [A, 4, "song", 'year: expected an integer 0–9999, got string "1994"'],
      [B, 4, "movie", "data: expected an object, got null"],
      [B, 5, "movie", 'release_date: expected a real calendar date, got string "2019-02-30"'],
      [B, 6, null, "type: expected a string, got number 7"],
      [C, null, null, rejected[4]!.reason],
    ]);
    assert.match(String(rejected[4]!.reason), /^not JSON: /);
    assert.deepEqual(JSON.parse(String(rejected[0]!.raw)), {
      data: { release: "Unknown", artist_name: "Nobody", title: "Bad Year", year: "1994" },
      type: "song",
    });
    assert.equal(rejected[4]!.raw, null);
    const runs = query(db, "SELECT id FROM runs");
    assert.deepEqual(query(db, "SELECT DISTINCT run_id FROM rejected_records"), [{ run_id: report.runId }]);
    assert.equal(runs.length, 1);
  });
});

Deno.test("runPipeline() rerun fetches only the list; --force fetches everything again", async () => {
  const server = await startBucketServer(BASIC);
  try {
    await withTempDir(async (dir) => {
      const db = join(dir, "db.sqlite3");
      await runOnce(server.url, db);
      const first = dumpDatabase(db);
      assert.deepEqual(server.requests.sort(), [A, B, C, "files_list.data"].sort());
      server.requests.length = 0;
      const second = await runOnce(server.url, db);
      assert.deepEqual(server.requests, ["files_list.data"]);
      // The same list body (this server sends no validators): nothing to do, no run row.
      assert.equal(second.filesNew, 0);
      assert.equal(second.unchanged, true);
      assert.equal(second.runId, undefined);
      assert.deepEqual(dumpDatabase(db), first);
      server.requests.length = 0;
      const forced = await runOnce(server.url, db, { force: true });
      assert.equal(server.requests.length, 4);
      assert.equal(forced.filesLoaded, 2);
      assert.deepEqual(dumpDatabase(db), first, "a forced run duplicated or changed data");
      assert.deepEqual(query(db, "SELECT count(*) n FROM runs"), [{ n: 2 }]);
    });
  } finally {
    await server.close();
  }
});

Deno.test("runPipeline() leaves 403/404 missing and retries them next run; 503 fails after retries", async () => {
  let healthy = false;
  const server = await startBucketServer(BASIC, {
    fault: (key) => {
      if (healthy) return undefined;
      if (key === A) return { status: 404 };
      if (key === B) return { status: 503 };
      return undefined;
    },
  });
  try {
    await withTempDir(async (dir) => {
      const db = join(dir, "db.sqlite3");
      const report = await runOnce(server.url, db, { retries: 2 });
      assert.equal(report.status, "failed");
      assert.deepEqual(report.missingKeys, [A]);
      assert.deepEqual(report.failedKeys, [{ key: B, reason: "HTTP 503 (after 3 attempts)" }]);
      assert.equal(server.hits(B), 3);
      assert.equal(server.hits(A), 1);
      assert.deepEqual(query(db, "SELECT key FROM processed_files"), [{ key: C }]);
      assert.deepEqual(query(db, "SELECT status, files_missing, files_failed FROM runs"), [
        { status: "failed", files_missing: 1, files_failed: 1 },
      ]);
      healthy = true;
      const next = await runOnce(server.url, db);
      assert.equal(next.status, "ok");
      assert.equal(next.filesNew, 2);
      assert.equal(server.hits(C), 1, "an invalid file was fetched again");
      await withTempDir(async (clean) => {
        await runOnce(server.url, join(clean, "db.sqlite3"));
        assert.deepEqual(dumpDatabase(db), dumpDatabase(join(clean, "db.sqlite3")));
      });
    });
  } finally {
    await server.close();
  }
});

Deno.test("runPipeline() treats an unexpected status as failed without retrying", async () => {
  const server = await startBucketServer(BASIC, { fault: (key) => key === A ? { status: 400 } : undefined });
  try {
    await withTempDir(async (dir) => {
      const report = await runOnce(server.url, join(dir, "db.sqlite3"));
      assert.deepEqual(report.failedKeys, [{ key: A, reason: "unexpected HTTP 400" }]);
      assert.equal(server.hits(A), 1);
    });
  } finally {
    await server.close();
  }
});

Deno.test("runPipeline() with an unreachable list writes nothing", async () => {
  const server = await startBucketServer(BASIC, {
    fault: (key) => key === "files_list.data" ? { status: 500 } : undefined,
  });
  try {
    await withTempDir(async (dir) => {
      const db = join(dir, "db.sqlite3");
      await runOnce(BASIC, db);
      const before = dumpDatabase(db);
      const runsBefore = query(db, "SELECT * FROM runs");
      const report = await runOnce(server.url, db, { retries: 1, force: true });
      assert.equal(report.status, "list_failed");
      assert.equal(report.listError, "HTTP 500 (after 2 attempts)");
      assert.deepEqual(dumpDatabase(db), before);
      assert.deepEqual(query(db, "SELECT * FROM runs"), runsBefore);
    });
  } finally {
    await server.close();
  }
});

Deno.test("runPipeline() gives identical tables at concurrency 1 and 16 with random latency", async () => {
  const bucket = join(new URL("../fixtures/sample_bucket/", import.meta.url).pathname);
  let seed = 7;
  const random = () => (seed = (seed * 48271) % 2147483647) / 2147483647;
  const server = await startBucketServer(bucket, { latencyMs: () => Math.floor(random() * 30) });
  try {
    await withTempDir(async (dir) => {
      const dumps: unknown[] = [];
      for (const concurrency of [1, 16]) {
        const db = join(dir, `c${concurrency}.sqlite3`);
        const report = await runOnce(server.url, db, { concurrency, now: FIXED_NOW });
        assert.equal(report.status, "ok");
        dumps.push(dumpDatabase(db));
        dumps.push(query(db, "SELECT rowid, * FROM songs ORDER BY rowid"));
      }
      assert.ok((dumps[0] as { songs: unknown[] }).songs.length > 100);
      assert.deepEqual(dumps[2], dumps[0]);
      assert.deepEqual(dumps[3], dumps[1]);
    });
  } finally {
    await server.close();
  }
});

Deno.test("runPipeline() with retryInvalid re-fetches only invalid files and replaces their rejections", async () => {
  let fixed = false;
  const song = { data: { artist_name: "X", title: "Fixed", year: 1, release: "" }, type: "song" };
  const server = await startBucketServer(BASIC, {
    fault: (key) => fixed && key === C ? { status: 200, body: JSON.stringify([song]) } : undefined,
  });
  try {
    await withTempDir(async (dir) => {
      const db = join(dir, "db.sqlite3");
      await runOnce(server.url, db);
      fixed = true;
      server.requests.length = 0;
      const report = await runOnce(server.url, db, { retryInvalid: true });
      assert.deepEqual(server.requests.sort(), [C, "files_list.data"].sort());
      assert.equal(report.filesLoaded, 1);
      assert.deepEqual(query(db, "SELECT status, records FROM processed_files WHERE key = ?", C), [
        { status: "loaded", records: 1 },
      ]);
      assert.deepEqual(query(db, "SELECT count(*) n FROM rejected_records WHERE key = ?", C), [{ n: 0 }]);
      assert.deepEqual(query(db, "SELECT source_key FROM songs WHERE title = 'Fixed'"), [{ source_key: C }]);
    });
  } finally {
    await server.close();
  }
});

Deno.test("runPipeline() with the worker producer gives the same tables as in-thread", async () => {
  const { workerProducer } = await import("../mod/produce/worker_producer.ts");
  for (const bucket of [BASIC, join(CASES, "hostile")]) {
    const server = await startBucketServer(bucket, { latencyMs: () => Math.floor(Math.random() * 20) });
    try {
      await withTempDir(async (dir) => {
        const settings = {
          encoding: "utf-8",
          dateStoreFormat: "%Y-%m-%d %H:%M:%S",
          concurrency: 4,
          maxFileBytes: 1 << 20,
          maxRejectedRawBytes: 65_536,
          streamThresholdBytes: 1 << 20,
        };
        const spec = {
          kind: "http",
          display: server.url,
          base: server.url,
          authorization: undefined,
          timeoutMs: 2000,
          retries: 1,
          retryBaseMs: 5,
        } as const;
        const producer = workerProducer(spec, settings, { fixedNow: FIXED_NOW().getTime(), maxAhead: 2 });
        const inWorker = await runOnce(server.url, join(dir, "worker.sqlite3"), { ...settings, producer });
        const inThread = await runOnce(server.url, join(dir, "thread.sqlite3"), settings);
        assert.deepEqual(
          { ...inWorker, startedAt: 0, finishedAt: 0 },
          { ...inThread, startedAt: 0, finishedAt: 0 },
        );
        assert.deepEqual(dumpDatabase(join(dir, "worker.sqlite3")), dumpDatabase(join(dir, "thread.sqlite3")));
        assert.ok(inWorker.filesLoaded >= 2);
      });
    } finally {
      await server.close();
    }
  }
});

Deno.test("runPipeline() sends a conditional GET for the list; 304 with nothing pending writes nothing", async () => {
  let missing = true;
  const server = await startBucketServer(BASIC, {
    etags: true,
    fault: (key) => missing && key === A ? { status: 404 } : undefined,
  });
  try {
    await withTempDir(async (dir) => {
      const db = join(dir, "db.sqlite3");
      await runOnce(server.url, db);
      assert.deepEqual(query(db, "SELECT count(*) n FROM runs"), [{ n: 1 }]);
      // The list is unchanged, but A is still pending from the first run: it is retried.
      missing = false;
      server.requests.length = 0;
      const retry = await runOnce(server.url, db);
      assert.equal(retry.unchanged, true);
      assert.deepEqual(server.requests, ["files_list.data", A]);
      assert.equal(retry.filesLoaded, 1);
      // Now nothing is pending: one request, and not even a run row.
      server.requests.length = 0;
      const before = dumpDatabase(db);
      const noop = await runOnce(server.url, db);
      assert.deepEqual(server.requests, ["files_list.data"]);
      assert.equal(noop.unchanged, true);
      assert.equal(noop.runId, undefined);
      assert.deepEqual(query(db, "SELECT count(*) n FROM runs"), [{ n: 2 }]);
      assert.deepEqual(dumpDatabase(db), before);
    });
  } finally {
    await server.close();
  }
});
