/**
 * The staged load (rows merged in key order) and the direct load (upserts as
 * they come) give identical tables: later file in list order wins, also
 * within a file, with NUL and lone surrogates in keys, with streamed parts
 * and invalid files, and merges in the middle of a run.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { join } from "node:path";
import { runPipeline } from "../mod/run/pipeline.ts";
import { RECORD_TYPES } from "../mod/records/mod.ts";
import { type LoadMode, SqliteStore } from "../mod/store/sqlite/mod.ts";
import type { FilePart, FileWrite, RunCounts } from "../mod/store/store.ts";
import { PIPELINE_DEFAULTS, query, withTempDir } from "./helpers.ts";
import { MemorySource, randomFile } from "./memory_source.ts";

async function load(dir: string, name: string, files: ReadonlyMap<string, string>, loadMode: LoadMode) {
  const dbPath = join(dir, `${name}.sqlite3`);
  const store = SqliteStore.open(dbPath, { types: RECORD_TYPES, loadMode, stageRows: 7 });
  try {
    for (const force of [false, true]) {
      await runPipeline({
        ...PIPELINE_DEFAULTS,
        source: new MemorySource(files),
        store,
        streamThresholdBytes: 400,
        partElements: 3,
        concurrency: 3,
        force,
      });
    }
  } finally {
    store.close();
  }
  return {
    songs: query(dbPath, "SELECT hex(artist_name) a, hex(title) t, year, release, source_key FROM songs ORDER BY 1, 2"),
    movies: query(
      dbPath,
      "SELECT hex(original_title_normalized) n, release_date, budget, source_key FROM movies ORDER BY 1, 2",
    ),
    apps: query(dbPath, "SELECT hex(name) n, version, genre, rating, is_awesome, source_key FROM apps ORDER BY 1, 2"),
    runs: query(dbPath, "SELECT rows_inserted, rows_updated FROM runs ORDER BY id"),
  };
}

Deno.test("staged and direct loads give identical tables on random buckets with heavy key repetition", async () => {
  await withTempDir(async (dir) => {
    let n = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(randomFile(), { minLength: 1, maxLength: 8 }), async (texts) => {
        const files = new Map(texts.map((t, i) => [`f${i}.data`, t]));
        n++;
        const staged = await load(dir, `staged-${n}`, files, "staged");
        const direct = await load(dir, `direct-${n}`, files, "direct");
        assert.deepEqual(staged, direct);
      }),
      { numRuns: 60 },
    );
  });
});

Deno.test("a staged load keeps the later record of a key, within a file and across files", async () => {
  await withTempDir(async (dir) => {
    const s = (title: string, year: number) => ({
      type: "song",
      data: { artist_name: "X", title, year, release: String(year) },
    });
    const files = new Map([
      ["1.data", JSON.stringify([s("b", 1), s("a", 2), s("b", 3)])],
      ["2.data", JSON.stringify([s("a", 4), s("c", 5), s("a", 6)])],
    ]);
    const result = await load(dir, "order", files, "staged");
    assert.deepEqual(result.songs.map((r) => [r.year, r.source_key]), [[6, "2.data"], [3, "1.data"], [5, "2.data"]]);
    // Six records, three keys: three inserted, three updated; the forced second run updates all six.
    assert.deepEqual(result.runs, [{ rows_inserted: 3, rows_updated: 3 }, { rows_inserted: 0, rows_updated: 6 }]);
  });
});

Deno.test("inserted rows are exact when a changed object's rows held the highest rowids (both modes, buffered or streamed)", async () => {
  await withTempDir(async (dir) => {
    const part = (titles: readonly string[]): FilePart => ({
      rows: new Map([["song", {
        count: titles.length,
        cells: titles.flatMap((t) => ["X", t, 1, "R", "2026-01-01", null]),
      }]]),
      records: titles.length,
      rejections: [],
      ignored: new Map(),
    });
    const file = (key: string, titles: readonly string[], position: number, replace = false): FileWrite => ({
      ...part(titles),
      key,
      status: "loaded",
      processedAt: new Date(0),
      bytes: 1,
      position,
      replace,
    });
    for (const loadMode of ["direct", "staged"] as const) {
      const store = SqliteStore.open(join(dir, `${loadMode}.sqlite3`), { types: RECORD_TYPES, loadMode });
      try {
        // b.data comes last: its rows hold the highest rowids.
        const first = await store.begin(new Date(0), { bucket: "memory:" });
        await first.writeFile(file("a.data", ["x1", "x2"], 0));
        await first.writeFile(file("b.data", ["y1", "y2", "y3"], 1));
        const rows = await first.rowCounts();
        assert.deepEqual(rows, { inserted: 5, updated: 0, removed: 0 });
        await first.commit(runCounts(rows));

        // b.data changed: its three rows go, "y1" and "z1" come as new rows (into the rowids its rows left free).
        const buffered = await store.begin(new Date(0), { bucket: "memory:" });
        await buffered.writeFile(file("b.data", ["y1", "z1"], 1, true));
        assert.deepEqual(await buffered.rowCounts(), { inserted: 2, updated: 0, removed: 3 }, `${loadMode}, buffered`);
        await buffered.rollback();

        // The same streamed, after a first attempt that failed mid-file and was rolled back.
        const streamed = await store.begin(new Date(0), { bucket: "memory:" });
        await streamed.writePart("b.data", part(["y1"]), { replace: true, position: 1 });
        await streamed.abortFile("b.data");
        assert.deepEqual(
          await streamed.rowCounts(),
          { inserted: 0, updated: 0, removed: 0 },
          `${loadMode}, rolled back`,
        );
        await streamed.writePart("b.data", part(["y1"]), { replace: true, position: 1 });
        await streamed.writeFile(file("b.data", ["z1"], 1, true));
        assert.deepEqual(await streamed.rowCounts(), { inserted: 2, updated: 0, removed: 3 }, `${loadMode}, streamed`);
        await streamed.rollback();
      } finally {
        store.close();
      }
    }
  });
});

/** A committed run's counts (only the rows matter here). */
function runCounts(rows: { inserted: number; updated: number }): RunCounts {
  return {
    rowsInserted: rows.inserted,
    rowsUpdated: rows.updated,
    rowsRemoved: 0,
    status: "ok",
    finishedAt: new Date(0),
    filesListed: 2,
    filesNew: 2,
    filesLoaded: 2,
    filesInvalid: 0,
    filesMissing: 0,
    filesFailed: 0,
    filesRefused: 0,
    filesChanged: 0,
    filesDeleted: 0,
    filesClaimedElsewhere: 0,
    loaded: { song: 5 },
    rejected: 0,
    ignored: {},
    issues: [],
    drift: [],
  };
}
