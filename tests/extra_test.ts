/**
 * `extra`: the fields a record carried that its type does not know are kept
 * in its row, as one JSON object's text (NULL when there are none), on both
 * stores alike; upserts replace it; `KEEP_EXTRA=no` keeps nothing; hostile
 * field names survive the round trip; a database from before gets the column.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runPipeline } from "../mod/run/pipeline.ts";
import { PostgresStore } from "../mod/store/postgres/mod.ts";
import { SqliteStore } from "../mod/store/sqlite/mod.ts";
import { RECORD_TYPES } from "../mod/records/mod.ts";
import { MemorySource } from "./memory_source.ts";
import type { FetchResult, GetOptions } from "../mod/source/source.ts";
import { PIPELINE_DEFAULTS, query, ROOT, runOnce, withTempDir } from "./helpers.ts";
import { pgQuery, pgTest, withPgDatabase } from "./pg.ts";

/** Field names a hostile bucket may use: NUL, lone surrogates, escapes and controls, prototype names. */
const HOSTILE_NAMES = ["mood", "a\u0000b", "\ud800", "x\udfff", "\u001b[2J", "\\", '"', "\n\t", "__proto__", "é"];

const song = (title: string, data: Record<string, unknown> = {}) => ({
  type: "song",
  data: { artist_name: "A", title, year: 1, release: "r", ...data },
});

/** Data with `name: value` as an own field, whatever the name (`__proto__` included). */
function withField(data: Record<string, unknown>, name: string, value: unknown): Record<string, unknown> {
  return Object.defineProperty({ ...data }, name, { value, enumerable: true, writable: true, configurable: true });
}

/** A bucket of two files: the second replaces the first's songs (later file wins), one of them without extras. */
function bucket(): MemorySource {
  let hostile = song("hostile").data as Record<string, unknown>;
  HOSTILE_NAMES.forEach((name, i) => hostile = withField(hostile, name, i % 2 === 0 ? `v${name}` : { n: [i, null] }));
  const first = [
    song("clean"),
    song("kept", { mood: "calm" }),
    song("replaced", { mood: "sad" }),
    song("cleared", { mood: "old" }),
    { type: "song", data: hostile },
    {
      type: "movie",
      data: {
        rating: 7.5,
        original_title: "M",
        original_language: "en",
        budget: 1,
        is_adult: false,
        release_date: "2001-01-01",
      },
    },
    // Rejected: a rejection keeps its raw text, not an extra.
    song("bad", { year: "1994", mood: "x" }),
  ];
  const second = [song("replaced", { mood: "happy", tempo: 120 }), song("cleared")];
  return new MemorySource(
    new Map([["f1.data", JSON.stringify(first)], ["f2.data", JSON.stringify(second)]]),
  );
}

/** What each title's `extra` must be. */
function expected(): Map<string, string | null> {
  let hostile = {};
  HOSTILE_NAMES.forEach((name, i) => hostile = withField(hostile, name, i % 2 === 0 ? `v${name}` : { n: [i, null] }));
  return new Map<string, string | null>([
    ["clean", null],
    ["cleared", null],
    ["hostile", JSON.stringify(hostile)],
    ["kept", '{"mood":"calm"}'],
    ["replaced", '{"mood":"happy","tempo":120}'],
  ]);
}

function check(rows: Record<string, unknown>[]) {
  const got = new Map(rows.map((r) => [r.title as string, r.extra as string | null]));
  assert.deepEqual(got, expected());
  // The round trip: the stored text parses back into the very fields (names and values) the record carried.
  const hostile = JSON.parse(got.get("hostile")!);
  assert.deepEqual(Object.keys(hostile), HOSTILE_NAMES);
  assert.equal(Object.getPrototypeOf(hostile), Object.prototype, "__proto__ stays a field, not a prototype");
  assert.deepEqual(hostile["a\u0000b"], { n: [1, null] });
  assert.equal(hostile["__proto__"], "v__proto__");
  assert.equal(hostile["\ud800"], "v\ud800");
}

