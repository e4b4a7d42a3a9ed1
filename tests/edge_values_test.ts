/**
 * Edge values: a lone surrogate, and numbers no double holds as written, are
 * rejections with a reason, not silently changed values; on both stores,
 * buffered and streamed alike.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runPipeline } from "../mod/run/pipeline.ts";
import { RECORD_TYPES } from "../mod/records/mod.ts";
import { holdsExactly } from "../mod/records/numbers.ts";
import { HttpSource } from "../mod/source/http/http.ts";
import { PostgresStore } from "../mod/store/postgres/mod.ts";
import { SqliteStore } from "../mod/store/sqlite/mod.ts";
import type { Store } from "../mod/store/store.ts";
import { startBucketServer } from "./bucket_server.ts";
import { PIPELINE_DEFAULTS, query, withTempDir } from "./helpers.ts";
import { pgQuery, pgTest, withPgDatabase } from "./pg.ts";

// Written as JSON text: the escapes and number spellings are the point.
const FILE = `[
  {"type": "song", "data": {"artist_name": "Lone \\ud800 Surrogate", "title": "T1", "year": 1, "release": "R"}},
  {"type": "song", "data": {"artist_name": "A", "title": "T2", "year": 1, "release": "\\udfff"}},
  {"type": "app", "data": {"name": "Tiny", "genre": "G", "rating": 4.0, "version": "1", "size_bytes": 1e-400}},
  {"type": "movie", "data": {"original_title": "M", "original_language": "en", "budget": 1.0000000000000001,
    "is_adult": false, "release_date": "2001-01-01"}},
  {"type": "song", "data": {"artist_name": "Fine", "title": "Pair \\ud83d\\ude00", "year": 1994.0, "release": "R"}},
  {"type": "app", "data": {"name": "Big", "genre": "G", "rating": 4.5, "version": "2", "size_bytes": 3e3}}
]`;

const REASONS = [
  "artist_name: contains a lone surrogate (\\ud800), which UTF-8 cannot store",
  "release: contains a lone surrogate (\\udfff), which UTF-8 cannot store",
  "size_bytes: expected an integer 0–9007199254740991, got number 1e-400 (underflows to 0)",
  "budget: expected an integer 0–9007199254740991, got number 1.0000000000000001 (no double holds it; it would read as 1)",
];

Deno.test("holdsExactly() tells written numbers a double holds from those it does not", () => {
  for (const s of ["1994.0", "1e3", "1.5e1", "0.0", "0e5", "4.0", "3.67", "-0", "12.5e-1"]) {
    assert.ok(holdsExactly(s, Number(s)), s);
  }
  for (const s of ["1e-400", "-1e-400", "1.0000000000000001", "0.00000000000000000000000000000000000001e-300"]) {
    assert.ok(!holdsExactly(s, Number(s)), s);
  }
});

async function edgeRun(store: Store, streamed: boolean) {
  await withTempDir(async (dir) => {
    const server = await startBucketServer(dir, { files: { "files_list.data": "edge.data", "edge.data": FILE } });
    try {
      const source = new HttpSource(new URL(server.url), { retryBaseMs: 5 });
      const report = await runPipeline({
        ...PIPELINE_DEFAULTS,
        source,
        store,
        streamThresholdBytes: streamed ? 16 : 32 * 1024 * 1024,
        partElements: streamed ? 2 : undefined,
      });
      assert.equal(report.status, "ok");
      assert.equal(report.rejected, 4);
      assert.deepEqual(report.loaded, { song: 1, movie: 0, app: 1 });
    } finally {
      await server.close();
    }
  });
}

const rejected = "SELECT reason, raw FROM rejected_records ORDER BY record_index";

Deno.test("a lone surrogate and numbers no double holds are rejected with the text as written (SQLite)", async () => {
  for (const streamed of [false, true]) {
    await withTempDir(async (dir) => {
      const db = join(dir, "db.sqlite3");
      const store = SqliteStore.open(db, { types: RECORD_TYPES });
      try {
        await edgeRun(store, streamed);
      } finally {
        store.close();
      }
      const rows = query(db, rejected);
      assert.deepEqual(rows.map((r) => r.reason), REASONS, streamed ? "streamed" : "buffered");
      assert.match(String(rows[2]!.raw), /"size_bytes": ?1e-400/);
      assert.deepEqual(query(db, "SELECT year FROM songs"), [{ year: 1994 }]);
      assert.deepEqual(query(db, "SELECT size_bytes FROM apps"), [{ size_bytes: 3000 }]);
    });
  }
});

pgTest("a lone surrogate and numbers no double holds are rejected with the text as written", async () => {
  await withPgDatabase(async (url) => {
    const store = await PostgresStore.open(url, { types: RECORD_TYPES });
    try {
      await edgeRun(store, false);
    } finally {
      await store.close();
    }
    assert.deepEqual((await pgQuery(url, rejected)).map((r) => r.reason), REASONS);
  });
});
