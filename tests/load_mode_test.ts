/**
 * The staged load (rows merged in key order) and the direct load (upserts as
 * they come) give identical tables: later file in list order wins, also
 * within a file, with NUL and lone surrogates in keys, with streamed parts
 * and invalid files, and merges in the middle of a run.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { join } from "node:path";
import { runPipeline } from "../mod/pipeline.ts";
import { RECORD_TYPES } from "../mod/records/mod.ts";
import type { BucketSource, FetchResult, GetOptions } from "../mod/source/source.ts";
import { type LoadMode, SqliteStore } from "../mod/store/sqlite.ts";
import { PIPELINE_DEFAULTS, query, withTempDir } from "./helpers.ts";

/** A bucket held in memory: the list, then each file's JSON text. */
class MemorySource implements BucketSource {
  readonly display = "memory:";
  constructor(readonly files: ReadonlyMap<string, string>) {}
  get(key: string, options: GetOptions): Promise<FetchResult> {
    const text = key === "files_list.data" ? [...this.files.keys()].join("\n") : this.files.get(key);
    if (text === undefined) return Promise.resolve({ kind: "missing", reason: "no such file" });
    const body = new TextEncoder().encode(text);
    if (options.streamOverBytes !== undefined && body.byteLength > options.streamOverBytes) {
      // Small chunks, so that a streamed file comes in several parts.
      const chunks = Array.from({ length: Math.ceil(body.byteLength / 50) }, (_, i) => body.slice(i * 50, i * 50 + 50));
      return Promise.resolve({ kind: "stream", body: ReadableStream.from(chunks), declaredBytes: body.byteLength });
    }
    return Promise.resolve({ kind: "ok", body });
  }
}

// Few distinct keys, so that they repeat within and across files; some with a NUL or a lone surrogate.
const keyText = fc.constantFrom("A", "B", "b", "Ä", "a\u0000x", "a\u0000y", "\ud800", "\udfff", "ねら", "z z");
const song = fc.record({
  type: fc.constant("song"),
  data: fc.record({
    artist_name: keyText,
    title: keyText,
    year: fc.integer({ min: 0, max: 3000 }),
    release: fc.string(),
  }),
});
const movie = fc.record({
  type: fc.constant("movie"),
  data: fc.record({
    original_title: keyText,
    original_language: fc.constantFrom("en", "fr"),
    budget: fc.integer({ min: 0, max: 1e6 }),
    is_adult: fc.boolean(),
    release_date: fc.constantFrom("2001-01-01", "2001-01-02", "1999-02-30"),
  }),
});
const app = fc.record({
  type: fc.constant("app"),
  data: fc.record({
    name: keyText,
    genre: fc.string(),
    rating: fc.constantFrom(0, 2.5, 4.5, 5, 7),
    version: fc.constantFrom("1", "2"),
    size_bytes: fc.integer({ min: 0, max: 2e8 }),
  }),
});
const file = fc.oneof(
  { weight: 9, arbitrary: fc.array(fc.oneof(song, movie, app), { maxLength: 40 }).map((a) => JSON.stringify(a)) },
  { weight: 1, arbitrary: fc.constant('[{"type": "song", truncated') },
  // Valid parts first, then a syntax error: the parts (and any merge made meanwhile) must be undone.
  {
    weight: 2,
    arbitrary: fc.array(fc.oneof(song, movie, app), { minLength: 8, maxLength: 30 }).map((a) =>
      JSON.stringify(a).slice(0, -1) + ", {oops}]"
    ),
  },
);

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
      fc.asyncProperty(fc.array(file, { minLength: 1, maxLength: 8 }), async (texts) => {
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
