/**
 * The drift report: fields the rules do not know and fields of another JSON
 * type, counted per run and type, bounded, stored with the run, and shown by
 * the summary and `status`.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DriftCounter, type DriftEntry, type JsonKind, PART_DRIFT_FIELDS, RECORD_TYPES } from "../mod/records/mod.ts";
import { InexactNumber } from "../mod/records/numbers.ts";
import { driftLine, formatSummary } from "../mod/commands/summary.ts";
import { startBucketServer } from "./bucket_server.ts";
import { cli, PIPELINE_DEFAULTS, query, runOnce, withTempDir, writeConfig } from "./helpers.ts";
import { MemorySource } from "./memory_source.ts";
import { runPipeline } from "../mod/run/pipeline.ts";
import { SqliteStore } from "../mod/store/sqlite/mod.ts";

const SONG_KINDS = new Map<string, JsonKind>(Object.entries(RECORD_TYPES[0]!.fields!));

Deno.test("drift: unknown fields and other JSON types are counted with their first example", () => {
  const d = new DriftCounter();
  d.observe("song", SONG_KINDS, { artist_name: "A", title: "T", year: "1994", release: "", genre_id: 17 });
  d.observe("song", SONG_KINDS, { artist_name: "A", title: "T", year: "2001", release: null, genre_id: "x" });
  d.observe("song", SONG_KINDS, { artist_name: "A", title: "T", year: 1, release: "", mood: ["calm"] });
  assert.deepEqual(d.entries(), [
    { type: "song", field: "year", kind: "type", expected: "number", seen: "string", records: 2, example: '"1994"' },
    { type: "song", field: "genre_id", kind: "unknown", expected: null, seen: "number", records: 2, example: "17" },
    { type: "song", field: "release", kind: "type", expected: "string", seen: "null", records: 1, example: "null" },
    { type: "song", field: "mood", kind: "unknown", expected: null, seen: "array", records: 1, example: '["calm"]' },
  ]);
  // A clean record counts nothing; an exact-valued inexact number is still a number.
  const clean = new DriftCounter();
  clean.observe("song", SONG_KINDS, {
    artist_name: "A",
    title: "T",
    year: new InexactNumber("1e400", Infinity),
    release: "",
  });
  assert.ok(clean.empty);
  assert.deepEqual(clean.entries(), []);
});

Deno.test("drift: at most N distinct fields per type; more counts the records past it, each once; parts add up", () => {
  // Each record has two drifted fields: f0..f5 and g0..g3 in turn.
  const records = Array.from({ length: 12 }, (_, i) => ({ [`f${i % 6}`]: i, [`g${i % 4}`]: "x" }));
  const whole = new DriftCounter(3);
  for (const r of records) whole.observe("app", new Map(), r);
  const entries = whole.entries();
  assert.deepEqual(entries.map((e) => e.field), ["f0", "g0", "f1", ""]);
  assert.deepEqual(entries.at(-1), {
    type: "app",
    field: "",
    kind: "more",
    expected: null,
    seen: null,
    // Every record but the first has a field past f0, g0, f1 (records 1, 7: g1 and g3; the rest f2..f5 or g2): each
    // counts once, though records 2..5 and 8..11 have two such fields.
    records: 11,
    example: null,
  });
  // Counted in parts (a streamed file's, with a wider bound) and added in order, with their shapes: the same entries.
  for (const size of [1, 5, 12]) {
    const run = new DriftCounter(3);
    for (let i = 0; i < records.length; i += size) {
      const part = new DriftCounter(PART_DRIFT_FIELDS);
      for (const r of records.slice(i, i + size)) part.observe("app", new Map(), r);
      run.add(part.entries(), part.shapes());
    }
    assert.deepEqual(run.entries(), entries, `parts of ${size}`);
  }
  // A part past its own bound too: its records' fields beyond it are still told by their shapes.
  const run = new DriftCounter(3);
  const part = new DriftCounter(4);
  for (const r of records) part.observe("app", new Map(), r);
  run.add(part.entries(), part.shapes());
  assert.deepEqual(run.entries(), entries);
  assert.equal(
    driftLine(entries.at(-1)!),
    "app: 11 records with other fields, past the bound of 20 distinct fields per run",
  );
});

Deno.test("drift: hostile field names and long values are kept storable and short", () => {
  const d = new DriftCounter();
  const long = "é".repeat(119) + "😀" + "x".repeat(500);
  d.observe("song", SONG_KINDS, JSON.parse(`{"__proto__": 1, "a\\u0000b": 2, "\\ud800": 3, "w": "${long}"}`));
  const byField = new Map(d.entries().map((e) => [e.field, e]));
  assert.deepEqual([...byField.keys()], ["__proto__", '"a\\u0000b"', '"\\ud800"', "w"]);
  for (const e of d.entries()) {
    assert.ok(e.field.isWellFormed() && !e.field.includes("\u0000"), e.field);
    assert.ok(e.example!.isWellFormed() && e.example!.length <= 121, e.example!);
  }
  // Cut before the emoji, not between its halves.
  assert.equal(byField.get("w")!.example, `"${"é".repeat(119)}…`);
});

/** A pretty-printed file of records, as the real bucket's. */
const file = (records: readonly unknown[]) => JSON.stringify(records, null, 2);
const song = (title: string, extra: Record<string, unknown> = {}) => ({
  data: { year: 2005, title, release: "R", artist_name: "The Primeridian", ...extra },
  type: "song",
});
const movie = (title: string, budget: unknown) => ({
  type: "movie",
  data: { is_adult: false, original_title: title, release_date: "2015-06-10", original_language: "fr", budget },
});