Deno.test("sqlite: extra keeps only the unknown fields, NULL without them; a later file replaces it", async () => {
  await withTempDir(async (dir) => {
    const db = join(dir, "db.sqlite3");
    const store = SqliteStore.open(db, { types: RECORD_TYPES });
    try {
      await runPipeline({ ...PIPELINE_DEFAULTS, source: bucket(), store });
    } finally {
      store.close();
    }
    // Read as bytes: node:sqlite would cut a text at U+0000 (the stored JSON text holds none: it is escaped).
    const rows = query(db, "SELECT title, CAST(extra AS BLOB) AS extra FROM songs ORDER BY title").map((r) => ({
      title: r.title,
      extra: r.extra === null ? null : new TextDecoder().decode(r.extra as Uint8Array),
    }));
    check(rows);
    assert.deepEqual(query(db, "SELECT extra FROM movies"), [{ extra: '{"rating":7.5}' }]);
    assert.ok(!(rows.find((r) => r.title === "hostile")!.extra as string).includes("\u0000"));
  });
});

pgTest("extra is the same JSON text on PostgreSQL (text, not jsonb: NUL and lone surrogates escaped)", async () => {
  await withPgDatabase(async (url) => {
    const store = await PostgresStore.open(url, { types: RECORD_TYPES });
    try {
      await runPipeline({ ...PIPELINE_DEFAULTS, source: bucket(), store });
    } finally {
      await store.close();
    }
    check(await pgQuery(url, "SELECT title, extra FROM songs ORDER BY title"));
    assert.deepEqual(await pgQuery(url, "SELECT extra FROM movies"), [{ extra: '{"rating":7.5}' }]);
  });
});

/**
 * Records whose unknown fields a re-serialization would change: numbers no double holds or spelled otherwise, escapes,
 * NUL and lone surrogates (escaped, as JSON text must), `__proto__`, a repeated name, integer-like names (which
 * JavaScript's objects put first), a nested value's inner whitespace. Each with the `extra` it must keep, byte for byte.
 */
const EXACT: readonly { title: string; text: string; extra: string | null }[] = [
  {
    title: "numbers",
    text: String.raw`{"data": {"9": 1, "artist_name": "A", "huge": 1e400, "long": 12345678901234567890123,
      "title": "numbers", "neg": -0, "dec": 1.50, "exp": 1E5, "tiny": 1e-400, "year": 1, "release": "r", "10": null},
      "type": "song"}`,
    extra: String.raw`{"9":1,"huge":1e400,"long":12345678901234567890123,"neg":-0,"dec":1.50,"exp":1E5,` +
      String.raw`"tiny":1e-400,"10":null}`,
  },
  {
    title: "text",
    text: String.raw`{"type": "song", "data": {"artist_name": "A", "title": "text", "year": 1, "release": "r",
      "esc": "caf\u00e9 \/ \u0000 \ud800 \"q\" \\", "caf\u00e9": true, "nul\u0000name": 0, "\udfff": "x",
      "__proto__": {"x" : [1, 2.50], "y":	"\t"}, "dup": "first", "dup": ["last"]}}`,
    extra: String.raw`{"esc":"caf\u00e9 \/ \u0000 \ud800 \"q\" \\","caf\u00e9":true,"nul\u0000name":0,"\udfff":"x",` +
      String.raw`"__proto__":{"x" : [1, 2.50], "y":	"\t"},"dup":"first","dup":["last"]}`,
  },
  {
    // The last `data` is the record's (as JSON.parse reads it); an earlier occurrence of a known field, overridden by
    // the last, is not kept.
    title: "last data",
    text: String.raw`{"data": {"gone": 1}, "type": "song", "d\u0061ta": {"year": "shadowed", "artist_name": "A",
      "title": "last data", "year": 2, "release": "r", "kept": "yes"}}`,
    extra: String.raw`{"kept":"yes"}`,
  },
  {
    title: "clean",
    text: `{"type":"song","data":{"artist_name":"A","title":"clean","year":1,"release":"r"}}`,
    extra: null,
  },
];

/** The records of {@linkcode EXACT} as a JSON array (pretty-printed around them) and as NDJSON (CRLF). */
function exactFiles(): [string, string][] {
  return [
    ["array.data", `[\n  ${EXACT.map((r) => r.text).join(" ,\n  ")}\n]\n`],
    ["lines.ndjson", EXACT.map((r) => r.text.replaceAll("\n", " ")).join("\r\n")],
  ];
}

/** Each title's extra must be what {@linkcode EXACT} says, from whichever file (and however it came). */
function checkExact(rows: Record<string, unknown>[]) {
  assert.equal(rows.length, EXACT.length);
  for (const r of EXACT) assert.equal(rows.find((row) => row.title === r.title)?.extra, r.extra, r.title);
  // Read back, the text gives the values the record gave (a repeated name its last, as validation reads it).
  const text = JSON.parse(rows.find((row) => row.title === "text")!.extra as string);
  assert.deepEqual(text.dup, ["last"]);
  assert.equal(text["nul\u0000name"], 0);
  assert.equal(Object.getPrototypeOf(text), Object.prototype);
}