Deno.test("drift: stored with each run, in the summary, and in status and status --json over the last runs", async () => {
  await withTempDir(async (dir) => {
    const bucket = join(dir, "bucket");
    await Deno.mkdir(bucket);
    const write = (name: string, records: readonly unknown[]) => Deno.writeTextFile(join(bucket, name), file(records));
    await write("a.data", [song("One"), movie("Un Français", 0)]);
    await Deno.writeTextFile(join(bucket, "files_list.data"), "a.data");
    const server = await startBucketServer(bucket);
    try {
      const db = join(dir, "db.sqlite3");
      const first = await runOnce(server.url, db);
      assert.deepEqual(first.drift, []);
      assert.doesNotMatch(formatSummary(first), /drift/);

      // The bucket's songs gain a field; a movie's budget comes as text.
      await write("b.data", [song("Two", { genre_id: 17 }), song("Three", { genre_id: 4 }), movie("Deux", "0")]);
      await write("c.data", [song("Four", { genre_id: 9, mood: "calm" })]);
      await Deno.writeTextFile(join(bucket, "files_list.data"), "a.data\nb.data\nc.data");
      const second = await runOnce(server.url, db);
      assert.deepEqual(
        second.drift,
        [
          {
            type: "song",
            field: "genre_id",
            kind: "unknown",
            expected: null,
            seen: "number",
            records: 3,
            example: "17",
          },
          {
            type: "movie",
            field: "budget",
            kind: "type",
            expected: "number",
            seen: "string",
            records: 1,
            example: '"0"',
          },
          {
            type: "song",
            field: "mood",
            kind: "unknown",
            expected: null,
            seen: "string",
            records: 1,
            example: '"calm"',
          },
        ] satisfies DriftEntry[],
      );
      // Unknown fields are projected away: the songs load; the text budget is rejected.
      assert.deepEqual(second.loaded, { song: 3, movie: 0, app: 0 });
      assert.equal(second.rejected, 1);
      const summary = formatSummary(second);
      assert.match(summary, /drift \(fields the rules do not know, or of another JSON type\):/);
      assert.match(summary, /song\.genre_id: unknown field \(number\), 3 records, e\.g\. 17/);
      assert.match(summary, /movie\.budget: string where the rules want number, 1 record, e\.g\. "0"/);
      assert.deepEqual(query(db, "SELECT run_id, type, field, records FROM run_drift ORDER BY rowid"), [
        { run_id: 2, type: "song", field: "genre_id", records: 3 },
        { run_id: 2, type: "movie", field: "budget", records: 1 },
        { run_id: 2, type: "song", field: "mood", records: 1 },
      ]);

      // A third run adds another song with the field: status sums over the runs.
      await write("d.data", [song("Five", { genre_id: 1 })]);
      await Deno.writeTextFile(join(bucket, "files_list.data"), "a.data\nb.data\nc.data\nd.data");
      await runOnce(server.url, db);
      const config = await writeConfig(dir, `[p]\nBUCKET_NAME = ${server.url}\nDATABASE_NAME = ${db}\n`);
      const json = await cli(["--config", config, "--profile", "p", "status", "--json"]);
      assert.equal(json.code, 0, json.stderr);
      const status = JSON.parse(json.stdout);
      assert.deepEqual(status.drift[0], {
        type: "song",
        field: "genre_id",
        kind: "unknown",
        expected: null,
        seen: "number",
        records: 4,
        runs: 2,
        lastRun: 3,
        example: "1",
      });
      assert.deepEqual(status.drift.map((d: DriftEntry) => `${d.type}.${d.field}`), [
        "song.genre_id",
        "movie.budget",
        "song.mood",
      ]);
      const text = await cli(["--config", config, "--profile", "p", "status"]);
      assert.match(text.stdout, /Drift in the last runs/);
      assert.match(
        text.stdout,
        /song\.genre_id: unknown field \(number\), 4 records, e\.g\. 1 — kept in extra \(2 runs, last 3\)/,
      );
    } finally {
      await server.close();
    }
  });
});

Deno.test("drift: a run's more counts records, each once, however its files came (whole or streamed in parts)", async () => {
  // 30 songs, each with 25 unknown fields: the first 20 fields are kept, and every record has 5 past them.
  const songs = Array.from({ length: 30 }, (_, i) => {
    const data: Record<string, unknown> = { artist_name: "A", title: `t${i}`, year: 1, release: "r" };
    for (let k = 0; k < 25; k++) data[`u${k}`] = k;
    return { type: "song", data };
  });
  const files = new Map([["a.data", JSON.stringify(songs.slice(0, 10))], ["b.data", JSON.stringify(songs.slice(10))]]);
  for (const streamed of [false, true]) {
    await withTempDir(async (dir) => {
      const store = SqliteStore.open(join(dir, "db.sqlite3"), { types: RECORD_TYPES });
      try {
        const report = await runPipeline({
          ...PIPELINE_DEFAULTS,
          source: new MemorySource(files, 64),
          store,
          ...(streamed ? { streamThresholdBytes: 64, partElements: 3 } : {}),
        });
        assert.equal(report.drift.length, 21);
        assert.deepEqual(report.drift.at(-1), {
          type: "song",
          field: "",
          kind: "more",
          expected: null,
          seen: null,
          records: 30,
          example: null,
        });
      } finally {
        store.close();
      }
    });
  }
});