const sqliteExtras = (db: string) =>
  query(db, "SELECT title, CAST(extra AS BLOB) AS extra FROM songs ORDER BY title").map((r) => ({
    title: r.title,
    extra: r.extra === null ? null : new TextDecoder().decode(r.extra as Uint8Array),
  }));

/** `text` as UTF-16LE bytes (an encoding whose bytes are not the text's UTF-8). */
const utf16le = (text: string) => new Uint8Array(Uint16Array.from(text, (c) => c.charCodeAt(0)).buffer);

/** A bucket in UTF-16LE, its list included. */
class Utf16Source extends MemorySource {
  override get(key: string, options: GetOptions): Promise<FetchResult> {
    if (key !== "files_list.data") return super.get(key, options);
    return Promise.resolve({ kind: "ok", body: utf16le([...this.files.keys()].join("\n")) });
  }
}

Deno.test("sqlite: extra keeps each unknown field as the file writes it, in its order, every occurrence", async () => {
  await withTempDir(async (dir) => {
    for (const [name, text] of exactFiles()) {
      for (
        const [mode, encoding] of [["buffered", "utf-8"], ["streamed", "utf-8"], ["buffered", "utf-16le"]] as const
      ) {
        const db = join(dir, `${name}-${mode}-${encoding}.sqlite3`);
        const store = SqliteStore.open(db, { types: RECORD_TYPES });
        try {
          await runPipeline({
            ...PIPELINE_DEFAULTS,
            source: encoding === "utf-8"
              ? new MemorySource(new Map([[name, text]]), 7)
              : new Utf16Source(new Map([[name, utf16le(text)]])),
            store,
            encoding,
            ...(mode === "streamed" ? { streamThresholdBytes: 16, partElements: 1 } : {}),
          });
        } finally {
          store.close();
        }
        checkExact(sqliteExtras(db));
      }
    }
  });
});

pgTest("extra keeps each unknown field as the file writes it, in its order, every occurrence", async () => {
  for (const [name, text] of exactFiles()) {
    await withPgDatabase(async (url) => {
      const store = await PostgresStore.open(url, { types: RECORD_TYPES });
      try {
        await runPipeline({ ...PIPELINE_DEFAULTS, source: new MemorySource(new Map([[name, text]]), 7), store });
      } finally {
        await store.close();
      }
      checkExact(await pgQuery(url, "SELECT title, extra FROM songs ORDER BY title"));
    });
  }
});

Deno.test("KEEP_EXTRA=no stores NULL", async () => {
  await withTempDir(async (dir) => {
    const db = join(dir, "db.sqlite3");
    const store = SqliteStore.open(db, { types: RECORD_TYPES });
    try {
      await runPipeline({ ...PIPELINE_DEFAULTS, source: bucket(), store, keepExtra: false });
    } finally {
      store.close();
    }
    assert.deepEqual(query(db, "SELECT count(*) AS n FROM songs WHERE extra IS NOT NULL"), [{ n: 0 }]);
    assert.deepEqual(query(db, "SELECT count(*) AS n FROM songs"), [{ n: 5 }]);
  });
});

Deno.test("a database from before extra gets the column, NULL in its rows, and loads extras after", async () => {
  await withTempDir(async (dir) => {
    const db = join(dir, "db.sqlite3");
    await Deno.copyFile(join(ROOT, "tests", "fixtures", "schemas", "v6-repair.db"), db);
    const before = query(db, "SELECT count(*) AS n FROM songs")[0]!.n as number;
    assert.ok(!query(db, "SELECT name FROM pragma_table_info('songs')").some((c) => c.name === "extra"));
    await runOnce(join(ROOT, "fixtures", "sample_bucket"), db, { force: true });
    for (const table of ["songs", "movies", "apps"]) {
      assert.ok(query(db, `SELECT name FROM pragma_table_info('${table}')`).some((c) => c.name === "extra"), table);
    }
    assert.ok((query(db, "SELECT count(*) AS n FROM songs")[0]!.n as number) >= before);
    assert.deepEqual(query(db, "SELECT extra FROM songs WHERE extra IS NOT NULL ORDER BY extra"), [
      { extra: '{"budget":-1}' },
      { extra: '{"release_date":"2019-02-30"}' },
    ]);
  });
});
